"""ONNX Runtime's export targets: the simplified ONNX graph itself, and its QDQ int8 quantization."""

from __future__ import annotations

from edgedeploy.exporter.choices import CalibMethod, Precision
from edgedeploy.exporter.target import EVERY_PTQ_METHOD, PER_CHANNEL_FIRST, Target
from edgedeploy.exporter.tolerance import FLOAT_PARITY, QUANTIZED_PARITY

__all__ = ["TARGETS"]

TARGETS = (
    Target(
        name="onnx",
        description="ONNX fp32, simplified with onnxsim (ONNX Runtime)",
        file_suffix=".onnx",
        runtime="onnxruntime",
        graph_postprocess="edgedeploy.exporter.converters.onnx_detection:append_to_onnx_file",
        converter="edgedeploy.exporter.converters.onnx:as_artifact",
        parity=FLOAT_PARITY,
    ),
    Target(
        name="onnx-int8",
        description="ONNX QDQ int8 via ONNX Runtime static quantization, int8 weights (per-channel by default)",
        file_suffix="_int8.onnx",
        runtime="onnxruntime",
        graph_postprocess="edgedeploy.exporter.converters.onnx_detection:append_to_onnx_file",
        converter="edgedeploy.exporter.converters.onnxruntime.onnx_int8:to_onnx_int8",
        precision=Precision.INT8,
        keeps_float=True,
        parity=QUANTIZED_PARITY,
        calibrated=True,
        calib_methods=(CalibMethod.MINMAX, CalibMethod.PERCENTILE, CalibMethod.ENTROPY),
        weight_granularities=PER_CHANNEL_FIRST,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="onnx",
    ),
)
