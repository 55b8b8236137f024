"""The export-target registry: it collects the rows each runtime declares beside its converters
(``edgedeploy/exporter/converters/<runtime>/targets.py``), so adding a format touches one runtime's folder.

A new target on an existing runtime is one row in that runtime's ``targets.py`` and one converter function; a
plugin adds one with :func:`register_target`.
"""

from __future__ import annotations

from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.choices import Precision
from edgedeploy.exporter.converters.executorch import targets as executorch_targets
from edgedeploy.exporter.converters.litert import targets as litert_targets
from edgedeploy.exporter.converters.onnxruntime import targets as onnxruntime_targets
from edgedeploy.exporter.converters.openvino import targets as openvino_targets
from edgedeploy.exporter.target import Converter, Target
from edgedeploy.exporter.tolerance import ParityTolerance
from edgedeploy.runtimes import get_runtime

__all__ = ["ParityTolerance", "Target", "Converter", "TARGETS", "register_target", "get_target", "target_names",
           "float_counterpart", "offered_values"]

TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Add a target row (a plugin's one call); its name must be new, its runtime registered, and its float
    baseline (``float_target``) an fp32 target of the same runtime registered before it."""
    if target.name in TARGETS:
        raise ConfigError(f"target {target.name!r} is already registered")
    runtime = get_runtime(target.runtime)
    if runtime.precision is None:
        raise ConfigError(f"target {target.name}: runtime {runtime.name} has no precision proof to export to")
    if target.float_target is None and target.precision is not Precision.FP32:
        raise ConfigError(f"target {target.name} is {target.precision}: name its float baseline (float_target)")
    if target.float_target is not None:
        baseline = TARGETS.get(target.float_target)
        if baseline is None or baseline.runtime != target.runtime or baseline.precision is not Precision.FP32:
            raise ConfigError(f"target {target.name}: its float baseline {target.float_target!r} must be a registered "
                              f"fp32 target of runtime {target.runtime}")
    TARGETS[target.name] = target
    return target


# The runtimes' own declarations, in the order `edgedeploy list` shows them.
for _row in (*onnxruntime_targets.TARGETS, *litert_targets.TARGETS, *openvino_targets.TARGETS,
             *executorch_targets.TARGETS):
    register_target(_row)


def float_counterpart(name: str) -> str:
    """The float target on ``name``'s runtime that speed-ups are quoted against (its row says which)."""
    return get_target(name).float_baseline


def target_names() -> list[str]:
    return list(TARGETS)


def offered_values(attribute: str) -> list[str]:
    """Every value some target offers for a per-target choice (``io_dtypes``, ``calib_methods``, ...), in
    registry order; each target checks its own."""
    return list(dict.fromkeys(v.value for t in TARGETS.values() for v in getattr(t, attribute)))


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
