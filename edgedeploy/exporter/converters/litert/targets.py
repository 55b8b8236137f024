"""LiteRT's export targets: .tflite files by two routes, onnx2tf from the ONNX graph (tflite-*) and
litert-torch straight from PyTorch with AI Edge Quantizer (litert-*)."""

from __future__ import annotations

from edgedeploy.exporter.choices import CalibMethod, IoDtype, Precision
from edgedeploy.exporter.target import EVERY_PTQ_METHOD, NHWC_FIRST, PER_CHANNEL_FIRST, Target
from edgedeploy.exporter.tolerance import FLOAT_PARITY, FP16_PARITY, QUANTIZED_PARITY

__all__ = ["TARGETS"]

_ONNX2TF = "edgedeploy.exporter.converters.litert.tflite"
_LITERT_TORCH = "edgedeploy.exporter.converters.litert.litert_torch"
# Absolute min/max first: the quantizer's own moving average clips the logits (docs, measured).
_AEQ_CALIB_METHODS = (CalibMethod.MINMAX, CalibMethod.MOVING_AVERAGE)

TARGETS = (
    Target(
        name="tflite-fp32",
        description="TFLite fp32 via onnx2tf, NHWC input (LiteRT)",
        file_suffix="_float32.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_ONNX2TF}:to_tflite_fp32",
        parity=FLOAT_PARITY,
        extra="tflite",
    ),
    Target(
        name="tflite-fp16",
        description="TFLite with fp16 weights, float compute (LiteRT)",
        file_suffix="_float16.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_ONNX2TF}:to_tflite_fp16",
        precision=Precision.FP16,
        parity=FP16_PARITY,
        extra="tflite",
        float_target="tflite-fp32",
    ),
    Target(
        name="tflite-dynamic",
        description="TFLite dynamic range: int8 weights, float activations (LiteRT)",
        file_suffix="_dynamic.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_ONNX2TF}:to_tflite_dynamic",
        precision=Precision.INT8_WEIGHTS,
        parity=QUANTIZED_PARITY,
        extra="tflite",
        float_target="tflite-fp32",
    ),
    Target(
        name="tflite-int8",
        description="TFLite full-integer PTQ: int8 weights (per-channel by default) and activations (LiteRT)",
        file_suffix="_int8.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_ONNX2TF}:to_tflite_int8",
        precision=Precision.INT8,
        keeps_float=True,
        keep_float_io_dtype=IoDtype.FLOAT32,
        parity=QUANTIZED_PARITY,
        extra="tflite",
        calibrated=True,
        io_dtypes=(IoDtype.INT8, IoDtype.UINT8, IoDtype.FLOAT32),
        weight_granularities=PER_CHANNEL_FIRST,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="tflite-fp32",
    ),
    # Direct PyTorch routes: no ONNX in between.
    Target(
        name="litert-fp32",
        description="TFLite fp32 straight from PyTorch via litert-torch, NHWC input by default (LiteRT)",
        file_suffix="_litert_float32.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_LITERT_TORCH}:to_litert_fp32",
        parity=FLOAT_PARITY,
        extra="litert-torch",
        source="pytorch",
        input_layouts=NHWC_FIRST,
    ),
    Target(
        name="litert-int8",
        description="TFLite int8 (weights, activations, IO) via litert-torch + AI Edge Quantizer (LiteRT)",
        file_suffix="_litert_int8.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_LITERT_TORCH}:to_litert_int8",
        precision=Precision.INT8,
        parity=QUANTIZED_PARITY,
        extra="litert-torch",
        calibrated=True,
        keeps_float=True,
        source="pytorch",
        input_layouts=NHWC_FIRST,
        calib_methods=_AEQ_CALIB_METHODS,
        weight_granularities=PER_CHANNEL_FIRST,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="litert-fp32",
    ),
    Target(
        name="litert-a16w8",
        description="TFLite 16x8: int16 activations, int8 weights, via litert-torch + AI Edge Quantizer (LiteRT)",
        file_suffix="_litert_a16w8.tflite",
        runtime="litert",
        graph_postprocess="edgedeploy.exporter.converters.litert.detection_postprocess:append_to_tflite_file",
        converter=f"{_LITERT_TORCH}:to_litert_a16w8",
        precision=Precision.A16W8,
        parity=QUANTIZED_PARITY,
        extra="litert-torch",
        calibrated=True,
        keeps_float=True,
        source="pytorch",
        input_layouts=NHWC_FIRST,
        calib_methods=_AEQ_CALIB_METHODS,
        weight_granularities=PER_CHANNEL_FIRST,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="litert-fp32",
    ),
)
