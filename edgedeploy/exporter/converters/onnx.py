"""PyTorch -> ONNX -> simplified ONNX.

Exporter choice: the TorchScript-based ``torch.onnx.export(dynamo=False)``. For a
static CNN it emits the requested opset natively (the dynamo exporter starts at
opset 18 and its down-conversion to 17 fails on this graph, silently keeping 18),
it is many times faster, and its output is byte-for-byte deterministic.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from edgedeploy.core.errors import ConfigError, ConversionError
from edgedeploy.core.io_spec import INPUT_NAME, OUTPUT_NAME
from edgedeploy.exporter.choices import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from edgedeploy.exporter.context import Conversion, ExportContext

__all__ = ["export_onnx", "simplify_onnx", "OnnxGraphStats", "as_artifact"]

BATCH_DIM = "batch"


@dataclass(frozen=True)
class OnnxGraphStats:
    nodes_before: int
    nodes_after: int
    opset: int


def export_onnx(model: torch.nn.Module, path: Path, resolution: int, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False, output_names: tuple[str, ...] = (OUTPUT_NAME,)) -> None:
    """Export ``model`` (NCHW float32 input ``input``; outputs named ``output_names`` in its forward pass's
    order, ``logits`` for a one-output model) to ``path``."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    dummy = torch.zeros(1, 3, resolution, resolution)
    dynamic_axes = ({name: {0: BATCH_DIM} for name in (INPUT_NAME, *output_names)} if dynamic_batch else None)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream in favour of dynamo; see module docstring.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(output_names),
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )


def simplify_onnx(src: Path, dst: Path) -> OnnxGraphStats:
    """onnxsim the graph at ``src`` into ``dst``; both must pass ``onnx.checker``."""
    import onnxsim

    model = onnx.load(str(src))
    onnx.checker.check_model(model, full_check=True)
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ConversionError("onnxsim could not prove the simplified graph equivalent to the exported one")
    onnx.checker.check_model(simplified, full_check=True)
    onnx.save(simplified, str(dst))
    opset = next(o.version for o in simplified.opset_import if o.domain in ("", "ai.onnx"))
    return OnnxGraphStats(len(model.graph.node), len(simplified.graph.node), opset)


def as_artifact(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """The ``onnx`` target: the simplified graph itself is the artifact."""
    shutil.copyfile(src, dst)
    return Conversion(io=ctx.onnx_io)
