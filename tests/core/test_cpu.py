"""Which CPUs make ONNX Runtime's int8 kernels saturate."""

from __future__ import annotations

import platform

import pytest

from edgedeploy.core.cpu import describe_int8_kernels, int8_kernels_saturate


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 feature flags")
def test_avx2_without_vnni_saturates_and_vnni_does_not():
    assert int8_kernels_saturate(frozenset({"avx2", "fma"}))
    assert not int8_kernels_saturate(frozenset({"avx2", "avx512_vnni"}))
    assert not int8_kernels_saturate(frozenset({"avx2", "avx_vnni"}))
    assert not int8_kernels_saturate(frozenset({"sse4_2"}))  # no AVX2: other kernels
    assert describe_int8_kernels(frozenset({"avx2"})) == "x86 AVX2 without VNNI"
    assert describe_int8_kernels(frozenset({"avx2", "avx512_vnni"})) == "x86 with VNNI"

