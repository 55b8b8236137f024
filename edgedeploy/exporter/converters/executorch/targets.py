"""ExecuTorch's export targets: .pte programs lowered to the XNNPACK delegate, fp32 and PT2E int8."""

from __future__ import annotations

from edgedeploy.exporter.choices import Precision
from edgedeploy.exporter.target import EVERY_PTQ_METHOD, PER_CHANNEL_FIRST, Target
from edgedeploy.exporter.tolerance import FLOAT_PARITY, QUANTIZED_PARITY

__all__ = ["TARGETS"]

_CONVERT = "edgedeploy.exporter.converters.executorch.convert"

TARGETS = (
    Target(
        name="executorch-fp32",
        description="ExecuTorch .pte fp32, torch.export + XNNPACK delegate (ExecuTorch runtime)",
        file_suffix="_xnnpack_fp32.pte",
        runtime="executorch",
        converter=f"{_CONVERT}:to_executorch_fp32",
        parity=FLOAT_PARITY,
        extra="executorch",
        source="pytorch",
    ),
    Target(
        name="executorch-int8",
        description="ExecuTorch .pte int8 via PT2E with the XNNPACK quantizer, XNNPACK delegate (ExecuTorch runtime)",
        file_suffix="_xnnpack_int8.pte",
        runtime="executorch",
        converter=f"{_CONVERT}:to_executorch_int8",
        precision=Precision.INT8,
        parity=QUANTIZED_PARITY,
        extra="executorch",
        calibrated=True,
        source="pytorch",
        weight_granularities=PER_CHANNEL_FIRST,
        ptq_methods=EVERY_PTQ_METHOD,
        float_target="executorch-fp32",
    ),
)
