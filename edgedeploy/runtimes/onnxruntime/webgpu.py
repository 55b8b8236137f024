"""ONNX Runtime's WebGPU execution provider, a plugin library (``onnxruntime-ep-webgpu``: Dawn over Vulkan).

The plugin is registered with ONNX Runtime once per process and picked by device; without ``--gpu-fallback``
the session refuses any CPU fallback (``session.disable_cpu_ep_fallback``), so a node the provider cannot run
fails the load instead of running on the CPU unnoticed. With it, ONNX Runtime's record of which provider
runs each node gives the nodes that ran on the CPU.
"""

from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import GpuUnavailableError
from edgedeploy.core.logcapture import captured_output
from edgedeploy.core.vulkan import vulkan_adapters
from edgedeploy.runtimes.gpu import adapter_from_vulkan, check_adapter, gpu_execution, refuse_fallback

__all__ = ["WebGpuPlacement", "ACCELERATOR", "webgpu_version"]

ACCELERATOR = "ONNX Runtime WebGPU provider"
_EP_NAME = "WebGpuExecutionProvider"
_LIBRARY_NAME = "webgpu"
# The plugin offers a CPU-only adapter as a device only when this is set when it is registered.
_ALLOW_SOFTWARE = "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER"
# Whether the plugin is registered in this process, and with the software adapter allowed or not.
_registered: dict[str, bool] = {}
# Shape arithmetic ONNX Runtime keeps on the CPU on purpose (it is faster there than a GPU round trip); these
# nodes are not a fallback of the model's compute.
_SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "ConstantOfShape", "Range"}


def webgpu_version() -> str | None:
    try:
        return metadata.version("onnxruntime-ep-webgpu")
    except metadata.PackageNotFoundError:
        return None


def _register(software: bool) -> None:
    import onnxruntime as ort
    import onnxruntime_ep_webgpu as plugin

    if _registered.get(_LIBRARY_NAME) is software:
        return
    if _LIBRARY_NAME in _registered:
        ort.unregister_execution_provider_library(_LIBRARY_NAME)
        del _registered[_LIBRARY_NAME]
    if software:
        os.environ[_ALLOW_SOFTWARE] = "1"
    else:
        os.environ.pop(_ALLOW_SOFTWARE, None)
    ort.register_execution_provider_library(_LIBRARY_NAME, plugin.get_library_path())
    _registered[_LIBRARY_NAME] = software


class WebGpuPlacement:
    """Opens a session on the WebGPU provider; describes where it runs."""

    def __init__(self, fallback: bool):
        if webgpu_version() is None:
            raise GpuUnavailableError(
                f"--device gpu: this onnxruntime ({metadata.version('onnxruntime')}) has no CUDA or TensorRT provider "
                "and the WebGPU provider is not installed: pip install 'edgedeploy[gpu]' (onnxruntime-ep-webgpu) "
                "or onnxruntime-gpu")
        report = vulkan_adapters()
        adapter = adapter_from_vulkan(report)
        if adapter is None:
            raise GpuUnavailableError(f"--device gpu: {ACCELERATOR}: {report.why_no_gpu()}")
        check_adapter(adapter, ACCELERATOR)
        self.adapter, self.fallback = adapter, fallback
        self.cpu_ops: list[str] = []

    def open(self, path: Path, session_options: Any, model: str | bytes) -> Any:
        """The session on the WebGPU provider for ``model`` (``path``'s file, or its bytes; Dawn's and ONNX Runtime's
        chatter go to a log, not the terminal); GpuFallbackError naming the nodes that would run on the CPU, unless
        fallback is allowed."""
        with tempfile.TemporaryDirectory() as tmp, captured_output(Path(tmp) / "webgpu.log"):
            session = self._session(model, session_options, fallback=self.fallback)
            if session is None:  # refused: the nodes that would have fallen back, from a session that allows it
                self.cpu_ops = _cpu_nodes(self._session(model, session_options, fallback=True))
        if session is None:
            refuse_fallback(str(path), ACCELERATOR, self.cpu_ops)
        if session.get_providers()[0] != _EP_NAME:
            raise GpuUnavailableError(f"{path}: {ACCELERATOR} did not start (ONNX Runtime runs "
                                      f"{session.get_providers()[0]})")
        self.cpu_ops = _cpu_nodes(session)
        return session

    def _session(self, model: str | bytes, base: Any, fallback: bool) -> Any:
        import onnxruntime as ort

        _register(self.adapter.software)
        devices = [d for d in ort.get_ep_devices() if d.ep_name == _EP_NAME]
        if not devices:
            raise GpuUnavailableError(f"--device gpu: {ACCELERATOR} offers no device for the adapter "
                                      f"{self.adapter.name} ({self.adapter.type})")
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = base.intra_op_num_threads, base.inter_op_num_threads
        so.graph_optimization_level = base.graph_optimization_level
        so.log_severity_level = 4  # a refused fallback is reported as GpuFallbackError, not as ORT's log line
        so.add_provider_for_devices(devices[:1], {})
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        if not fallback:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        try:
            return ort.InferenceSession(model, so)
        except Exception as exc:
            if not fallback and "fallback to CPU EP has been explicitly disabled" in str(exc):
                return None
            raise

    def execution(self) -> dict[str, Any]:
        return gpu_execution(ACCELERATOR, self.adapter, "the model's own (fp32 for an fp32 model)", self.cpu_ops)


def _cpu_nodes(session: Any) -> list[str]:
    """The model's nodes that run on another provider than WebGPU (shape arithmetic aside)."""
    return sorted({f"{node.op_type} {node.name}".strip()
                   for subgraph in session.get_provider_graph_assignment_info() if subgraph.ep_name != _EP_NAME
                   for node in subgraph.get_nodes() if node.op_type not in _SHAPE_OPS})
