"""LiteRT (the TFLite runtime, ``ai-edge-litert``) with XNNPACK on by default, or its GPU accelerator
(``accelerator="gpu"``: runtimes.litert.gpu)."""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.io_spec import ModelIO, Quantization
from edgedeploy.core.logcapture import captured_output, log_tail, quiet_tensorflow_env
from edgedeploy.core.manifest import read_manifest
from edgedeploy.core.outputs import by_name
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.io_inference import infer_model_io
from edgedeploy.runtimes.litert.gpu import LiteRTGpuModel

__all__ = ["LiteRTRunner", "open_interpreter", "quantization_of"]


def open_interpreter(path: Path, threads: int = 1, xnnpack: bool = True) -> Any:
    """A LiteRT interpreter with tensors allocated; InputFileError if the file is not a TFLite model."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if not path.is_file():
        raise InputFileError(f"{path}: model file not found")
    # BUILTIN_WITHOUT_DEFAULT_DELEGATES is the documented way to run without XNNPACK.
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on stderr for every
    # interpreter: keep it (and any loader chatter) out of the terminal, but in the error if loading fails.
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "litert.log"
        try:
            with captured_output(log):
                interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                          experimental_op_resolver_type=resolver)
                interpreter.allocate_tensors()
                # Names are decoded from the file only when asked for: a name that is not UTF-8 must fail here, at
                # load, in one line, not later in whatever reads a detail (fuzzed).
                interpreter.get_tensor_details()
                interpreter._get_full_signature_list()
        except (ValueError, RuntimeError) as exc:  # UnicodeDecodeError is a ValueError
            text = " ".join(str(exc).split()) or log_tail(log) or exc.__class__.__name__
            raise InputFileError(f"{path}: LiteRT cannot load it ({text[:160]})") from exc
    return interpreter


def output_names(interpreter: Any) -> list[str]:
    """Each output's name: its signature's key where the file has a signature (converters name those after the
    source graph's outputs; tensor names are the converter's own, e.g. ``PartitionedCall:1``), else its tensor's."""
    signatures = interpreter._get_full_signature_list() or {}
    by_index = {index: name for signature in signatures.values() for name, index in signature.get("outputs", {}).items()}
    return [by_index.get(o["index"], o["name"]) for o in interpreter.get_output_details()]


def quantization_of(detail: dict[str, Any]) -> Quantization | None:
    scale, zero_point = detail["quantization"]
    return Quantization(float(scale), int(zero_point)) if scale else None


class LiteRTRunner(Runner):
    runtime = "litert"

    def __init__(self, source: str, options: LoadOptions):
        self.source = source
        path = Path(source)
        on_gpu = options.accelerator == "gpu"
        if on_gpu:
            # LiteRT's logger reads its level once: before the first interpreter, or its INFO lines reach stderr.
            quiet_tensorflow_env()
        # On the GPU the interpreter only describes the file: XNNPACK's weight packing would be wasted.
        self.interpreter = open_interpreter(path, options.threads, options.xnnpack and not on_gpu)
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        manifest = read_manifest(path)
        if len(inputs) != 1 or (len(outputs) != 1 and manifest is None):
            raise InputFileError(f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)} "
                                 "(a model with several outputs needs its manifest)")
        inp, out = inputs[0], outputs[0]
        self.threads, self.xnnpack = options.threads, options.xnnpack
        self.batch_size = int(inp["shape"][0])
        self._input_index = inp["index"]
        self._outputs = list(zip(output_names(self.interpreter), [o["index"] for o in outputs]))
        self.io: ModelIO = manifest.io if manifest else infer_model_io(
            path=path,
            input_name=inp["name"],
            input_shape=tuple(int(d) for d in inp["shape"]),
            input_dtype=np.dtype(inp["dtype"]).name,
            output_name=out["name"],
            num_outputs=int(out["shape"][-1]),
            output_is_softmax=_ends_in_softmax(path, out["index"]),
            options=options,
            input_quantization=quantization_of(inp),
            output_dtype=np.dtype(out["dtype"]).name,
            output_quantization=quantization_of(out),
        )
        if manifest and (self.io.input.dtype != np.dtype(inp["dtype"]).name
                         or tuple(self.io.input.shape) != tuple(int(d) for d in inp["shape"])):
            raise InputFileError(f"{path}: manifest input spec does not match the model's input "
                                 f"({np.dtype(inp['dtype']).name} {list(inp['shape'])})")
        self.gpu = LiteRTGpuModel(path, options.gpu_precision, options.gpu_fallback) if on_gpu else None

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        if self.gpu is not None:
            return by_name(self.io.outputs, self.gpu.output_names, self.gpu.infer(tensor), self.source)
        self.interpreter.set_tensor(self._input_index, tensor)
        self.interpreter.invoke()
        return by_name(self.io.outputs, [name for name, _ in self._outputs],
                       [self.interpreter.get_tensor(index).copy() for _, index in self._outputs], self.source)

    def versions(self) -> dict[str, str]:
        return {"ai-edge-litert": metadata.version("ai-edge-litert")}

    def execution(self) -> dict[str, Any]:
        if self.gpu is not None:
            return self.gpu.execution()
        return {"delegate": "XNNPACK" if self.xnnpack else "none (builtin kernels)"}


def _ends_in_softmax(path: Path, output_index: int) -> bool:
    # The graph's own ops (with XNNPACK applied they are one DELEGATE node).
    ops = open_interpreter(path, xnnpack=False)._get_ops_details()
    # A trailing QUANTIZE may follow the softmax in integer models.
    return any(op["op_name"] == "SOFTMAX" and output_index in op["outputs"] for op in ops) or any(
        op["op_name"] == "SOFTMAX" for op in ops[-2:]
    )

