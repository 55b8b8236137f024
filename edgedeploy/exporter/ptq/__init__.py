"""Quantization methods that prepare the PyTorch model before a route converts it (``export --ptq``), so every
int8 route benefits from them the same way: cross-layer equalization, learned rounding at the converters' own
int8 grid, and empirical bias correction (one module each).

Written here rather than taken from a library: AIMET (``aimet-torch``) has all three but pins a CUDA build of
a newer torch (several GB, and it would replace the pinned CPU torch); NNCF has bias correction only for its
own OpenVINO/ONNX graphs and neither CLE nor AdaRound for this use; Model Compression Toolkit learns rounding
against its own thresholds (power-of-two or MSE-chosen), not the max |w| / 127 grid every converter here
recomputes, so its choices would be re-rounded away. What is needed is small: the methods act on a BN-folded
copy of the model, and the converters do the quantizing as always.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.cache import cache_dir, code_fingerprint, content_key
from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.choices import PtqMethod

if TYPE_CHECKING:
    from torch import nn

__all__ = ["prepare", "ORDER", "MIN_IMAGES", "check_calibration", "resolve_methods"]

# The order the methods run in, whatever order they were asked in: equalize ranges, then choose the rounding
# on the equalized weights, then correct the mean shift that is left.
ORDER = (PtqMethod.CLE, PtqMethod.ADAROUND, PtqMethod.BIAS_CORRECTION)
# Calibration images a data-driven method needs at least (CLE needs none).
MIN_IMAGES = {PtqMethod.BIAS_CORRECTION: 16, PtqMethod.ADAROUND: 16}


def resolve_methods(requested: tuple[str, ...], target: str, offered: tuple[PtqMethod, ...],
                    takers: list[str]) -> tuple[PtqMethod, ...]:
    """``requested`` checked against what ``target`` offers, in the order the methods run."""
    unknown = [m for m in requested if m not in PtqMethod.__members__.values()]
    if unknown:
        raise ConfigError(f"unknown --ptq method {unknown[0]!r}; methods: {', '.join(PtqMethod)}")
    if requested and not offered:
        raise ConfigError(f"--ptq does not apply to {target} (it quantizes nothing; it applies to {', '.join(takers)})")
    refused = [m for m in requested if m not in offered]
    if refused:
        raise ConfigError(f"--ptq {refused[0]} does not apply to {target}; allowed: {', '.join(offered)}")
    return tuple(m for m in ORDER if m in requested)


def check_calibration(methods: tuple[PtqMethod, ...], images: int) -> None:
    short = [m for m in methods if images < MIN_IMAGES.get(m, 0)]
    if short:
        raise ConfigError(f"--ptq {short[0]} needs at least {MIN_IMAGES[short[0]]} calibration images, got {images} "
                          "(--calib-size)")


def _key(model: nn.Module, methods: tuple[PtqMethod, ...], images: np.ndarray | None, per_channel: bool) -> str:
    """What a prepared model depends on: the model (structure and every tensor), the methods, the calibration
    images, the granularity and edgedeploy's code."""
    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    if images is not None:
        digest.update(np.ascontiguousarray(images).tobytes())
    return content_key("ptq", digest.hexdigest(), [m.value for m in methods], per_channel, code_fingerprint())


def prepare(model: nn.Module, methods: tuple[PtqMethod, ...], images: np.ndarray | None,
            per_channel: bool) -> tuple[nn.Module, dict[str, Any]]:
    """A BN-folded copy of ``model`` with ``methods`` applied (in ORDER), and what each did. Cached by content:
    every route exporting the same model with the same methods and calibration reuses the prepared weights."""
    import torch

    from edgedeploy.exporter.ptq.adaround import adaround
    from edgedeploy.exporter.ptq.bias_correction import correct_biases
    from edgedeploy.exporter.ptq.cle import ChannelClamp, equalize
    from edgedeploy.exporter.ptq.graph import fold_batch_norms

    check_calibration(methods, 0 if images is None else len(images))
    prepared = fold_batch_norms(model)
    cached = cache_dir("ptq") / f"{_key(model, methods, images, per_channel)}.pt"
    if cached.is_file():
        try:
            entry = torch.load(cached, map_location="cpu", weights_only=True)
            for name in entry["clamped"]:  # the structure CLE gave it, then its tensors
                parent, _, child = name.rpartition(".")
                setattr(prepared.get_submodule(parent) if parent else prepared, child,
                        ChannelClamp(entry["state"][f"{name}.bound"]))
            prepared.load_state_dict(entry["state"])
            return prepared.eval(), {**entry["details"], "cached": True}
        except (OSError, RuntimeError, KeyError, ValueError):
            prepared = fold_batch_norms(model)  # a damaged entry is prepared again
    details: dict[str, Any] = {"methods": [m.value for m in ORDER if m in methods],
                               "weights": "per-channel" if per_channel else "per-tensor"}
    steps = {PtqMethod.CLE: lambda: equalize(prepared),
             PtqMethod.ADAROUND: lambda: adaround(prepared, images, per_channel),
             PtqMethod.BIAS_CORRECTION: lambda: correct_biases(prepared, images, per_channel)}
    for method in ORDER:
        if method in methods:
            start = time.perf_counter()
            details[method.value] = {**steps[method](), "seconds": round(time.perf_counter() - start, 2)}
    clamped = [name for name, m in prepared.named_modules() if isinstance(m, ChannelClamp)]
    with atomic_path(cached) as tmp:
        torch.save({"state": prepared.state_dict(), "clamped": clamped, "details": details}, tmp)
    return prepared.eval(), {**details, "cached": False}
