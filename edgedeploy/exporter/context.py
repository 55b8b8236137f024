"""What a converter receives and returns (shared by every target's converter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.exporter.option_values import ExportOptions
from edgedeploy.models import ModelConfig

if TYPE_CHECKING:
    from edgedeploy.data.calibration import CalibrationSet
    from edgedeploy.data.datasets import ImageSet

__all__ = ["ExportContext", "Conversion"]


@dataclass(frozen=True)
class ExportContext:
    # The target being built (converters may serve several targets).
    target: str
    config: ModelConfig
    # How the float ONNX graph is fed; converters derive their artifact's IO from it.
    onnx_io: ModelIO
    # Scratch folder private to this export (removed afterwards).
    workdir: Path
    # Converter and tool logs; kept beside the artifact.
    log_path: Path
    # Real images for tools that want examples (not calibration); None if none were found.
    sample_images: ImageSet | None = None
    calibration: CalibrationSet | None = None
    # Checked against the target's row before conversion starts: converters use them as they are.
    options: ExportOptions = field(default_factory=lambda: ExportOptions({}))
    # The PyTorch module (eval mode; with the pixel normalization inside for uint8 IO) that the
    # ONNX graph is exported from: direct routes (litert-torch, ExecuTorch) convert it themselves.
    torch_model: Any = None

    def required_calibration(self) -> CalibrationSet:
        """The calibration set; the pipeline loads one for every calibrated target."""
        if self.calibration is None:
            raise DataError(f"{self.target} needs a calibration set: pass --calib DIR")
        return self.calibration


@dataclass(frozen=True)
class Conversion:
    io: ModelIO
    details: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    # Files that belong to the artifact and travel with it (OpenVINO's .bin beside the .xml).
    companions: tuple[Path, ...] = ()
