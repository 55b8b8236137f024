"""What a converter receives and returns (shared by every target's converter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgedeploy.models import MobileNetV2Config
from edgedeploy.spec import ModelIO

__all__ = ["ExportContext", "Conversion"]


@dataclass(frozen=True)
class ExportContext:
    config: MobileNetV2Config
    # How the float ONNX graph is fed; converters derive their artifact's IO from it.
    onnx_io: ModelIO
    # Scratch folder private to this export (removed afterwards).
    workdir: Any
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Conversion:
    io: ModelIO
    details: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
