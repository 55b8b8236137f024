"""The Vulkan probe: what the loader lists (run for real where libvulkan1 is installed) and why no GPU."""

from __future__ import annotations

import pytest

from edgedeploy.core.vulkan import VulkanAdapter, VulkanReport, _version, vulkan_adapters
from tests.conftest import swiftshader_icd


def _adapter(kind: str, name: str = "x") -> VulkanAdapter:
    return VulkanAdapter(name, "NVIDIA", 0x10DE, 0x2330, kind, "NVIDIA 580.159.04", "580.159.4", "1.4.312")


def test_why_no_gpu_names_what_is_missing():
    assert VulkanReport(None).why_no_gpu().startswith("no Vulkan loader (libvulkan.so.1 not found")
    assert VulkanReport("libvulkan.so.1").why_no_gpu().startswith("no Vulkan adapter (the loader found no driver")
    assert VulkanReport("libvulkan.so.1", error="vkCreateInstance returned -3").why_no_gpu() == \
        "the Vulkan loader failed: vkCreateInstance returned -3"
    cpu_only = VulkanReport("libvulkan.so.1", [_adapter("CPU", "SwiftShader Device (Subzero)")])
    assert cpu_only.why_no_gpu() == ("only a CPU-only Vulkan adapter (SwiftShader Device (Subzero)): a software "
                                     "rasterizer, not a GPU")
    assert VulkanReport("libvulkan.so.1", [_adapter("CPU"), _adapter("discrete GPU")]).why_no_gpu() is None


def test_driver_versions_are_decoded_per_vendor():
    assert _version(580 << 22 | 159 << 14 | 4 << 6, 0x10DE) == "580.159.4"  # NVIDIA's 10.8.8.6 bits
    assert _version(1 << 22 | 3 << 12 | 230, 0x10005) == "1.3.230"          # Vulkan's own packing


def test_the_loader_lists_the_driver_its_icd_file_names(monkeypatch: pytest.MonkeyPatch):
    icd = swiftshader_icd()
    if icd is None:
        pytest.skip("no Vulkan loader (libvulkan1) or SwiftShader ICD (Debian's chromium)")
    monkeypatch.setenv("VK_ICD_FILENAMES", icd)
    report = vulkan_adapters()
    assert [(a.name, a.vendor, a.type) for a in report.adapters] == [("SwiftShader Device (Subzero)", "Google", "CPU")]
    assert report.adapters[0].is_cpu and report.adapters[0].driver.startswith("SwiftShader driver")
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")
    report = vulkan_adapters()
    assert report.adapters == [] and report.why_no_gpu().startswith("no Vulkan adapter")
