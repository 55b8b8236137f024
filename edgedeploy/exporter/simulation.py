"""The quantized model an artifact should compute, simulated on the host in PyTorch: what the conversion
fidelity check (edgedeploy.exporter.parity) compares a quantized artifact with.

- int8 (weights and activations): the source model quantized by PT2E with the XNNPACK quantizer
  (converters/pt2e.py), calibrated on the export's own calibration images: int8 weights on the grid every
  route's converter derives (exporter/ptq/grid.py), at the route's granularity, and int8 activations with
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

from edgedeploy.core.errors import ConversionError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.exporter.choices import CalibMethod, Precision, WeightGranularity
from edgedeploy.exporter.options import ExportOptions
from edgedeploy.exporter.source import ExportSource
from edgedeploy.exporter.target import Target
from edgedeploy.runtimes.base import Runner

__all__ = ["SimulatedRunner", "simulate", "simulation_for", "SIMULATED_PRECISIONS", "CLIPPING_CALIBRATION"]

SIMULATED_PRECISIONS = (Precision.INT8, Precision.INT8_WEIGHTS, Precision.A16W8)


class SimulatedRunner(Runner):
    """A simulated quantized model, fed like the float reference it was built from."""

    runtime = "torch"

    def __init__(self, module: Any, io: ModelIO, describe: str, batch_size: int | None = None):
        self.module, self.io, self.describe, self.source = module, io, describe, "host simulation"
        # None: any batch (the weight-only copy is eager; the PT2E graph is exported with a free batch where
        # torch.export can, else it takes one image at a time).
        self.batch_size = batch_size

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from edgedeploy.runtimes.torch.runner import named_outputs

        with torch.no_grad():
            return named_outputs(self.module(torch.from_numpy(np.ascontiguousarray(tensor))), self.io.outputs,
                                 self.source)

    def versions(self) -> dict[str, str]:
        import torch

        return {"torch": torch.__version__}


def _weights_on_grid(model: Any, per_channel: bool) -> Any:
    import torch

    from edgedeploy.exporter.ptq.grid import fake_quantize

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
        from edgedeploy.exporter.converters.pt2e import pt2e_int8

        assert images is not None, "int8 simulation needs the calibration images"
        with captured_output(log_path):
            module = pt2e_int8(model, images, per_channel, io.input.shape[-1], log_path, min_max=True)
        return SimulatedRunner(module, io, f"PT2E int8 simulation ({granularity} weights, int8 activations)",
                               None if _takes_batches(module, io.input.shape[-1]) else 1)
    return SimulatedRunner(_weights_on_grid(model, per_channel), io,
                           f"int8 weights on the grid ({granularity}), float activations")


# Activation range methods that clip by design: the simulation (min/max ranges) is not their quantization.
CLIPPING_CALIBRATION = (CalibMethod.PERCENTILE, CalibMethod.ENTROPY, CalibMethod.MEAN_QUANTILE, CalibMethod.HISTOGRAM,
                        CalibMethod.MOVING_AVERAGE)


def simulation_for(source: ExportSource, source_model: Any, target: Target, options: ExportOptions,
                   model_inputs: np.ndarray | None, log_path: Path) -> tuple[Runner | None, str | None]:
    """The host simulation a quantized artifact's fidelity is checked against, or why there is none."""
    if source_model is None:
        return None, "exported from an ONNX file: no PyTorch model to simulate the quantization on"
    # The simulation quantizes every layer: with layers left in float (--keep-float, or NNCF's accuracy control
    # reverting some) it is not the artifact's quantization, so the cost check alone speaks.
    if options.keep_float or (options.max_drop is not None and target.accuracy_control):
        return None, "layers are kept in float, which the host simulation (every layer int8) does not model"
    if options.calib_method in CLIPPING_CALIBRATION:
        return None, (f"calibrated with {options.calib_method}, whose ranges clip on purpose; the host simulation "
                      "models min/max ranges")
    try:
        return simulate(source_model, source.reference.io, target.precision,
                        model_inputs, options.weight_granularity in (None, WeightGranularity.PER_CHANNEL),
                        log_path), None
    except ImportError as exc:
        return None, f"the int8 simulation needs {exc.name or 'executorch'}: pip install 'edgedeploy[executorch]'"
    except ConversionError as exc:
        return None, f"the host simulation could not be built ({exc})"
