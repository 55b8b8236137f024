"""Simplified ONNX -> OpenVINO IR (fp32, fp16 weights) and int8 via NNCF post-training quantization.

NNCF settings for openvino-int8, chosen by measurement on the val split (600
images, 200 calibration images): preset MIXED (symmetric int8 weights, asymmetric
activations: 76.83 top-1, a 0.17-point drop; the default PERFORMANCE preset's
symmetric activations gave 76.00, a 1.0-point drop, because ReLU6 outputs are
one-sided and a symmetric range wastes half the codes), fast bias correction
(full bias correction took many minutes on 2 cores for no measured gain), no
model_type (that switch is for transformers), the whole calibration set as the
statistics subset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError, ValidationError
from edgedeploy.core.logcapture import captured_output, log_tail
from edgedeploy.export.context import Conversion, ExportContext

__all__ = ["to_openvino_fp32", "to_openvino_fp16", "to_openvino_int8", "TOOLS", "CALIB_METHODS"]

TOOLS = ("openvino", "nncf")
# NNCF's activation range estimators (RangeEstimatorParametersSet); the first is what NNCF
# itself uses for per-tensor activations: the mean over images of each image's min and max.
CALIB_METHODS = {"mean-minmax": "MEAN_MINMAX", "minmax": "MINMAX", "mean-quantile": "MEAN_QUANTILE",
                 "histogram": "HISTOGRAM"}


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


def _nchw(images_hwc: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(x.transpose(2, 0, 1)[None]) for x in images_hwc]


def _validation_set(ctx: ExportContext) -> tuple[list[tuple[np.ndarray, int]], str]:
    from edgedeploy.data.datasets import ImageFolder
    from edgedeploy.data.preprocess import preprocess

    val_dir = ctx.options.get("val_dir")
    if val_dir is None:
        raise ConfigError("--max-drop needs --val DIR: a labeled image folder to measure the drop on")
    dataset = ImageFolder.open(val_dir)
    if not dataset.labeled:
        raise DataError(f"{val_dir}: --val needs a labeled folder (<wnid>/<image>)")
    spec = ctx.onnx_io.preprocessing
    items = [(np.ascontiguousarray(preprocess(i.image, spec).transpose(2, 0, 1)[None]), int(i.label)) for i in dataset]
    return items, str(val_dir)


def to_openvino_int8(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """NNCF PTQ on the calibration set; with ``max_drop``, accuracy-controlled against ``val_dir``."""
    import nncf

    if ctx.calibration is None:
        raise DataError("openvino-int8 needs a calibration set: pass --calib DIR")
    model = _read_onnx(src)
    calibration = nncf.Dataset(_nchw(ctx.calibration.images))
    settings: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": True,
                                "subset_size": len(ctx.calibration.images)}
    method = ctx.options.get("calib_method") or next(iter(CALIB_METHODS))
    if method not in CALIB_METHODS:
        raise ConfigError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {method!r}")
    if method != next(iter(CALIB_METHODS)):
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        settings["advanced_parameters"] = AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet, CALIB_METHODS[method]))
    keep_float = list(ctx.options.get("keep_float") or ())
    if keep_float:
        # NNCF's ignored scope; it refuses names that are not in the model (strict), which is reported below.
        settings["ignored_scope"] = nncf.IgnoredScope(names=keep_float)
    max_drop = ctx.options.get("max_drop")
    details: dict[str, Any] = {"converter": "openvino.convert_model + nncf", "weights": "int8 per-channel",
                               "activations": "int8", "nncf": {"preset": "mixed", "fast_bias_correction": True,
                                                               "subset_size": settings["subset_size"]},
                               "calib_method": method, "calibration": ctx.calibration.describe(),
                               **({"keep_float": keep_float} if keep_float else {})}
    # NNCF logs through `logging` and draws progress bars: all of it goes to the artifact's log.
    nncf_logger = logging.getLogger("nncf")
    with captured_output(ctx.log_path):
        # Straight to the file: sys.stderr may be a wrapper that bypasses the redirected descriptor.
        handler = logging.FileHandler(ctx.log_path)
        nncf_logger.addHandler(handler)
        try:
            if max_drop is None:
                quantized = nncf.quantize(model, calibration, **settings)
            else:
                quantized = _quantize_with_accuracy_control(nncf, model, calibration, settings, ctx, max_drop, details)
        except (ConfigError, DataError):
            raise
        except Exception as exc:
            if keep_float and "ignored" in str(exc).lower():
                raise ConfigError(f"--keep-float: {' '.join(str(exc).split())[:200]}; `edgedeploy diagnose` "
                                  "lists the layer names") from None
            raise ValidationError(f"NNCF quantization failed ({exc.__class__.__name__}: "
                                  f"{' '.join(str(exc).split())[:160]}): {log_tail(ctx.log_path, 2)}") from None
        finally:
            nncf_logger.removeHandler(handler)
            handler.close()
    companions = _save(quantized, dst, compress_to_fp16=False)
    return Conversion(io=ctx.onnx_io, details=details, tools=TOOLS, companions=companions)


def _quantize_with_accuracy_control(
    nncf: Any, model: Any, calibration: Any, settings: dict[str, Any], ctx: ExportContext, max_drop: float,
    details: dict[str, Any],
) -> Any:
    """NNCF's accuracy-aware PTQ: layers go back to float until top-1 drops by at most ``max_drop`` points."""
    items, val_dir = _validation_set(ctx)

    def validate(compiled: Any, data: Any) -> float:
        request = compiled.create_infer_request()
        correct = total = 0
        for image, label in data:
            correct += int(request.infer({0: image})[0].argmax() == label)
            total += 1
        return 100.0 * correct / max(total, 1)  # percent, so max_drop is in top-1 points

    quantized = nncf.quantize_with_accuracy_control(
        model, calibration, nncf.Dataset(items), validate, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
        **settings,
    )
    details["accuracy_control"] = {"max_drop": max_drop, "val": val_dir, "val_images": len(items)}
    return quantized
