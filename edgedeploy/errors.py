"""One exception hierarchy; each class carries the CLI exit code for its concern.

Exit codes (documented in the README):
  1  unexpected internal error (a bug: rerun with --debug for the traceback)
  2  usage error (bad option values, unknown target/device/runtime)
  3  bad input file or data (missing, corrupt, wrong keys or shapes, no images)
  4  validation failed (parity or accuracy outside the allowed tolerance)
  5  a required optional dependency or resource is missing (extra, network)
"""

from __future__ import annotations

__all__ = [
    "EdgeDeployError",
    "ConfigError",
    "InputFileError",
    "WeightsError",
    "DataError",
    "ValidationError",
    "DependencyError",
]


class EdgeDeployError(Exception):
    """Base class: a one-line, user-facing message and an exit code."""

    exit_code = 1


class ConfigError(EdgeDeployError):
    """An option or configuration value is invalid."""

    exit_code = 2


class InputFileError(EdgeDeployError):
    """A file the user gave is missing, unreadable, corrupt or of the wrong kind."""

    exit_code = 3


class WeightsError(InputFileError):
    """A checkpoint cannot be loaded into the model (keys, shapes, format)."""


class DataError(InputFileError):
    """An image folder is missing, empty or unusable."""


class ValidationError(EdgeDeployError):
    """An artifact was produced but does not match its reference closely enough."""

    exit_code = 4


class DependencyError(EdgeDeployError):
    """An optional package, or a network resource, is not available."""

    exit_code = 5
