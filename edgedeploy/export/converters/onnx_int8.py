"""Simplified ONNX -> int8 QDQ ONNX with ONNX Runtime's static quantization.

Follows ONNX Runtime's recommended recipe: ``quant_pre_process`` (symbolic shape
inference + graph optimization) first, then ``quantize_static`` in QDQ format with
int8 weights, per-channel unless --weight-granularity per-tensor. Activations are uint8 (U8S8), the combination ORT's x86
kernels are built for.

On x86 without VNNI, ORT's fused U8S8 kernels lose accuracy to the documented
VPMADDUBSW saturation, while the same model run as simulated quantization (graph
optimizations off) does not, so the quantization parameters themselves are sound
(README, benchmarks). S8S8, U8S8 with reduce_range and U8U8 (no speed-up) were all
less accurate on that CPU. On VNNI or ARM CPUs the kernels do not saturate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import INPUT_NAME
from edgedeploy.core.logcapture import captured_output
from edgedeploy.export.context import Conversion, ExportContext
from edgedeploy.export.converters.common import conversion_failure, nchw_batch
from edgedeploy.export.options import CalibMethod, WeightGranularity

__all__ = ["to_onnx_int8"]

TOOL = "ONNX Runtime quantization"


def to_onnx_int8(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = ctx.required_calibration()
    # A target that offers no choice of method gets ONNX Runtime's own default.
    method = ctx.options.calib_method or CalibMethod.MINMAX
    calibrate = {CalibMethod.MINMAX: CalibrationMethod.MinMax, CalibMethod.PERCENTILE: CalibrationMethod.Percentile,
                 CalibMethod.ENTROPY: CalibrationMethod.Entropy}[method]
    images = calibration.images

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._items, None)
            return None if image is None else {INPUT_NAME: nchw_batch(image)}

    keep_float = list(ctx.options.keep_float)
    granularity = ctx.options.weight_granularity or WeightGranularity.PER_CHANNEL
    prepared = ctx.workdir / "preprocessed.onnx"
    with captured_output(ctx.log_path):
        try:
            quant_pre_process(str(src), str(prepared))
        except Exception as exc:
            raise conversion_failure(TOOL, exc, ctx.log_path, 2) from exc
        _check_layer_names(prepared, keep_float)
        try:
            quantize_static(
                str(prepared), str(dst), Reader(),
                quant_format=QuantFormat.QDQ, per_channel=granularity is WeightGranularity.PER_CHANNEL,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=calibrate,
                extra_options={"CalibTensorRangeSymmetric": False},
                nodes_to_exclude=keep_float,
            )
        except Exception as exc:
            raise conversion_failure(TOOL, exc, ctx.log_path, 2) from exc
    return Conversion(
        io=ctx.onnx_io,
        details={"converter": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                 "weights": f"int8 {granularity}", "activations": "uint8", "calib_method": method.value,
                 "calibration": calibration.describe(), **({"keep_float": keep_float} if keep_float else {})},
    )


def _check_layer_names(model: Path, names: list[str]) -> None:
    """ONNX Runtime ignores unknown nodes_to_exclude silently: a typo would quantize everything."""
    import onnx

    nodes = [n.name for n in onnx.load(str(model)).graph.node]
    unknown = [name for name in names if name not in set(nodes)]
    if unknown:
        example = next((n for n in nodes if n.endswith("Conv")), nodes[0])
        raise ConfigError(f"--keep-float: no node named {', '.join(map(repr, unknown))} in this model; "
                          f"`edgedeploy diagnose` lists the layer names (e.g. {example!r})")
