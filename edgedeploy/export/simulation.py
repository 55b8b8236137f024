"""The quantized model an artifact should compute, simulated on the host in PyTorch: what the conversion
fidelity check (edgedeploy.export.parity) compares a quantized artifact with.

- int8 (weights and activations): the source model quantized by PT2E with the XNNPACK quantizer
  (converters/pt2e.py), calibrated on the export's own calibration images: int8 weights on the grid every
  route's converter derives (export/ptq/grid.py), at the route's granularity, and int8 activations with
  min/max ranges (the default of most routes' calibration).
- int8 weights with float or 16-bit activations (tflite-dynamic, litert-a16w8): the source model with its
  conv/linear weights rounded to that grid, activations left in float (16-bit activation noise is far below
  what the check resolves).

The simulation is built from the model the pipeline holds, never from what a converter was given, so a
converter that received or produced the wrong model cannot agree with it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.backends.base import Runner
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.export.options import Precision

__all__ = ["SimulatedRunner", "simulate", "SIMULATED_PRECISIONS"]

SIMULATED_PRECISIONS = (Precision.INT8, Precision.INT8_WEIGHTS, Precision.A16W8)


class SimulatedRunner(Runner):
    """A simulated quantized model, fed like the float reference it was built from."""

    runtime = "torch"

    def __init__(self, module: Any, io: ModelIO, describe: str, batch_size: int | None = None):
        self.module, self.io, self.describe, self.source = module, io, describe, "host simulation"
        # None: any batch (the weight-only copy is eager; the PT2E graph is exported with a free batch where
        # torch.export can, else it takes one image at a time).
        self.batch_size = batch_size

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(tensor))).numpy()

    def versions(self) -> dict[str, str]:
        import torch

        return {"torch": torch.__version__}


def _weights_on_grid(model: Any, per_channel: bool) -> Any:
    import torch

    from edgedeploy.export.ptq.grid import fake_quantize

    simulated = copy.deepcopy(model).eval()
    with torch.no_grad():
        for module in simulated.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.copy_(fake_quantize(module.weight, per_channel))
    return simulated


def _takes_batches(module: Any, resolution: int) -> bool:
    import torch

    try:
        with torch.no_grad():
            module(torch.zeros(2, 3, resolution, resolution))
        return True
    except Exception:  # a graph traced with a batch of one refuses two, whatever the exception type
        return False


def simulate(model: Any, io: ModelIO, precision: Precision, images: np.ndarray | None, per_channel: bool,
             log_path: Path) -> SimulatedRunner:
    """The host simulation of ``model`` (the float source, fed as ``io`` says) at ``precision``; int8
    activations are calibrated on ``images`` (preprocessed HWC, in the model's own normalization)."""
    granularity = "per-channel" if per_channel else "per-tensor"
    if precision is Precision.INT8:
        from edgedeploy.core.logcapture import captured_output
        from edgedeploy.export.converters.pt2e import pt2e_int8

        assert images is not None, "int8 simulation needs the calibration images"
        with captured_output(log_path):
            module = pt2e_int8(model, images, per_channel, io.input.shape[-1], log_path, min_max=True)
        return SimulatedRunner(module, io, f"PT2E int8 simulation ({granularity} weights, int8 activations)",
                               None if _takes_batches(module, io.input.shape[-1]) else 1)
    return SimulatedRunner(_weights_on_grid(model, per_channel), io,
                           f"int8 weights on the grid ({granularity}), float activations")
