"""PT2E int8 quantization with the XNNPACK quantizer: the ExecuTorch route's quantizer, and the host
simulation that every int8 route's conversion fidelity is checked against (edgedeploy.exporter.simulation).

Symmetric int8 weights (per-channel unless per-tensor is asked), asymmetric int8 activations observed
on the calibration images, conv -> ReLU6 pairs quantized as one unit (xnnpack_relu6.py). The result is a
``torch.fx.GraphModule`` that runs in PyTorch with explicit quantize/dequantize steps: the quantized
model computed in float on the host.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConversionError
from edgedeploy.exporter.converters.common import conversion_failure

__all__ = ["pt2e_int8", "torch_exported"]


def torch_exported(model: Any, resolution: int, log_path: Path, dynamic_batch: bool = False) -> Any:
    """``torch.export.export`` of ``model`` on a 1x3xRxR input, or Nx3xRxR with ``dynamic_batch`` (failures
    name the tool and the log)."""
    import torch

    batch = {0: torch.export.Dim("batch", min=1, max=1024)} if dynamic_batch else None
    try:
        return torch.export.export(model, (torch.zeros(2 if dynamic_batch else 1, 3, resolution, resolution),),
                                   dynamic_shapes=(batch,) if dynamic_batch else None)
    except Exception as exc:
        raise conversion_failure("torch.export", exc, log_path) from exc


def pt2e_int8(model: Any, images: Iterable[np.ndarray], per_channel: bool, resolution: int, log_path: Path,
              min_max: bool = False) -> Any:
    """``model`` quantized by PT2E (XNNPACK quantizer), calibrated on ``images`` (preprocessed HWC arrays, in
    the model's own input normalization). Activation ranges from the XNNPACK config's histogram observers,
    or with ``min_max`` the absolute min/max over the images (what TFLite's converter, ONNX Runtime's default
    and AI Edge Quantizer's default calibrate; 3-4x faster to observe). Call with the tools' output captured."""
    import dataclasses

    import torch

    # Imported here: torchao reports its missing CUDA kernels on import.
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    from edgedeploy.exporter.converters.xnnpack_relu6 import conv_relu6_quantizer

    config = get_symmetric_quantization_config(is_per_channel=per_channel)
    if min_max:
        from torchao.quantization.pt2e import MinMaxObserver

        # float32's eps, not the XNNPACK config's 2^-12 (XNNPACK's floor on a scale): a converter keeps a range
        # as narrow as the calibration images give (grey images: one grey level), and so must the simulation.
        observed = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(
            eps=float(torch.finfo(torch.float32).eps)))
        config = dataclasses.replace(config, input_activation=observed, output_activation=observed)
    # conv -> ReLU6 first (xnnpack_relu6.py): the XNNPACK quantizer alone cost 2.5 points here.
    quantizer = ComposableQuantizer([conv_relu6_quantizer(config), XNNPACKQuantizer().set_global(config)])
    # Min/max ranges do not depend on how the images are batched: observe 32 at a time (the graph then
    # takes any batch); histogram observers re-bin per call, so they see one image at a time as before.
    batch = 32 if min_max else 1
    try:
        graph = torch_exported(model, resolution, log_path, dynamic_batch=batch > 1).module()
    except ConversionError:
        if batch == 1:
            raise
        # A model torch.export cannot trace with a free batch dimension: one image at a time.
        batch, graph = 1, torch_exported(model, resolution, log_path).module()
    try:
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            stacked = np.asarray(images)
            for start in range(0, len(stacked), batch):
                prepared(torch.from_numpy(np.ascontiguousarray(stacked[start:start + batch].transpose(0, 3, 1, 2))))
        return convert_pt2e(prepared)
    except Exception as exc:
        raise conversion_failure("PT2E quantization (XNNPACKQuantizer)", exc, log_path) from exc
