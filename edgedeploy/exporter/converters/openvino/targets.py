"""OpenVINO's export targets: IR (.xml + .bin) in fp32, with fp16-compressed weights, and int8 by NNCF."""

from __future__ import annotations

from edgedeploy.exporter.choices import CalibMethod, Precision
from edgedeploy.exporter.target import EVERY_PTQ_METHOD, Target
from edgedeploy.exporter.tolerance import FLOAT_PARITY, FP16_PARITY, QUANTIZED_PARITY

__all__ = ["TARGETS"]

_CONVERT = "edgedeploy.exporter.converters.openvino.convert"

TARGETS = (
    Target(
        name="openvino-fp32",
        description="OpenVINO IR fp32 (.xml + .bin), CPU plugin",
        file_suffix="_fp32.xml",
        runtime="openvino",
        converter=f"{_CONVERT}:to_openvino_fp32",
        parity=FLOAT_PARITY,
        extra="openvino",
    ),
    Target(
        name="openvino-fp16",
        description="OpenVINO IR with fp16-compressed weights, CPU plugin",
        file_suffix="_fp16.xml",
        runtime="openvino",
        converter=f"{_CONVERT}:to_openvino_fp16",
        precision=Precision.FP16,
        parity=FP16_PARITY,
        extra="openvino",
        float_target="openvino-fp32",
    ),
    Target(
        name="openvino-int8",
        description="OpenVINO IR int8 via NNCF post-training quantization (--max-drop: accuracy control)",
        file_suffix="_int8.xml",
        runtime="openvino",
        converter=f"{_CONVERT}:to_openvino_int8",
        precision=Precision.INT8,
        keeps_float=True,
        # NNCF's activation range estimators; the first is NNCF's own default.
        calib_methods=(CalibMethod.MEAN_MINMAX, CalibMethod.MINMAX, CalibMethod.MEAN_QUANTILE,
                       CalibMethod.HISTOGRAM),
        parity=QUANTIZED_PARITY,
        extra="openvino",
        calibrated=True,
        accuracy_control=True,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="openvino-fp32",
    ),
)
