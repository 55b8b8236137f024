"""The export pipeline: weights -> PyTorch -> ONNX -> simplified ONNX -> target artifact.

Orders the steps, times them, checks parity and writes the manifest; it imports
no converter directly (targets name their converters). Everything is
built in a private staging folder and moved into place only after every check
passed, so a failed or interrupted export leaves no artifact behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.artifacts import staging_dir
from edgedeploy.core.errors import ConfigError, DataError, EdgeDeployError, PrecisionError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.io_spec import INPUT_NAME, OUTPUT_NAME, InputSpec, ModelIO, OutputSpec
from edgedeploy.core.manifest import created_utc, manifest_path, tool_versions, write_manifest
from edgedeploy.core.paths import inside
from edgedeploy.core.sample_data import CALIB_DIR, find_data_root
from edgedeploy.data.calibration import load_calibration
from edgedeploy.data.datasets import ImageSet
from edgedeploy.exporter.choices import IoDtype, WeightGranularity
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.onnx import (
    OnnxGraphStats,
    export_onnx,
    simplify_onnx,
)
from edgedeploy.exporter.detection import detection_extra
from edgedeploy.exporter.graph_postprocess import check_graph_postprocess, postprocess_in_graph
from edgedeploy.exporter.options import EXPORT_OPTIONS, ExportOptions, resolve_options
from edgedeploy.exporter.parity import check_parity
from edgedeploy.exporter.ptq import check_calibration
from edgedeploy.exporter.request import ExportRequest
from edgedeploy.exporter.requirement import check_requirement
from edgedeploy.exporter.simulation import SIMULATED_PRECISIONS, simulation_for
from edgedeploy.exporter.source import ExportSource, onnx_source, torch_source
from edgedeploy.exporter.target import Target
from edgedeploy.exporter.targets import get_target
from edgedeploy.models.wrappers import RawPixelInput
from edgedeploy.runtimes import LoadOptions, Runner, load_runner, prove_precision
from edgedeploy.runtimes.precision import ANY_LAYER
from edgedeploy.runtimes.torch.runner import TorchRunner
from edgedeploy.tasks import get_task, open_images

__all__ = ["ExportRequest", "ExportResult", "export"]

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    target: str
    path: Path
    manifest: Path
    size_bytes: int
    sha256: str
    parity: dict[str, Any]
    steps: dict[str, float]
    details: dict[str, Any]
    # The precision proof: requested precision, weight dtypes, layers kept in float.
    precision: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "path": str(self.path),
            "manifest": str(self.manifest),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "parity": self.parity,
            "precision": self.precision,
            "seconds": round(sum(self.steps.values()), 3),
            "steps": self.steps,
            **self.details,
        }


class _Steps:
    """Times each named step and reports it as it starts (for progress lines)."""

    def __init__(self, on_step: Callable[[str], None] | None):
        self.seconds: dict[str, float] = {}
        self.on_step = on_step

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.on_step:
            self.on_step(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def _parity_data(request: ExportRequest) -> ImageSet | None:
    """Images to compare on (any task's data set: only its images are used)."""
    if request.parity_data is not None:
        return open_images(request.parity_data)
    root = find_data_root()
    if root is not None and (root / CALIB_DIR).is_dir():
        return open_images(root / CALIB_DIR)
    log.warning("no parity images found (pass --parity-data DIR): checking parity on random pixels")
    return None


def _calibration_dir(request: ExportRequest) -> Path:
    if request.calib_dir is not None:
        return request.calib_dir
    root = find_data_root()
    if root is not None and (root / CALIB_DIR).is_dir():
        return root / CALIB_DIR
    raise DataError(f"{request.target} needs calibration images: pass --calib DIR")


def _manifest(
    target: Target,
    final: Path,
    request: ExportRequest,
    source: ExportSource,
    graph: OnnxGraphStats | None,
    conversion: Conversion,
    options: ExportOptions,
) -> dict[str, Any]:
    """Everything known about the artifact before parity; parity, sha256 and size are added after."""
    return {
        "target": target.name,
        "artifact": final.name,
        "created_utc": created_utc(),
        "task": conversion.io.task,
        "model": source.model_record,
        "weights": source.weights_record,
        "input": conversion.io.input.to_dict(),
        **conversion.io.outputs_to_dict(),
        **({"io_extra": conversion.io.extra} if conversion.io.extra else {}),
        "preprocessing": conversion.io.preprocessing.to_dict(),
        "export": {**_onnx_details(graph, request.onnx), "dynamic_batch": request.dynamic_batch, **conversion.details,
                   "options": options.record(n for n, o in EXPORT_OPTIONS.items() if o.recorded)},
        "tools": tool_versions((*(() if request.onnx else ("torch",)),
                                *(("onnx", "onnxruntime", "onnxsim") if graph else ()), "numpy", *conversion.tools)),
    }


def _model_inputs(reference: Runner, calibration: Any, raw_pixels: bool) -> np.ndarray | None:
    """The calibration images in the model's own normalization (with raw-pixel IO the calibration tensor holds
    pixels, normalized here)."""
    images = None if calibration is None else calibration.images
    if images is not None and raw_pixels:
        pre = reference.io.preprocessing
        images = ((images / 255.0 - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32))
    return images


def per_channel(options: ExportOptions) -> bool:
    return options.weight_granularity in (None, WeightGranularity.PER_CHANNEL)


def _prepared(reference: TorchRunner, options: Any, calibration: Any, raw_pixels: bool) -> tuple[Any, dict[str, Any]]:
    """The PyTorch model with the requested PTQ methods applied, on the calibration images."""
    from edgedeploy.exporter.ptq import prepare

    return prepare(reference.model, options.ptq, _model_inputs(reference, calibration, raw_pixels),
                   per_channel(options))


def converter_model(model: Any, preprocessing: Any, raw_pixels: bool) -> Any:
    """The PyTorch module the converters see: ``model``, with the pixel normalization inside for uint8 IO."""
    return RawPixelInput(model, preprocessing.mean, preprocessing.std).eval() if raw_pixels else model


def _onnx_details(graph: OnnxGraphStats | None, onnx_in: Path | None = None) -> dict[str, Any]:
    """How the ONNX graph was made; direct PyTorch routes name their exporter in their conversion details."""
    if graph is None:
        return {}
    return {"exporter": f"ONNX in ({onnx_in.name})" if onnx_in else "torch.onnx.export (TorchScript)",
            "opset": graph.opset,
            "onnx_nodes_before_simplify": graph.nodes_before, "onnx_nodes_after_simplify": graph.nodes_after}


def export(request: ExportRequest, on_step: Callable[[str], None] | None = None) -> ExportResult:
    target = get_target(request.target)
    options = resolve_options(target, request.options)
    check_calibration(options.ptq, options.calib_size)
    if options.max_drop is not None and options.val_dir is None:
        raise ConfigError("--max-drop needs --val DIR: a labeled image folder to measure the drop on")
    convert = target.load_converter()
    steps = _Steps(on_step)
    with staging_dir(request.out_dir) as stage:
        with steps("load onnx" if request.onnx else "load weights"):
            source = (onnx_source(request, target, options, stage) if request.onnx is not None
                      else torch_source(request))
        config, reference = source.config, source.reference
        stem = request.name or config.name
        final = Path(request.out_dir) / target.artifact_name(stem)
        inside(request.out_dir, final.name, "the artifact")
        parity_data = _parity_data(request)
        # uint8 IO means camera bytes in: normalization moves into the graph.
        raw_pixels = options.io_dtype is IoDtype.UINT8
        pre = reference.io.preprocessing
        batch = -1 if request.dynamic_batch else 1
        onnx_io = ModelIO(
            input=InputSpec(INPUT_NAME, (batch, 3, config.resolution, config.resolution)),
            # A model with several outputs keeps its own names; a one-output graph's is always ``logits``.
            output=reference.io.output if reference.io.more_outputs else OutputSpec(
                OUTPUT_NAME, config.num_classes, layout=get_task(reference.io.task).output_layout),
            more_outputs=reference.io.more_outputs,
            preprocessing=replace(pre, raw_pixels=True) if raw_pixels else pre,
            task=reference.io.task,
            extra=detection_extra(reference.io, options),
        )
        if options.postprocess == "graph":
            check_graph_postprocess(onnx_io, target)
        calibration = None
        if target.calibrated:
            with steps("calibration"):
                calibration = load_calibration(_calibration_dir(request), onnx_io.preprocessing,
                                               request.calib_size, request.calib_seed)
        # The model the converter sees: the PTQ methods' prepared copy (parity still compares with the original).
        source_model, ptq = source.model, None
        if options.ptq:
            with steps("ptq"):
                source_model, ptq = _prepared(reference, options, calibration, raw_pixels)
        graph_model = converter_model(source_model, pre, raw_pixels)
        if target.source == "pytorch" and request.dynamic_batch:
            raise ConfigError(f"{target.name} has a fixed batch of 1: drop --dynamic-batch")
        graph, src = None, None
        if target.source == "onnx":
            exported = source.onnx_path
            if exported is None:
                exported = stage / "exported.onnx"
                with steps("export onnx"):
                    export_onnx(graph_model, exported, config.resolution, request.opset, request.dynamic_batch,
                                onnx_io.output_names)
            with steps("simplify"):
                graph, src = simplify_onnx(exported, stage / "simplified.onnx"), stage / "simplified.onnx"
        staged = stage / final.name
        log_path = stage / f"{final.name}.log"
        ctx = ExportContext(target=target.name, config=config, onnx_io=onnx_io, workdir=stage, log_path=log_path,
                            sample_images=parity_data, calibration=calibration, options=options,
                            torch_model=graph_model)
        try:
            with steps(f"convert {target.name}"):
                conversion = convert(src, staged, ctx)
            with steps("precision"):
                # Accuracy control decides itself which layers go back to float.
                controlled = target.accuracy_control and options.max_drop is not None
                allowed_float = (ANY_LAYER,) if controlled else options.keep_float
                precision = prove_precision(target.runtime, staged, target.precision.value, allowed_float)
            if not precision.verified:
                raise PrecisionError(f"{target.name} is not {target.precision}: {'; '.join(precision.problems)}")
        except EdgeDeployError as exc:
            # Keep the converter's log where the user can read it; it is not an artifact.
            if log_path.is_file():
                os.replace(log_path, final.with_name(log_path.name))
                # Chained, so --debug shows where the failure came from.
                raise type(exc)(f"{exc} (log: {final.with_name(log_path.name)})") from exc
            raise
        manifest = _manifest(target, final, request, source, graph, conversion, options)
        manifest["precision"] = precision.to_dict()
        if ptq is not None:
            manifest["export"]["ptq"] = ptq
        # Parity runs on the staged artifact through its manifest, exactly as users will load it.
        write_manifest(staged, manifest)
        tolerance = replace(
            target.parity,
            max_abs_diff=request.parity_max_abs_diff if request.parity_max_abs_diff is not None
            else target.parity.max_abs_diff,
            min_agreement=request.parity_min_agreement if request.parity_min_agreement is not None
            else target.parity.min_agreement,
            min_fidelity_db=request.parity_min_fidelity_db if request.parity_min_fidelity_db is not None
            and target.parity.quantized else target.parity.min_fidelity_db,
        )
        simulation, simulation_skipped = None, None
        if target.precision in SIMULATED_PRECISIONS:
            with steps("simulate"):
                simulation, simulation_skipped = simulation_for(source, source_model, target, options,
                                                               _model_inputs(reference, calibration, raw_pixels),
                                                               log_path)
        with steps("parity"):
            # The staged manifest is not final (no sha256 yet): nothing to verify against until it is.
            candidate = load_runner(str(staged), LoadOptions(threads=request.threads, verify=False),
                                    runtime=target.runtime)
            report = check_parity(candidate, reference, parity_data, request.parity_images, tolerance, simulation,
                                  simulation_skipped)
        report.enforce(final.name)
        manifest["parity"] = report.to_dict()
        if options.postprocess == "graph":
            with steps("graph post-processing"):
                manifest["postprocess"] = postprocess_in_graph(staged, target, candidate, manifest, parity_data,
                                                               request.threads)
        if options.max_drop is not None:
            with steps("accuracy requirement"):
                requirement = check_requirement(candidate, reference, Path(str(options.val_dir)),
                                                options.max_drop)
            manifest["export"]["accuracy_requirement"] = requirement.to_dict()
            requirement.enforce(final.name, target.name)
        files = (staged, *conversion.companions)
        manifest["sha256"] = sha256_file(staged)
        manifest["size_bytes"] = sum(f.stat().st_size for f in files)
        manifest["files"] = [{"name": f.name, "sha256": sha256_file(f), "size_bytes": f.stat().st_size} for f in files]
        write_manifest(staged, manifest)
        # Drop any manifest of an older artifact first, so the two never disagree.
        manifest_path(final).unlink(missing_ok=True)
        for f in conversion.companions:  # companions first: the primary file appears last
            os.replace(f, final.with_name(f.name))
        os.replace(staged, final)
        os.replace(manifest_path(staged), manifest_path(final))
        if log_path.is_file():
            os.replace(log_path, final.with_name(log_path.name))
    log.info("wrote %s (%d bytes)", final, manifest["size_bytes"])
    return ExportResult(
        target=target.name,
        path=final,
        manifest=manifest_path(final),
        size_bytes=manifest["size_bytes"],
        sha256=manifest["sha256"],
        parity=manifest["parity"],
        precision=manifest["precision"],
        steps=steps.seconds,
        details={
            **{k: v for k, v in _onnx_details(graph).items() if k != "exporter"},
            "params": source.model_record["params"],
            "macs": source.model_record["macs"],
            "log": str(final.with_name(log_path.name)) if final.with_name(log_path.name).is_file() else None,
            **conversion.details,
            **({"ptq": ptq} if ptq is not None else {}),
            **({"accuracy_requirement": manifest["export"]["accuracy_requirement"]}
               if "accuracy_requirement" in manifest["export"] else {}),
        },
    )
