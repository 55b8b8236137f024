"""The export pipeline: weights -> PyTorch -> ONNX -> simplified ONNX -> target artifact.

Orders the steps, times them, checks parity and writes the manifest; it imports
no conversion backend directly (targets name their converters). Everything is
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

from edgedeploy.backends import LoadOptions, Runner, load_runner, verify_precision
from edgedeploy.backends.precision import ANY_LAYER
from edgedeploy.backends.torch.runner import TorchRunner
from edgedeploy.core.artifacts import staging_dir
from edgedeploy.core.errors import ConfigError, ConversionError, DataError, EdgeDeployError, PrecisionError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.io_spec import INPUT_NAME, OUTPUT_NAME, InputSpec, ModelIO, OutputSpec
from edgedeploy.core.manifest import created_utc, manifest_path, tool_versions, write_manifest
from edgedeploy.core.sample_data import CALIB_DIR, find_data_root
from edgedeploy.data.calibration import load_calibration
from edgedeploy.data.datasets import ImageSet
from edgedeploy.export.context import Conversion, ExportContext
from edgedeploy.export.converters.onnx import (
    OnnxGraphStats,
    export_onnx,
    simplify_onnx,
)
from edgedeploy.export.options import CalibMethod, IoDtype, WeightGranularity
from edgedeploy.export.parity import check_parity
from edgedeploy.export.ptq import check_calibration
from edgedeploy.export.request import ExportRequest
from edgedeploy.export.requirement import check_requirement
from edgedeploy.export.simulation import SIMULATED_PRECISIONS, simulate
from edgedeploy.export.targets import Target, get_target, target_names
from edgedeploy.models import ModelConfig, config_options
from edgedeploy.models.modules import ModuleConfig
from edgedeploy.models.profile import Complexity, profile_model
from edgedeploy.models.wrappers import RawPixelInput
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


@dataclass
class _Source:
    """What the artifact is exported from: the PyTorch model (a registered family or a user module) or an ONNX
    file; parity compares the artifact with ``reference``."""

    config: ModelConfig
    reference: Runner
    # The PyTorch module (None for ONNX in) and, for ONNX in, the normalized graph to simplify.
    model: Any
    onnx_path: Path | None
    complexity: Complexity
    # The manifest's "model" and "weights" sections.
    model_record: dict[str, Any]
    weights_record: dict[str, Any]


def _torch_source(request: ExportRequest) -> _Source:
    config = request.config
    assert config is not None
    options = LoadOptions(
        threads=request.threads, mean=request.mean, std=request.std,
        arch=config.arch, width=config.width, resolution=config.resolution, num_classes=config.num_classes,
        model_options=tuple(sorted(config_options(config).items())),
    )
    reference = TorchRunner(request.weights, options)
    complexity = profile_model(reference.model, config.resolution)
    weights = reference.weights
    return _Source(config, reference, reference.model, None, complexity, {
        "arch": config.arch, "width": config.width, "resolution": config.resolution,
        "num_classes": config.num_classes, **config_options(config), "params": complexity.params,
        "macs": complexity.macs,
    }, {
        "source": weights.source if weights else "random",
        "sha256": weights.sha256 if weights else None,
        **({"key_mapping": weights.key_mapping} if weights and weights.key_mapping else {}),
    })


def _onnx_source(request: ExportRequest, target: Target, options: Any, stage: Path) -> _Source:
    from edgedeploy.export.onnx_source import read_onnx_input

    assert request.onnx is not None
    if target.source != "onnx":
        onnx_targets = ", ".join(t for t in target_names() if get_target(t).source == "onnx")
        raise ConfigError(f"{target.name} converts from PyTorch, not ONNX; ONNX in takes: {onnx_targets}")
    if options.ptq:
        raise ConfigError("--ptq works on a PyTorch model; ONNX in cannot take it")
    if request.mean is None or request.std is None:
        raise ConfigError(f"{request.onnx}: an ONNX file records no normalization: pass --mean and --std (e.g. "
                          "--mean 0.485 0.456 0.406 --std 0.229 0.224 0.225)")
    if options.io_dtype is IoDtype.UINT8:
        raise ConfigError("--io-dtype uint8 folds normalization into a PyTorch graph; ONNX in cannot take it")
    source = read_onnx_input(request.onnx, stage / "normalized.onnx", request.input_size, request.dynamic_batch)
    config = ModuleConfig(f"onnx:{request.onnx.stem}", source.resolution, source.num_classes)
    reference = load_runner(str(source.path), LoadOptions(threads=request.threads, mean=request.mean,
                                                         std=request.std, verify=False), runtime="onnxruntime")
    reference.io = replace(reference.io, task=config.task)
    return _Source(config, reference, None, source.path, Complexity(source.params, 0), {
        "arch": "onnx", "file": request.onnx.name, "resolution": source.resolution,
        "num_classes": source.num_classes, "params": source.params, "macs": None,
    }, {"source": str(request.onnx), "sha256": sha256_file(request.onnx)})


def _manifest(
    target: Target,
    final: Path,
    request: ExportRequest,
    source: _Source,
    graph: OnnxGraphStats | None,
    conversion: Conversion,
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
        "output": conversion.io.output.to_dict(),
        "preprocessing": conversion.io.preprocessing.to_dict(),
        "export": {**_onnx_details(graph, request.onnx), "dynamic_batch": request.dynamic_batch, **conversion.details},
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


def _per_channel(options: Any) -> bool:
    return options.weight_granularity in (None, WeightGranularity.PER_CHANNEL)


def _prepared(reference: TorchRunner, options: Any, calibration: Any, raw_pixels: bool) -> tuple[Any, dict[str, Any]]:
    """The PyTorch model with the requested PTQ methods applied, on the calibration images."""
    from edgedeploy.export.ptq import prepare

    return prepare(reference.model, options.ptq, _model_inputs(reference, calibration, raw_pixels),
                   _per_channel(options))


def converter_model(model: Any, preprocessing: Any, raw_pixels: bool) -> Any:
    """The PyTorch module the converters see: ``model``, with the pixel normalization inside for uint8 IO."""
    return RawPixelInput(model, preprocessing.mean, preprocessing.std).eval() if raw_pixels else model


# Activation range methods that clip by design: the simulation (min/max ranges) is not their quantization.
CLIPPING_CALIBRATION = (CalibMethod.PERCENTILE, CalibMethod.ENTROPY, CalibMethod.MEAN_QUANTILE, CalibMethod.HISTOGRAM,
                        CalibMethod.MOVING_AVERAGE)


def _simulation(source: _Source, source_model: Any, target: Target, options: Any, calibration: Any,
                raw_pixels: bool, log_path: Path) -> tuple[Runner | None, str | None]:
    """The host simulation a quantized artifact's fidelity is checked against, or why there is none."""
    if source_model is None:
        return None, "exported from an ONNX file: no PyTorch model to simulate the quantization on"
    # The simulation quantizes every layer: with layers left in float (--keep-float, or NNCF's accuracy control
    # reverting some) it is not the artifact's quantization, so the cost check alone speaks.
    if options.keep_float or (options.max_drop is not None and target.accuracy_control):
        return None, "layers are kept in float, which the host simulation (every layer int8) does not model"
    if options.calib_method in CLIPPING_CALIBRATION:
        return None, (f"calibrated with {options.calib_method}, whose ranges clip on purpose; the host simulation "
                      "models min/max ranges")
    try:
        return simulate(source_model, source.reference.io, target.precision,
                        _model_inputs(source.reference, calibration, raw_pixels), _per_channel(options),
                        log_path), None
    except ImportError as exc:
        return None, f"the int8 simulation needs {exc.name or 'executorch'}: pip install 'edgedeploy[executorch]'"
    except ConversionError as exc:
        return None, f"the host simulation could not be built ({exc})"


def _onnx_details(graph: OnnxGraphStats | None, onnx_in: Path | None = None) -> dict[str, Any]:
    """How the ONNX graph was made; direct PyTorch routes name their exporter in their conversion details."""
    if graph is None:
        return {}
    return {"exporter": f"ONNX in ({onnx_in.name})" if onnx_in else "torch.onnx.export (TorchScript)",
            "opset": graph.opset,
            "onnx_nodes_before_simplify": graph.nodes_before, "onnx_nodes_after_simplify": graph.nodes_after}


def export(request: ExportRequest, on_step: Callable[[str], None] | None = None) -> ExportResult:
    target = get_target(request.target)
    target_options = target.validated_options(
        io_dtype=request.io_dtype, calib_method=request.calib_method, max_drop=request.max_drop,
        val_dir=request.val_dir, keep_float=request.keep_float, input_layout=request.input_layout,
        weight_granularity=request.weight_granularity, ptq=request.ptq,
    )
    check_calibration(target_options.ptq, request.calib_size)
    if target_options.max_drop is not None and target_options.val_dir is None:
        raise ConfigError("--max-drop needs --val DIR: a labeled image folder to measure the drop on")
    if request.parity_min_fidelity_db is not None and not target.parity.quantized:
        raise ConfigError(f"--parity-min-fidelity applies to quantized targets; {target.name} is checked against the "
                          "float model (--parity-atol, --parity-min-agreement)")
    convert = target.load_converter()
    steps = _Steps(on_step)
    with staging_dir(request.out_dir) as stage:
        with steps("load onnx" if request.onnx else "load weights"):
            source = (_onnx_source(request, target, target_options, stage) if request.onnx is not None
                      else _torch_source(request))
        config, reference = source.config, source.reference
        stem = request.name or config.name
        final = Path(request.out_dir) / target.artifact_name(stem)
        parity_data = _parity_data(request)
        # uint8 IO means camera bytes in: normalization moves into the graph.
        raw_pixels = target_options.io_dtype is IoDtype.UINT8
        pre = reference.io.preprocessing
        batch = -1 if request.dynamic_batch else 1
        onnx_io = ModelIO(
            input=InputSpec(INPUT_NAME, (batch, 3, config.resolution, config.resolution)),
            output=OutputSpec(OUTPUT_NAME, config.num_classes, layout=get_task(reference.io.task).output_layout),
            preprocessing=replace(pre, raw_pixels=True) if raw_pixels else pre,
            task=reference.io.task,
        )
        calibration = None
        if target.calibrated:
            with steps("calibration"):
                calibration = load_calibration(_calibration_dir(request), onnx_io.preprocessing,
                                               request.calib_size, request.calib_seed)
        # The model the converter sees: the PTQ methods' prepared copy (parity still compares with the original).
        source_model, ptq = source.model, None
        if target_options.ptq:
            with steps("ptq"):
                source_model, ptq = _prepared(reference, target_options, calibration, raw_pixels)
        graph_model = converter_model(source_model, pre, raw_pixels)
        if target.source == "pytorch" and request.dynamic_batch:
            raise ConfigError(f"{target.name} has a fixed batch of 1: drop --dynamic-batch")
        graph, src = None, None
        if target.source == "onnx":
            exported = source.onnx_path
            if exported is None:
                exported = stage / "exported.onnx"
                with steps("export onnx"):
                    export_onnx(graph_model, exported, config.resolution, request.opset, request.dynamic_batch)
            with steps("simplify"):
                graph, src = simplify_onnx(exported, stage / "simplified.onnx"), stage / "simplified.onnx"
        staged = stage / final.name
        log_path = stage / f"{final.name}.log"
        ctx = ExportContext(target=target.name, config=config, onnx_io=onnx_io, workdir=stage, log_path=log_path,
                            sample_images=parity_data, calibration=calibration, options=target_options,
                            torch_model=graph_model)
        try:
            with steps(f"convert {target.name}"):
                conversion = convert(src, staged, ctx)
            with steps("precision"):
                # Accuracy control decides itself which layers go back to float.
                controlled = target.accuracy_control and target_options.max_drop is not None
                allowed_float = (ANY_LAYER,) if controlled else target_options.keep_float
                precision = verify_precision(target.runtime, staged, target.precision.value, allowed_float)
            if not precision.verified:
                raise PrecisionError(f"{target.name} is not {target.precision}: {'; '.join(precision.problems)}")
        except EdgeDeployError as exc:
            # Keep the converter's log where the user can read it; it is not an artifact.
            if log_path.is_file():
                os.replace(log_path, final.with_name(log_path.name))
                # Chained, so --debug shows where the failure came from.
                raise type(exc)(f"{exc} (log: {final.with_name(log_path.name)})") from exc
            raise
        manifest = _manifest(target, final, request, source, graph, conversion)
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
                simulation, simulation_skipped = _simulation(source, source_model, target, target_options,
                                                             calibration, raw_pixels, log_path)
        with steps("parity"):
            # The staged manifest is not final (no sha256 yet): nothing to verify against until it is.
            candidate = load_runner(str(staged), LoadOptions(threads=request.threads, verify=False),
                                    runtime=target.runtime)
            report = check_parity(candidate, reference, parity_data, request.parity_images, tolerance, simulation,
                                  simulation_skipped)
        report.verify(final.name)
        manifest["parity"] = report.to_dict()
        if target_options.max_drop is not None:
            with steps("accuracy requirement"):
                requirement = check_requirement(candidate, reference, Path(str(target_options.val_dir)),
                                                target_options.max_drop)
            manifest["export"]["accuracy_requirement"] = requirement.to_dict()
            requirement.verify(final.name, target.name)
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
