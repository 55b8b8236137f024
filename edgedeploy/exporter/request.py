"""What an export is asked to do: a plain, torch-free value (recipes, the CLI and the Python API build one).

The model it exports (a family's config and weights, or an ONNX file), where the artifact goes, and the export
options by the names :data:`edgedeploy.exporter.options.EXPORT_OPTIONS` declares (``request.io_dtype``): the
requested values, checked against the target when the export starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.core.paths import file_name
from edgedeploy.exporter.options import (
    DEFAULT_OPSET,
    DEFAULT_PARITY_IMAGES,
    EXPORT_OPTIONS,
    MAX_OPSET,
    MIN_OPSET,
    ExportOptions,
    check_values,
)
from edgedeploy.models import ModelConfig
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config

__all__ = ["ExportRequest", "DEFAULT_PARITY_IMAGES", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET"]

_DEFAULT_CONFIG = MobileNetV2Config()


class ExportRequest:
    """One export: the model, where it goes, and the options (keywords named by EXPORT_OPTIONS)."""

    def __init__(
        self,
        target: str,
        config: ModelConfig | None = _DEFAULT_CONFIG,
        weights: str = "sample",
        out_dir: Path = Path("artifacts"),
        name: str | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        # ONNX in: export this ONNX file (ONNX-based targets) instead of a PyTorch model (``config`` None);
        # ``input_size`` fixes its dynamic spatial dims.
        onnx: Path | None = None,
        input_size: int | None = None,
        **options: Any,
    ):
        self.target = target
        self.config = config
        self.weights = weights
        self.out_dir = Path(out_dir)
        # A name is a file name: "../x" or "a/b" would put the artifact outside out_dir.
        self.name = file_name(name, "--name") if name is not None else None
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.onnx = Path(onnx) if onnx is not None else None
        self.input_size = input_size
        self.options = ExportOptions(check_values(options))

    def __setattr__(self, name: str, value: Any) -> None:
        # A request is a value: set once, in __init__ (replace() makes a changed copy).
        if "options" in self.__dict__:
            raise AttributeError(f"ExportRequest is immutable: use request.replace({name}=...)")
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        # The requested export options read as attributes (request.calib_size).
        if name != "options" and name in EXPORT_OPTIONS and "options" in self.__dict__:
            return self.__dict__["options"][name]
        raise AttributeError(f"ExportRequest has no attribute {name!r}")

    def fields(self) -> dict[str, Any]:
        """Every field by its keyword: ``ExportRequest(**request.fields())`` is the same request."""
        return {"target": self.target, "config": self.config, "weights": self.weights, "out_dir": self.out_dir,
                "name": self.name, "mean": self.mean, "std": self.std, "onnx": self.onnx,
                "input_size": self.input_size, **self.options}

    def replace(self, **changes: Any) -> ExportRequest:
        """A copy with ``changes`` (fields or options by keyword)."""
        return ExportRequest(**{**self.fields(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExportRequest) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(tuple(self.fields().items()))

    def __repr__(self) -> str:
        return f"ExportRequest({', '.join(f'{k}={v!r}' for k, v in self.fields().items())})"
