"""The one interface every runtime implements, and the options used to load a model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.integrity import Verification
from edgedeploy.core.io_spec import ModelIO, Outputs
from edgedeploy.core.outputs import concat_outputs
from edgedeploy.core.limits import MAX_THREADS
from edgedeploy.runtimes.gpu import GPU_PRECISIONS
from edgedeploy.models.architecture import Architecture

__all__ = ["Runner", "LoadOptions", "INFERENCE_PRECISIONS"]

# OpenVINO CPU plugin precisions; "auto": the plugin's own default (bf16 where the CPU has it).
INFERENCE_PRECISIONS = ("f32", "bf16", "f16", "auto")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: the runtime's knobs, the preprocessing of a file without a manifest, and for PyTorch
    weights the architecture they belong to."""

    threads: int = 1
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    raw_pixels: bool = False
    # For PyTorch weights (a weights name or checkpoint): the family and size they belong to.
    architecture: Architecture = Architecture()
    # LiteRT: use the XNNPACK CPU delegate (the default everywhere LiteRT ships).
    xnnpack: bool = True
    # OpenVINO CPU plugin: requested inference precision (f32, bf16, f16, or auto = plugin default).
    inference_precision: str = "f32"
    # cpu, or gpu: LiteRT's GPU accelerator, ONNX Runtime's CUDA/TensorRT or WebGPU providers, OpenVINO's GPU plugin.
    accelerator: str = "cpu"
    # gpu: let ops without a GPU kernel run on the CPU (listed in the result) instead of refusing the run.
    gpu_fallback: bool = False
    # gpu: fp16 (the accelerator's default where it computes in fp16) or fp32 (full precision enforced).
    gpu_precision: str = "fp16"
    # Check every file the manifest lists against its sha256 before loading (--no-verify: False).
    verify: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be between 1 and {MAX_THREADS}, got {self.threads}")
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"--inference-precision must be one of {', '.join(INFERENCE_PRECISIONS)}")
        if self.gpu_precision not in GPU_PRECISIONS:
            raise ConfigError(f"--gpu-precision must be one of {', '.join(GPU_PRECISIONS)}")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("--mean and --std must be given together")


class Runner(ABC):
    """A loaded model: feed it preprocessed images, get its outputs back (class scores, score maps, a
    detector's heads)."""

    #: registry name of the runtime ("torch", "onnxruntime", ...)
    runtime: str
    io: ModelIO
    source: str
    #: fixed batch size of the model's input, or None if the batch dimension is dynamic
    batch_size: int | None
    #: the check of the model's files against its manifest (set by runtimes.load_runner)
    verification: Verification | None = None

    @abstractmethod
    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch of the exact input tensor; return every raw output tensor by its name in ``io``."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the runtime packages in use."""

    def output_key(self) -> str | None:
        """A digest naming this model's outputs (same key, same outputs on the same image) for the reference
        cache (edgedeploy.measure.reference_cache); None: not cached."""
        return None

    def execution(self) -> dict[str, Any]:
        """How the runtime actually executes the model (delegates, precision); reported with results."""
        return {}

    @property
    def size_bytes(self) -> int | None:
        path = Path(self.source)
        return path.stat().st_size if path.is_file() else None

    def predict(self, images_hwc: np.ndarray) -> Outputs:
        """Preprocessed float images (N, H, W, C) -> float class scores: (N, classes), or for dense
        prediction (N, H, W, classes); for a model with several outputs, each by name."""
        step = self.batch_size or len(images_hwc)
        return concat_outputs([self.io.read(self.infer(self.io.input.feed(images_hwc[i : i + step])))
                               for i in range(0, len(images_hwc), step)])
