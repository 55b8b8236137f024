"""What a converter receives and returns (shared by every target's converter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.core.io_spec import ModelIO
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config

if TYPE_CHECKING:
    from edgedeploy.data.calibration import CalibrationSet
    from edgedeploy.data.datasets import ImageFolder

__all__ = ["ExportContext", "Conversion"]


@dataclass(frozen=True)
class ExportContext:
    config: MobileNetV2Config
    # How the float ONNX graph is fed; converters derive their artifact's IO from it.
    onnx_io: ModelIO
    # Scratch folder private to this export (removed afterwards).
    workdir: Path
    # Converter and tool logs; kept beside the artifact.
    log_path: Path
    # Real images for tools that want examples (not calibration); None if none were found.
    sample_images: ImageFolder | None = None
    calibration: CalibrationSet | None = None
    # Target-specific options (e.g. io_dtype).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Conversion:
    io: ModelIO
    details: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    # Files that belong to the artifact and travel with it (OpenVINO's .bin beside the .xml).
    companions: tuple[Path, ...] = ()
