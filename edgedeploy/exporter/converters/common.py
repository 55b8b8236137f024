"""What the converters share: the NCHW batches the ONNX graph takes, one message shape for a
failed third-party conversion call, and the IO of a written .tflite read back from LiteRT."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    root = _root_cause(exc)
    because = f"; {root.__class__.__name__}: {squeezed(str(root), 160)}" if root is not exc else ""
    return ConversionError(f"{tool} failed ({exc.__class__.__name__}: {squeezed(str(exc), 160)}{because}): "
                           f"{log_tail(log_path, log_lines)}")


def _root_cause(exc: BaseException) -> BaseException:
    """The exception a tool's wrapping message ("Failed to get quantization parameters for tensor: ...") was
    raised from: the one that says why."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def litert_artifact_io(path: Path, ctx: ExportContext) -> ModelIO:
    """The converted .tflite's real IO (layout, dtype, quantization) as LiteRT reads it; each output keeps the
    meaning (name, classes, background slot) of the graph output it was converted from, in the graph's order."""
    from edgedeploy.runtimes.litert.runner import open_interpreter, output_names, quantization_of

    interpreter = open_interpreter(path)
    inp, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()
    specs = ctx.onnx_io.outputs
    if len(outputs) != len(specs):
        raise ConversionError(f"{path.name}: the converter wrote {len(outputs)} outputs, the model has {len(specs)}")
    names = output_names(interpreter)
    if len(specs) > 1:
        order = _match_outputs(specs, outputs, names, path)
        outputs, names = [outputs[i] for i in order], [names[i] for i in order]
    shape = tuple(int(d) for d in inp["shape"])
    # A one-output model's output takes the file's name; several keep the model's and record the file's.
    first, *more = [replace(spec, name=spec.name if len(specs) > 1 else out["name"],
                            tensor=name if len(specs) > 1 and name != spec.name else None,
                            dtype=np.dtype(out["dtype"]).name, quantization=quantization_of(out),
                            layout=dense_layout(tuple(int(d) for d in out["shape"]), ctx) if spec.layout != "tensor"
                            else spec.layout)
                    for spec, out, name in zip(specs, outputs, names)]
    return replace(ctx.onnx_io, input=InputSpec(inp["name"], shape, np.dtype(inp["dtype"]).name,
                                                "NCHW" if shape[1] == 3 else "NHWC", quantization_of(inp)),
                   output=first, more_outputs=tuple(more))


def _match_outputs(specs: tuple[OutputSpec, ...], outputs: list[dict[str, Any]], names: list[str], path: Path
                   ) -> list[int]:
    """Which file output each spec is: by name where the converter kept the names, else by the size of the last
    axis where that tells them apart (onnx2tf names them ``Identity``, ``Identity_1``, and the int8
    converter's signature can list them in another order); a model whose outputs cannot be told apart fails."""
    if set(names) == {spec.name for spec in specs}:
        return [names.index(spec.name) for spec in specs]
    widths = [int(o["shape"][-1]) for o in outputs]
    wanted = [spec.num_classes + int(spec.background_class) for spec in specs]
    if sorted(widths) == sorted(wanted) and len(set(wanted)) == len(wanted):
        return [widths.index(w) for w in wanted]
    # Same widths: the names TF gives a graph's outputs carry their position (Identity, Identity_1, ...;
    # output_0, output_1, ...), whatever order the file lists them in.
    positions = [int(m.group(1) or 0) if (m := re.fullmatch(r"(?:Identity|output)_?(\d*)", n)) else None
                 for n in names]
    if None not in positions and sorted(positions) == list(range(len(specs))):
        return [positions.index(i) for i in range(len(specs))]
    raise ConversionError(f"{path.name}: the converter named its outputs {names} (last axes {widths}): which is "
                          f"which of {[spec.name for spec in specs]} cannot be told")


def dense_layout(shape: tuple[int, ...], ctx: ExportContext) -> str | None:
    """Where a converted dense output keeps its classes (converters may move them last); None for a
    vector output."""
    if ctx.onnx_io.output.layout is None:
        return None
    return "NHWC" if len(shape) == 4 and shape[-1] == ctx.config.num_classes and shape[1] != shape[-1] else "NCHW"
