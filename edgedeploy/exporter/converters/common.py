"""What the converters share: the NCHW batches the ONNX graph takes, one message shape for a
failed third-party conversion call, and the IO of a written .tflite read back from LiteRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import ConversionError
from edgedeploy.core.io_spec import InputSpec, ModelIO, OutputSpec
from edgedeploy.core.logcapture import log_tail
from edgedeploy.exporter.context import ExportContext

__all__ = ["nchw_batch", "squeezed", "conversion_failure", "litert_artifact_io", "dense_layout"]


def nchw_batch(image_hwc: np.ndarray) -> np.ndarray:
    """One preprocessed HWC image as the NCHW batch of one that the ONNX graph takes."""
    return np.ascontiguousarray(image_hwc.transpose(2, 0, 1)[None])


def squeezed(text: str, limit: int) -> str:
    """``text`` on one line, cut at ``limit`` characters: tools' messages run to pages of frames."""
    return " ".join(text.split())[:limit]


def conversion_failure(tool: str, exc: BaseException, log_path: Path, log_lines: int = 3) -> ConversionError:
    """``<tool> failed (<exception>: <message>): <last lines of the log>``.

    Raise it ``from exc``: the message stays one line, and --debug shows the tool's own traceback.
    """
    return ConversionError(f"{tool} failed ({exc.__class__.__name__}: {squeezed(str(exc), 160)}): "
                           f"{log_tail(log_path, log_lines)}")


def litert_artifact_io(path: Path, ctx: ExportContext) -> ModelIO:
    """The converted .tflite's real IO (layout, dtype, quantization) as LiteRT reads it."""
    from edgedeploy.runtimes.litert.runner import open_interpreter, quantization_of

    interpreter = open_interpreter(path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"])
    return ModelIO(
        input=InputSpec(inp["name"], shape, np.dtype(inp["dtype"]).name, "NCHW" if shape[1] == 3 else "NHWC",
                        quantization_of(inp)),
        output=OutputSpec(out["name"], ctx.config.num_classes, dtype=np.dtype(out["dtype"]).name,
                          quantization=quantization_of(out),
                          layout=dense_layout(tuple(int(d) for d in out["shape"]), ctx)),
        preprocessing=ctx.onnx_io.preprocessing,
        task=ctx.onnx_io.task,
    )


def dense_layout(shape: tuple[int, ...], ctx: ExportContext) -> str | None:
    """Where a converted dense output keeps its classes (converters may move them last); None for a
    vector output."""
    if ctx.onnx_io.output.layout is None:
        return None
    return "NHWC" if len(shape) == 4 and shape[-1] == ctx.config.num_classes and shape[1] != shape[-1] else "NCHW"
