"""Simplified ONNX -> OpenVINO IR (fp32, fp16 weights) and int8 via NNCF post-training quantization.

NNCF settings for openvino-int8, chosen by measurement on the val split (docs/targets.md,
benchmarks): preset MIXED (symmetric int8 weights, asymmetric activations), because
ReLU6 outputs are one-sided and the default PERFORMANCE preset's symmetric activation
ranges waste half the codes, which cost measurably more top-1; fast bias correction
(full bias correction was far slower on 2 cores for no measured gain); no model_type
(that switch is for transformers); the whole calibration set as the statistics subset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.logcapture import captured_output
from edgedeploy.exporter.choices import CalibMethod
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure, nchw_batch, squeezed

__all__ = ["to_openvino_fp32", "to_openvino_fp16", "to_openvino_int8", "TOOLS"]

TOOLS = ("openvino", "nncf")
# NNCF's activation range estimators (RangeEstimatorParametersSet) by --calib-method. None:
# left to NNCF, whose own choice for per-tensor activations is the mean over images of each
# image's min and max; it is also what a target offering no choice of method gets.
_RANGE_ESTIMATORS: dict[CalibMethod, str | None] = {
    CalibMethod.MEAN_MINMAX: None, CalibMethod.MINMAX: "MINMAX", CalibMethod.MEAN_QUANTILE: "MEAN_QUANTILE",
    CalibMethod.HISTOGRAM: "HISTOGRAM",
}


def _save(model: Any, dst: Path, compress_to_fp16: bool) -> tuple[Path, ...]:
    import openvino as ov

    ov.save_model(model, str(dst), compress_to_fp16=compress_to_fp16)
    return (dst.with_suffix(".bin"),)


def _read_onnx(src: Path) -> Any:
    import openvino as ov

    model = ov.convert_model(str(src))
    # Keep the exported input name on the IR (convert_model keeps it; make it the only name).
    model.inputs[0].get_tensor().set_names({"input"})
    return model


def _float(compress: bool) -> Any:
    def convert(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
        companions = _save(_read_onnx(src), dst, compress_to_fp16=compress)
        return Conversion(io=ctx.onnx_io, details={"converter": "openvino.convert_model",
                                                   "weights": "float16" if compress else "float32"},
                          tools=("openvino",), companions=companions)

    return convert


to_openvino_fp32 = _float(False)
to_openvino_fp16 = _float(True)


def _validation_set(ctx: ExportContext) -> tuple[list[tuple[np.ndarray, Any]], str]:
    """(NCHW input, labeled image) pairs of --val, read as the model's task reads its data."""
    from edgedeploy.data.preprocess import preprocess
    from edgedeploy.tasks import get_task

    val_dir = ctx.options.val_dir
    if val_dir is None:
        raise ConfigError("--max-drop needs --val DIR: a labeled image folder to measure the drop on")
    task = get_task(ctx.onnx_io.task)
    dataset = task.open_dataset(val_dir)
    if not dataset.labeled:
        raise DataError(f"{val_dir}: --val needs labeled data ({task.describe_layout()}, with labels)")
    spec = ctx.onnx_io.preprocessing
    items = [(nchw_batch(preprocess(i.image, spec)), i) for i in dataset]
    return items, str(val_dir)


def to_openvino_int8(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """NNCF PTQ on the calibration set; with ``max_drop``, accuracy-controlled against ``val_dir``."""
    import nncf

    calibration_set = ctx.required_calibration()
    model = _read_onnx(src)
    calibration = nncf.Dataset([nchw_batch(image) for image in calibration_set.images])
    settings: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": True,
                                "subset_size": len(calibration_set.images)}
    method = ctx.options.calib_method or CalibMethod.MEAN_MINMAX
    estimator = _RANGE_ESTIMATORS[method]
    if estimator is not None:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        settings["advanced_parameters"] = AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet, estimator))
    keep_float = list(ctx.options.keep_float)
    if keep_float:
        # NNCF's ignored scope; it refuses names that are not in the model (strict), which is reported below.
        settings["ignored_scope"] = nncf.IgnoredScope(names=keep_float)
    details: dict[str, Any] = {"converter": "openvino.convert_model + nncf", "weights": "int8 per-channel",
                               "activations": "int8", "nncf": {"preset": "mixed", "fast_bias_correction": True,
                                                               "subset_size": settings["subset_size"]},
                               "calib_method": method.value, "calibration": calibration_set.describe(),
                               **({"keep_float": keep_float} if keep_float else {})}
    quantize: Callable[[], Any] = partial(nncf.quantize, model, calibration, **settings)
    max_drop = ctx.options.max_drop
    if max_drop is not None:
        items, val_dir = _validation_set(ctx)
        quantize = partial(_quantize_with_accuracy_control, nncf, model, calibration, settings, items, max_drop, ctx)
        details["accuracy_control"] = {"max_drop": max_drop, "val": val_dir, "val_images": len(items)}
    # NNCF logs through `logging` and draws progress bars: all of it goes to the artifact's log.
    nncf_logger = logging.getLogger("nncf")
    with captured_output(ctx.log_path):
        # Straight to the file: sys.stderr may be a wrapper that bypasses the redirected descriptor.
        handler = logging.FileHandler(ctx.log_path)
        nncf_logger.addHandler(handler)
        try:
            quantized = quantize()
        except Exception as exc:
            if keep_float and "ignored" in str(exc).lower():
                raise ConfigError(f"--keep-float: {squeezed(str(exc), 200)}; `edgedeploy diagnose` "
                                  "lists the layer names") from exc
            raise conversion_failure("NNCF quantization", exc, ctx.log_path, 2) from exc
        finally:
            nncf_logger.removeHandler(handler)
            handler.close()
    companions = _save(quantized, dst, compress_to_fp16=False)
    return Conversion(io=ctx.onnx_io, details=details, tools=TOOLS, companions=companions)


def _quantize_with_accuracy_control(
    nncf: Any, model: Any, calibration: Any, settings: dict[str, Any], validation: list[tuple[np.ndarray, Any]],
    max_drop: float, ctx: ExportContext,
) -> Any:
    """NNCF's accuracy-aware PTQ: layers go back to float until the task's metric (top-1, mIoU) drops by at
    most ``max_drop`` points."""
    from edgedeploy.tasks import get_task

    task = get_task(ctx.onnx_io.task)

    def validate(compiled: Any, data: Any) -> float:
        request = compiled.create_infer_request()
        accumulator = task.accumulator().bind(ctx.onnx_io)
        for image, item in data:
            results = request.infer({0: image})
            accumulator.update(ctx.onnx_io.read({spec.name: results[i] for i, spec in enumerate(ctx.onnx_io.outputs)}),
                               [item])
        return float(accumulator.metrics(False)[task.metric])  # points, so max_drop is in the metric's points

    return nncf.quantize_with_accuracy_control(
        model, calibration, nncf.Dataset(validation), validate, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
        **settings,
    )
