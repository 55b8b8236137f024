"""The documented range of every numeric option: the CLI's click types, the recipe and sweep schemas and the
Python API check values against these, so an out-of-range number is one line and exit 2 at parse time, never a
hang (100000 threads), a silent default (0 threads) or a no-op (a calibration set of -5 images)."""

from __future__ import annotations

from edgedeploy.core.errors import ConfigError

__all__ = ["MAX_THREADS", "MAX_RESOLUTION", "MIN_RESOLUTION", "MAX_CLASSES", "MAX_IMAGES", "MAX_SEED",
           "MAX_WORKERS", "MAX_STD", "MAX_MEAN", "MIN_WIDTH", "MAX_WIDTH", "MAX_DIFF", "MAX_RUNS", "MAX_WARMUP",
           "MAX_FIDELITY_DB",
           "MAX_LATENCY_MS", "MAX_SIZE_MB", "MAX_RATIO", "MAX_SHARD_IMAGES", "check_width"]

# Inference threads: far above any CPU edgedeploy targets (phones 8, boards 4-16, servers 256), far below what
# makes a runtime spend minutes creating threads (ONNX Runtime with 100000 hangs).
MAX_THREADS = 256
# Input sizes (each family checks its own, narrower range) and class counts.
MIN_RESOLUTION, MAX_RESOLUTION = 8, 4096
MAX_CLASSES = 100_000
# Width multipliers: the one range every family takes (PaddleClas publishes MobileNetV2 x0.25 to x2.0; slim's
# MobileNets and DeepLab's are inside it), checked by the CLI, recipes, sweeps and each family's config.
MIN_WIDTH, MAX_WIDTH = 0.25, 2.0
# Images in a calibration, evaluation or parity set, and a seed (numpy's seeds are 32-bit).
MAX_IMAGES = 10_000_000
MAX_SEED = 2**32 - 1
# Ray workers of a sweep or tune.
MAX_WORKERS = 1024
# Normalization: pixels are 0-1 (or 0-255 for models fed raw pixels); std divides, so it must be positive.
MAX_MEAN, MAX_STD = 1000.0, 1000.0
# A logit-difference tolerance.
MAX_DIFF = 1e6
# An SQNR floor in dB, either sign (150 dB is an exact match: edgedeploy.exporter.parity).
MAX_FIDELITY_DB = 150.0
# Timed and warm-up runs of a benchmark.
MAX_RUNS, MAX_WARMUP = 100_000, 10_000
# Gate thresholds.
MAX_LATENCY_MS = 1e7
MAX_SIZE_MB = 1e6
MAX_RATIO = 1e3
MAX_SHARD_IMAGES = 1_000_000


def check_width(width: float) -> None:
    """ConfigError for a width multiplier outside the one range (the Python API and configs built in code)."""
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ConfigError(f"width multiplier {width} is outside [{MIN_WIDTH}, {MAX_WIDTH}]")
