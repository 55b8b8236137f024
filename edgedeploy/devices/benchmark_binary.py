"""LiteRT's ``benchmark_model`` binary for a remote device's ABI: the one given, or Google's prebuilt
one, downloaded once into the cache (`edgedeploy devices setup NAME`)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.cache import cache_dir
from edgedeploy.core.errors import ConfigError, DependencyError
from edgedeploy.devices.device import Device

__all__ = ["BINARY_URLS", "benchmark_binary", "download_benchmark_binary"]

# Where Google publishes prebuilt benchmark_model binaries (LiteRT's measurement docs); no checksums are published.
BINARY_URLS = {
    "arm64-v8a": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/"
                 "nightly/latest/android_aarch64_benchmark_model",
    "aarch64": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/"
               "nightly/latest/linux_aarch64_benchmark_model",
}


def _cached_binary(abi: str) -> Path:
    return cache_dir("tools") / f"{abi}_benchmark_model"


def benchmark_binary(device: Device, given: Path | None) -> Path:
    """The benchmark_model binary for the device's ABI: the one given, else the cached download."""
    path = given or _cached_binary(device.abi)
    if not path.is_file():
        if given is not None:
            raise DependencyError(f"{given}: benchmark_model binary not found")
        raise DependencyError(f"no benchmark_model for {device.abi}: pass --benchmark-binary PATH, or run "
                              f"`edgedeploy devices setup {device.name}` to download Google's prebuilt one")
    return path


def download_benchmark_binary(device: Device) -> Path:
    """Fetch Google's prebuilt benchmark_model for the device's ABI into the cache (atomically)."""
    url = BINARY_URLS.get(device.abi)
    if url is None:
        raise ConfigError(f"no prebuilt benchmark_model is published for ABI {device.abi}")
    target = _cached_binary(device.abi)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=120) as response:
            tmp.write_bytes(response.read())
    except OSError as exc:
        raise DependencyError(f"cannot download benchmark_model from {url} ({exc.__class__.__name__}); "
                              "offline, download it elsewhere and pass --benchmark-binary PATH") from exc
    target.chmod(0o755)
    return target
