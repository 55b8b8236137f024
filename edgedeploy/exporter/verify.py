"""``edgedeploy verify``: an exported artifact re-proven from its files alone, as a release step.

Four checks, each read from the artifact itself, not from what the manifest claims:
hashes (every listed file against its sha256), precision (the precision proof re-run on the
graph), io (the model's real input/output against the manifest's spec) and, given images,
parity (outputs against the PyTorch reference, within the tolerance recorded at export).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ArtifactMismatchError, EdgeDeployError, InputFileError, ValidationError
from edgedeploy.core.integrity import check_integrity
from edgedeploy.core.manifest import Manifest, read_manifest
from edgedeploy.core.signing import verify_signature
from edgedeploy.exporter.parity import check_parity
from edgedeploy.exporter.request import DEFAULT_PARITY_IMAGES
from edgedeploy.exporter.tolerance import ParityTolerance
from edgedeploy.models import config_options, get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.weights import weights_fingerprint
from edgedeploy.runtimes import LoadOptions, inspect_model, load_runner, prove_precision, runtime_for
from edgedeploy.runtimes.openvino.graph import ELEMENT_TYPES
from edgedeploy.tasks import open_images

__all__ = ["Check", "VerifyReport", "verify_export"]

# Exit codes of a failed check: a changed file is bad input (3), a wrong model is a failed validation (4).
_EXIT_CHANGED, _EXIT_INVALID = ArtifactMismatchError.exit_code, ValidationError.exit_code


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | skip
    detail: str


@dataclass
class VerifyReport:
    artifact: str
    target: str
    runtime: str
    checks: list[Check] = field(default_factory=list)
    exit_code: int = 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def add(self, name: str, status: str, detail: str, exit_code: int = _EXIT_INVALID) -> None:
        self.checks.append(Check(name, status, " ".join(detail.split())))
        if status == "fail" and self.exit_code == 0:
            self.exit_code = exit_code

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "target": self.target, "runtime": self.runtime, "passed": self.passed,
                "exit_code": self.exit_code,
                "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks]}


def _io_problems(path: Path, manifest: Manifest) -> list[str]:
    """Differences between the manifest's IO spec and the model's own inputs and outputs."""
    info = inspect_model(str(path), LoadOptions(verify=False))
    spec = manifest.io
    problems = []
    inputs, outputs = info.get("inputs") or [], info.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != len(spec.outputs):
        return [f"the model has {len(inputs)} inputs and {len(outputs)} outputs, the manifest describes one input "
                f"and {len(spec.outputs)} output{'s' if len(spec.outputs) > 1 else ''}"]
    real_in = inputs[0]
    if [d if isinstance(d, int) and d > 0 else -1 for d in real_in["shape"]] != list(spec.input.shape):
        problems.append(f"input shape {real_in['shape']} != manifest {list(spec.input.shape)}")
    if ELEMENT_TYPES.get(real_in["dtype"], real_in["dtype"]) != spec.input.dtype:
        problems.append(f"input dtype {real_in['dtype']} != manifest {spec.input.dtype}")
    if spec.more_outputs:
        # Several outputs (converters rename and reorder them; the export matched them and parity checked each
        # by its values): their count is what the file itself must agree on.
        return problems
    classes = spec.output.num_classes + (1 if spec.output.background_class else 0)
    shape = outputs[0]["shape"]
    found = shape[1] if spec.output.layout == "NCHW" and len(shape) == 4 else shape[-1] if shape else None
    if found is not None and found != classes:
        problems.append(f"output has {found} classes, the manifest says {classes}")
    return problems


def _reference_options(manifest: Manifest, threads: int) -> LoadOptions:
    """The PyTorch model the artifact was exported from, fed with the weights' own normalization."""
    model = manifest.data.get("model", {})
    pre = manifest.io.preprocessing
    arch = model.get("arch", "mobilenet_v2")
    own = config_options(get_model(arch).make_config(resolution=model.get("resolution", 224)))
    return LoadOptions(threads=threads, mean=tuple(pre.mean), std=tuple(pre.std), architecture=Architecture(
        arch, model.get("width", 1.0), model.get("resolution", 224), model.get("num_classes", 1000),
        tuple(sorted((k, v) for k, v in model.items() if k in own))))


def verify_export(artifact: str | Path, data: str | Path | None = None, reference: str | None = None,
                  images: int | None = None, threads: int = 1, public_key: Path | None = None,
                  signature: Path | None = None) -> VerifyReport:
    """Re-prove ``artifact``; parity only with ``data`` (against ``reference``, default the weights
    the manifest names)."""
    path = Path(artifact)
    if not path.is_file():
        raise InputFileError(f"{path}: is a directory" if path.is_dir() else f"{path}: artifact not found")
    runtime = runtime_for(str(path)).name
    manifest = read_manifest(path)
    if manifest is None:
        raise InputFileError(f"{path}: no manifest beside it ({path.name}.manifest.json): nothing to verify against")
    report = VerifyReport(str(path), manifest.target, runtime)
    try:
        checked = check_integrity(path)
        report.add("hashes", "pass", ", ".join(f"{f['name']} {f['sha256'][:12]}" for f in checked.files))
    except (ArtifactMismatchError, InputFileError) as exc:
        report.add("hashes", "fail", str(exc), _EXIT_CHANGED)
        for name in ("precision", "io", "parity"):
            report.add(name, "skip", "not checked: the files are not the exported ones")
        return report
    if public_key is not None:
        try:
            report.add("signature", "pass", verify_signature(path, public_key, signature))
        except (ArtifactMismatchError, InputFileError) as exc:
            report.add("signature", "fail", str(exc), _EXIT_CHANGED)

    precision = manifest.data.get("precision") or {}
    requested = precision.get("requested")
    if requested:
        verdict = prove_precision(runtime, path, requested, tuple(precision.get("float_layers") or ()))
        report.add("precision", "pass" if verdict.verified else "fail",
                   f"{requested}: weights {verdict.weights}" if verdict.verified else "; ".join(verdict.problems))
    else:
        report.add("precision", "skip", "the manifest records no precision (exported before the precision proof)")

    problems = _io_problems(path, manifest)
    report.add("io", "fail" if problems else "pass", "; ".join(problems) or
               f"input {list(manifest.io.input.shape)} {manifest.io.input.dtype}, {manifest.io.output.num_classes} classes")

    if data is None:
        report.add("parity", "skip", "no --data given")
        return report
    if (manifest.data.get("model") or {}).get("arch") == "onnx":
        report.add("parity", "skip", "exported from an ONNX file: parity was checked against it with ONNX Runtime "
                                     "at export")
        return report
    parity = manifest.data.get("parity") or {}
    # The fidelity check needs the export's calibration images to rebuild the simulation: export ran it and
    # recorded it; here the quantization cost is re-measured against the floor recorded at export.
    tolerance = ParityTolerance(parity.get("max_abs_diff_allowed"), float(parity.get("min_agreement_allowed", 0.0)),
                                parity.get("min_fidelity_db_allowed"))
    weights = manifest.data.get("weights") or {}
    reference = reference or str(weights.get("source") or "sample")
    try:
        # Parity against other weights than the exported ones would blame the artifact for them.
        fingerprint = weights_fingerprint(reference, str((manifest.data.get("model") or {}).get("arch",
                                                                                                 "mobilenet_v2")))
        recorded = weights.get("sha256")
        # A download's fingerprint is the hash prefix it is checked against ("imagenet:b0353104").
        if recorded and fingerprint != recorded and not recorded.startswith(fingerprint.partition(":")[2] or "-"):
            report.add("parity", "fail", f"the reference {reference} (sha256 {fingerprint[:12]}...) is not the weights "
                                         f"this was exported from ({weights['sha256'][:12]}...): pass --reference")
            return report
        ref_runner = load_runner(reference, _reference_options(manifest, threads), runtime="torch")
    except EdgeDeployError as exc:
        report.add("parity", "fail", f"cannot load the reference {reference}: {exc}")
        return report
    candidate = load_runner(str(path), LoadOptions(threads=threads, verify=False))
    result = check_parity(candidate, ref_runner, open_images(data),
                          images or int(parity.get("images", DEFAULT_PARITY_IMAGES)), tolerance)
    try:
        result.enforce(path.name)
        fidelity = (parity.get("fidelity") or {}).get("sqnr_db")
        report.add("parity", "pass", f"max |diff| {result.max_abs_diff:.3g}, {result.agreement_of} "
                                     f"{result.agreement:.1f}% on {result.images} images vs {reference}"
                                     + (f"; fidelity at export {fidelity} dB" if fidelity is not None else ""))
    except EdgeDeployError as exc:
        report.add("parity", "fail", str(exc))
    return report
