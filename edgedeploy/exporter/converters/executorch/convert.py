"""PyTorch -> ExecuTorch .pte: ``torch.export``, the XNNPACK partitioner, and PT2E for int8.

ExecuTorch's documented CPU flow: ``torch.export.export`` the module,
``to_edge_transform_and_lower`` with ``XnnpackPartitioner`` (every op XNNPACK supports
runs inside its delegate; the rest stay portable ExecuTorch kernels), ``to_executorch``
and write the program buffer. int8 is PT2E post-training quantization with the XNNPACK
quantizer (symmetric int8 weights, per-channel unless --weight-granularity per-tensor;
asymmetric int8 activations), with conv -> ReLU6 pairs quantized as one unit
(xnnpack_relu6.py; shared with the host simulation in pt2e.py), calibrated on the same images as every
other int8 target, before lowering, so XNNPACK runs the quantized operators itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.core.logcapture import captured_output
from edgedeploy.exporter.choices import WeightGranularity
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure
from edgedeploy.exporter.converters.pt2e import pt2e_int8, torch_exported
from edgedeploy.runtimes.executorch.graph import delegation_summary

__all__ = ["to_executorch_fp32", "to_executorch_int8", "TOOLS"]

TOOLS = ("executorch", "torchao")


def _torch_export(model: Any, ctx: ExportContext) -> Any:
    return torch_exported(model, ctx.config.resolution, ctx.log_path)


def _lower_and_write(exported: Any, dst: Path, ctx: ExportContext) -> None:
    """Lower to XNNPACK and write the program; call with the tools' output captured."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as exc:
        raise conversion_failure("ExecuTorch lowering (XNNPACK)", exc, ctx.log_path) from exc
    dst.write_bytes(program.buffer)


def _conversion(dst: Path, ctx: ExportContext, **details: Any) -> Conversion:
    # Fixed batch of 1, NCHW float32: the PyTorch module's own input (ctx.onnx_io is the same spec).
    return Conversion(io=ctx.onnx_io, details={"converter": "ExecuTorch (XNNPACK delegate)",
                                               "exporter": "torch.export", **details,
                                               "delegation": delegation_summary(dst)}, tools=TOOLS)


def to_executorch_fp32(src: Path | None, dst: Path, ctx: ExportContext) -> Conversion:
    with captured_output(ctx.log_path):
        _lower_and_write(_torch_export(ctx.torch_model, ctx), dst, ctx)
    return _conversion(dst, ctx, weights="float32")


def to_executorch_int8(src: Path | None, dst: Path, ctx: ExportContext) -> Conversion:
    calibration = ctx.required_calibration()
    granularity = ctx.options.weight_granularity or WeightGranularity.PER_CHANNEL
    with captured_output(ctx.log_path):
        quantized = pt2e_int8(ctx.torch_model, calibration.images, granularity is WeightGranularity.PER_CHANNEL,
                              ctx.config.resolution, ctx.log_path)
        _lower_and_write(_torch_export(quantized, ctx), dst, ctx)
    return _conversion(dst, ctx, weights=f"int8 {granularity}", activations="int8", calibration=calibration.describe())
