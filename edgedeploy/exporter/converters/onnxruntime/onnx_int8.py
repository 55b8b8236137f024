"""Simplified ONNX -> int8 QDQ ONNX with ONNX Runtime's static quantization.

Follows ONNX Runtime's recommended recipe: ``quant_pre_process`` (symbolic shape
inference + graph optimization) first, then ``quantize_static`` in QDQ format with
int8 weights, per-channel unless --weight-granularity per-tensor. Activations are uint8 (U8S8), the combination ORT's x86
kernels are built for.

On x86 without VNNI, ORT's U8S8 kernels saturate (VPMADDUBSW's int16 pair sums): measured under an emulated
AVX2 CPU on the float-trained fixtures, 8-bit weights everywhere lost 3.0 top-1 points (MobileNetV2) and 13% of
DeepLab's pixels against the same artifact on a VNNI CPU; S8S8 saturates alike; ``reduce_range`` everywhere
and U8U8 do not saturate but cost 3.7 and 1.3 top-1 points (U8U8 also runs 1.5x slower with VNNI). So the layers
whose pair sums overflow on the calibration images get 7-bit weights and the rest keep 8 (ort_saturation.py):
the same artifact computes the same on every CPU, at U8S8's speed (docs/int8.md, onnx-int8 on CPUs without VNNI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import INPUT_NAME
from edgedeploy.core.logcapture import captured_output
from edgedeploy.exporter.choices import CalibMethod, WeightGranularity
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure, nchw_batch
from edgedeploy.exporter.converters.onnxruntime.ort_saturation import saturating_layers

__all__ = ["to_onnx_int8"]

TOOL = "ONNX Runtime quantization"
# Calibration images the int16 pair sums are counted on, and the share of overflowing sums above which a layer
# gets 7-bit weights: 1e-4 kept DeepLab at 97.9% pixel agreement with float on an AVX2 CPU (98.1% with VNNI;
# 85.5% with 8 bits everywhere); 0 (every overflow) made 36 of its 43 layers 7-bit and cost 1.5 points of it.
SATURATION_IMAGES = 8
SATURATION_FRACTION = 1e-4


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
        per_channel = granularity is WeightGranularity.PER_CHANNEL

        def quantize(overrides: dict[str, list[dict[str, Any]]]) -> None:
            try:
                quantize_static(
                    str(prepared), str(dst), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=calibrate,
                    extra_options={"CalibTensorRangeSymmetric": False, "TensorQuantOverrides": overrides},
                    nodes_to_exclude=keep_float,
                )
            except Exception as exc:
                raise conversion_failure(TOOL, exc, ctx.log_path, 2) from exc

        quantize({})
        # Layers whose 8-bit weights would saturate ONNX Runtime's kernels on x86 without VNNI get 7-bit weights
        # (ort_saturation.py); the artifact then computes the same on every CPU.
        try:
            saturating = saturating_layers(prepared, dst, [nchw_batch(i) for i in images[:SATURATION_IMAGES]],
                                           SATURATION_FRACTION)
        except Exception as exc:
            raise conversion_failure("counting the int16 pair sums (ort_saturation.py)", exc, ctx.log_path) from exc
        if saturating:
            quantize(_seven_bit(prepared, saturating, per_channel))
    return Conversion(
        io=ctx.onnx_io,
        details={"converter": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                 "weights": f"int8 {granularity}", "activations": "uint8", "calib_method": method.value,
                 "calibration": calibration.describe(), **({"keep_float": keep_float} if keep_float else {}),
                 "weights_7bit": {"layers": sorted(saturating),
                                  "channels": sum(int(c.sum()) for c in saturating.values()) if per_channel else None,
                                  "why": f"more than {SATURATION_FRACTION:g} of their 8-bit pair sums overflow int16 "
                                         "on the calibration images (x86 U8S8 kernels without VNNI)"}},
    )


def _seven_bit(model: Path, saturating: dict[str, np.ndarray], per_channel: bool) -> dict[str, list[dict[str, Any]]]:
    """ONNX Runtime's tensor overrides giving the saturating channels 7-bit weights: symmetric scales max|w| / 64
    for them and max|w| / 127 (ONNX Runtime's own) for the rest; a per-tensor layer goes 7-bit whole."""
    import onnx
    import onnx.numpy_helper

    if not per_channel:
        return {name: [{"reduce_range": True}] for name in saturating}
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(model)).graph.initializer
               if i.name in saturating}
    overrides = {}
    for name, channels in saturating.items():
        absmax = np.abs(weights[name]).reshape(len(weights[name]), -1).max(axis=1)
        overrides[name] = [{"axis": 0, "scale": np.float32(max(float(m), 1e-12) / (64 if seven else 127)),
                            "zero_point": np.int8(0)} for m, seven in zip(absmax, channels)]
    return overrides


def _check_layer_names(model: Path, names: list[str]) -> None:
    """ONNX Runtime ignores unknown nodes_to_exclude silently: a typo would quantize everything."""
    import onnx

    nodes = [n.name for n in onnx.load(str(model)).graph.node]
    unknown = [name for name in names if name not in set(nodes)]
    if unknown:
        example = next((n for n in nodes if n.endswith("Conv")), nodes[0])
        raise ConfigError(f"--keep-float: no node named {', '.join(map(repr, unknown))} in this model; "
                          f"`edgedeploy diagnose` lists the layer names (e.g. {example!r})")
