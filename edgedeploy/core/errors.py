"""One exception hierarchy; each class carries the CLI exit code for its concern.

Exit codes (documented in docs/json-and-exit-codes.md):
  1  the gate found a regression (a threshold exceeded); nothing went wrong
  2  usage error (bad option values, bad recipe, unknown target/device/runtime)
  3  bad input file or data (missing, corrupt, wrong keys or shapes, no images)
  4  validation failed (parity or accuracy outside the allowed tolerance)
  5  a required optional dependency or resource is missing (extra, network)
  6  incomplete: a target of a run failed to build or measure (the gate fails closed)
  70 unexpected internal error (a bug: rerun with --debug for the traceback)
  130 interrupted (SIGINT, Ctrl-C)
  143 terminated (SIGTERM)
Code 1 is kept for "the check said no", as grep and diff do, so CI can tell a
regression from a broken run.
"""

from __future__ import annotations

EXIT_REGRESSION = 1
EXIT_INCOMPLETE = 6
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

__all__ = [
    "EXIT_REGRESSION",
    "EXIT_INCOMPLETE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "EdgeDeployError",
    "ConfigError",
    "InputFileError",
    "WeightsError",
    "DataError",
    "ArtifactMismatchError",
    "OutputDirError",
    "ResultsError",
    "ValidationError",
    "ConversionError",
    "ParityError",
    "PrecisionError",
    "IntegrityError",
    "RemoteRunError",
    "DependencyError",
    "GpuUnavailableError",
    "GpuFallbackError",
    "UserCodeError",
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


class ArtifactMismatchError(InputFileError):
    """An artifact's file no longer matches the sha256 its manifest recorded (changed since export)."""


class OutputDirError(InputFileError):
    """An output folder cannot be created or written (missing parent, read-only, full)."""


class ResultsError(EdgeDeployError):
    """A results file holds a figure that is not a number (NaN, infinite): the gate fails closed."""

    exit_code = EXIT_INCOMPLETE


class ValidationError(EdgeDeployError):
    """A produced or fetched result failed a check (exit 4); raise one of the subclasses."""

    exit_code = 4


class ConversionError(ValidationError):
    """A converter (onnx2tf, TFLiteConverter, NNCF, ONNX Runtime quantization, onnxsim) failed
    or produced no artifact; the message quotes the converter's log."""


class ParityError(ValidationError):
    """An artifact's outputs are outside its target's tolerance against PyTorch."""


class PrecisionError(ValidationError):
    """An artifact's graph does not have the precision its target promises."""


class IntegrityError(ValidationError):
    """Downloaded or unpacked content fails its signature, hash or path check (refused)."""


class RemoteRunError(ValidationError):
    """A run on another device or in the emulator failed, timed out or ran other than asked."""


class GpuFallbackError(ValidationError):
    """A GPU run would not have happened fully on the GPU (ops without a GPU kernel, CPU fallback refused):
    its figures would be CPU figures under a GPU label."""


class UserCodeError(ValidationError):
    """A user's code (their factory, their module's import or forward) raised, exited (exit(), os._exit) or raised
    KeyboardInterrupt without a Ctrl-C: the message names their callable."""


class DependencyError(EdgeDeployError):
    """An optional package, or a network resource, is not available."""

    exit_code = 5


class GpuUnavailableError(DependencyError):
    """--device gpu with no usable GPU: no Vulkan loader, no adapter, only a CPU-only (software) adapter, or no
    GPU execution provider installed."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every cleanup (staging folders, redirected
    descriptors) runs as it does for Ctrl-C; a BaseException so no ``except Exception`` swallows it."""
