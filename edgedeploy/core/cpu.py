"""What this host's CPU offers that changes int8 results (not only speed).

On x86 without VNNI, ONNX Runtime's U8S8 kernels multiply uint8 activations by int8 weights with
VPMADDUBSW, which adds pairs of products into int16 with saturation: with 8-bit weights two products can
exceed 32767 and the sum is clipped (ONNX Runtime's quantization docs; measured on MobileNetV2 and DeepLab:
docs/int8.md, onnx-int8 on CPUs without VNNI). VNNI (VPDPBUSD) accumulates into int32 and does not saturate;
neither do ARM's int8 dot products.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["cpu_flags", "int8_kernels_saturate", "describe_int8_kernels"]

_VNNI = {"avx512_vnni", "avx_vnni", "amx_int8"}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def int8_kernels_saturate(flags: frozenset[str] | None = None) -> bool:
    """Whether x86 U8S8 int8 kernels saturate here: AVX2 without any VNNI (unknown CPUs: False)."""
    flags = cpu_flags() if flags is None else flags
    return platform.machine().lower() in ("x86_64", "amd64") and "avx2" in flags and not flags & _VNNI


def describe_int8_kernels(flags: frozenset[str] | None = None) -> str:
    """A short name of the int8 instruction set results depend on: for figures and reports."""
    flags = cpu_flags() if flags is None else flags
    if flags & _VNNI:
        return "x86 with VNNI"
    if "avx2" in flags:
        return "x86 AVX2 without VNNI"
    return platform.machine() or "unknown"
