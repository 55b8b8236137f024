"""ExecuTorch's Python runtime: runs a .pte in-process with the kernels and delegates (XNNPACK)
its pip package was built with."""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.core.logcapture import captured_output, log_tail
from edgedeploy.core.manifest import read_manifest
from edgedeploy.core.outputs import by_name
from edgedeploy.core.processes import probe_in_child
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.io_inference import infer_model_io

__all__ = ["ExecuTorchRunner", "THREAD_POOL", "load_method", "probe_load", "dtype_name"]

METHOD = "forward"
# ExecuTorch's tensor dtypes (ScalarType codes) that an image model's IO can have.
DTYPE_NAMES = {6: "float32", 1: "int8", 0: "uint8"}
# The program flatbuffer's file identifier at bytes 4..8: "ET" and a two-digit schema version.
_IDENTIFIER = re.compile(rb"ET[0-9]{2}")


@lru_cache(maxsize=1)
def _portable_lib() -> Any:
    """ExecuTorch's bindings, imported once, their thread pool created (its CPU probing logs from C++
    to stderr) with that output kept quiet."""
    with tempfile.TemporaryDirectory() as tmp, captured_output(Path(tmp) / "import.log"):
        from executorch.extension.pybindings import portable_lib

        portable_lib._threadpool_get_thread_count()
    return portable_lib


class ThreadPool:
    """ExecuTorch's XNNPACK thread pool, one per process. Each resize starts a new generation: XNNPACK
    delegates keep the pool they were loaded with, so a method loaded before a resize must be loaded again
    before it runs."""

    def __init__(self) -> None:
        self.generation = 0

    def use(self, threads: int) -> int:
        """Size the pool to ``threads``; its generation."""
        portable_lib = _portable_lib()
        if portable_lib._threadpool_get_thread_count() != threads:
            with tempfile.TemporaryDirectory() as tmp, captured_output(Path(tmp) / "threadpool.log"):
                portable_lib._unsafe_reset_threadpool(threads)  # logs "Resetting threadpool" from C++
            self.generation += 1
        return self.generation


# The process's one pool (ExecuTorch's own, a process-wide resource), as the runners share it.
THREAD_POOL = ThreadPool()


def load_method(path: Path) -> Any:
    """The program's ``forward`` method, ready to execute; InputFileError (exit 3) if the file is not a
    .pte this runtime can load: corrupt, truncated, or written for another ExecuTorch version."""
    _check_file(path)
    # The runtime logs its reasons (and CPU probing) from C++ to stderr: keep them for the message.
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "executorch.log"
        try:
            with captured_output(log):
                from executorch.runtime import Runtime, Verification

                program = Runtime.get().load_program(path, verification=Verification.InternalConsistency)
                method = program.load_method(METHOD)
        except (RuntimeError, ValueError) as exc:
            reason = log_tail(log, 1) or " ".join(str(exc).split())
            raise InputFileError(f"{path}: ExecuTorch {_version()} cannot load it ({reason[:200]})") from exc
    return method


def _check_file(path: Path) -> None:
    """InputFileError (exit 3) for a file ``load_method`` must not load in this process: missing, without the program
    identifier (refused here: random bytes, another format), or one the loader dies on in a child process."""
    if not path.is_file():
        raise InputFileError(f"{path}: model file not found")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it ({exc.strerror})") from exc
    if not _IDENTIFIER.fullmatch(head[4:]):
        raise InputFileError(f"{path}: not a valid .pte file: no ExecuTorch program identifier ('ET' and two digits "
                             "at bytes 4..8)")
    # ExecuTorch hands its log lines to Python, and one quoting file bytes that are not UTF-8 (a bad identifier,
    # operator name or XNNPACK graph) aborts the process: only a file a child process loaded and lived is loaded here.
    probe_in_child(path, f"{__name__}:probe_load", ".pte", "ExecuTorch")


def probe_load(path: str) -> None:
    """What ``load_method`` does with a file, for ``probe_in_child``: ExecuTorch's C++ bindings alone load without
    torch or exir (under a second; portable_lib imports both, several seconds)."""
    from executorch.extension.pybindings import _C

    _C._load_program(path, program_verification=_C.Verification.InternalConsistency).load_method(METHOD)


def dtype_name(code: int) -> str:
    return DTYPE_NAMES.get(int(code), f"ScalarType {int(code)}")


def _version() -> str:
    return metadata.version("executorch")


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, source: str, options: LoadOptions):
        self.source = source
        path = Path(source)
        self.threads = options.threads
        _check_file(path)  # before the pool imports ExecuTorch's bindings (seconds): a bad file is refused at once
        self._generation = THREAD_POOL.use(self.threads)
        self.method = load_method(path)
        meta = self.method.metadata
        manifest = read_manifest(path)
        if meta.num_inputs() != 1 or (meta.num_outputs() != 1 and manifest is None):
            raise InputFileError(f"{path}: expected one input and one output, found {meta.num_inputs()} "
                                 f"and {meta.num_outputs()} (a model with several outputs needs its manifest)")
        inp, out = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
        shape = tuple(int(d) for d in inp.sizes())
        self.batch_size = shape[0]
        self.io: ModelIO = manifest.io if manifest else infer_model_io(
            path=path, input_name="input", input_shape=shape, input_dtype=dtype_name(inp.dtype()),
            output_name="output", num_outputs=int(out.sizes()[-1]), output_is_softmax=False, options=options,
        )
        if manifest and tuple(self.io.input.shape) != shape:
            raise InputFileError(f"{path}: manifest input spec does not match the model's input {list(shape)}")
        self._trial_run(path, shape, dtype_name(inp.dtype()))

    def _trial_run(self, path: Path, shape: tuple[int, ...], dtype: str) -> None:
        """One execution on zeros at load: a program that loads but cannot run (a damaged delegate graph) fails
        here, in one line with ExecuTorch's reason, not mid-benchmark with its C++ log on the terminal."""
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "executorch.log"
            try:
                with captured_output(log):
                    self.method.execute([torch.zeros(shape, dtype=getattr(torch, dtype, torch.float32))])
            except (RuntimeError, ValueError) as exc:
                reason = log_tail(log, 1) or " ".join(str(exc).split())
                raise InputFileError(f"{path}: ExecuTorch {_version()} loads it but cannot run it "
                                     f"({reason[:200]})") from exc

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        generation = THREAD_POOL.use(self.threads)
        if generation != self._generation:  # the pool was resized for another runner since this one loaded
            self.method, self._generation = load_method(Path(self.source)), generation
        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(tensor))])
        # A .pte's outputs have no names: they come in the exported program's order.
        return by_name(self.io.outputs, (), [np.asarray(o.numpy()).copy() for o in outputs], self.source)

    def versions(self) -> dict[str, str]:
        return {"executorch": _version()}

    def execution(self) -> dict[str, Any]:
        from edgedeploy.runtimes.executorch.graph import delegation_summary

        return {"delegates": delegation_summary(Path(self.source))["delegates"]}
