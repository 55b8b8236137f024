"""Sweep files: a recipe plus a matrix, expanded into cells (one build + eval + bench each).

A sweep file is a recipe (edgedeploy.recipes.schema) with two more sections::

    matrix:                      # every combination is a cell
      width: [1.0]
      resolution: [128, 160]
      targets: [onnx, onnx-int8]
      calib_method: [minmax, percentile]
    sweep:
      shard_images: 256          # images per evaluation shard (one Ray task each), whole batches

``targets:`` is optional there: it gives per-target options and thresholds for the matrix's
targets. ``calib_method`` multiplies only the targets that take a calibration method (a float
target is one cell per model, whatever the list), and each of those gets the listed methods it
offers. Every cell is checked like a recipe when the file is loaded, so a bad combination is an
error with its line before anything runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from edgedeploy.core import limits
from edgedeploy.core.errors import ConfigError, EdgeDeployError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.yamlfile import ConfigFileError, Lines, Section, load_yaml, validate
from edgedeploy.exporter.targets import get_target
from edgedeploy.models import get_model
from edgedeploy.recipes.schema import Recipe, RecipeSpec, TargetSpec, check_recipe

__all__ = ["Cell", "Sweep", "load_sweep", "is_sweep_file", "DEFAULT_SHARD_IMAGES"]

# 256 images (16 batches of 16): a shard is seconds of work at 224 on one core, long enough to hide a
# task's scheduling cost, short enough to spread ImageNet's 50,000 over many workers.
DEFAULT_SHARD_IMAGES = 256


class MatrixSpec(Section):
    width: list[Annotated[float, Field(ge=limits.MIN_WIDTH, le=limits.MAX_WIDTH)]] = Field(min_length=1)
    resolution: list[Annotated[int, Field(ge=limits.MIN_RESOLUTION, le=limits.MAX_RESOLUTION)]] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    calib_method: list[str] | None = Field(None, min_length=1)


class SweepOptions(Section):
    shard_images: int = Field(DEFAULT_SHARD_IMAGES, ge=1, le=limits.MAX_SHARD_IMAGES)


class SweepSpec(RecipeSpec):
    # Per-target options for the matrix's targets; a matrix target not listed gets the defaults.
    targets: dict[str, TargetSpec] = {}
    matrix: MatrixSpec
    sweep: SweepOptions = SweepOptions()


@dataclass(frozen=True)
class Cell:
    width: float
    resolution: int
    target: str
    calib_method: str | None

    @property
    def id(self) -> str:
        """A readable, file-name-safe name: w1.0-r160-onnx-int8, w0.75-r128-onnx-int8-percentile."""
        method = f"-{self.calib_method}" if self.calib_method else ""
        return f"{self.model_id}-{self.target}{method}"

    @property
    def model_id(self) -> str:
        """The float model this cell is measured against (one per width and resolution)."""
        return f"w{self.width}-r{self.resolution}"

    def params(self) -> dict[str, object]:
        return {"width": self.width, "resolution": self.resolution, "target": self.target,
                "calib_method": self.calib_method}


@dataclass(frozen=True)
class Sweep:
    spec: SweepSpec
    path: Path
    sha256: str
    cells: tuple[Cell, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def recipe(self, cell: Cell) -> Recipe:
        """The one-target recipe a cell is (paths still relative to the sweep file)."""
        target = self.spec.targets.get(cell.target, TargetSpec())
        if cell.calib_method is not None:
            target = target.model_copy(update={"calib_method": cell.calib_method})
        model = self.spec.model.model_copy(update={"width": cell.width, "resolution": cell.resolution})
        fields = self.spec.model_dump(exclude={"matrix", "sweep", "targets", "model"})
        spec = RecipeSpec.model_validate({**fields, "model": model, "targets": {cell.target: target}})
        return Recipe(spec=spec, path=self.path, sha256=self.sha256)

    def reference_recipe(self, model_id: str) -> Recipe:
        """A recipe of the float model ``model_id`` names (its first cell's)."""
        return self.recipe(next(c for c in self.cells if c.model_id == model_id))

    @property
    def model_ids(self) -> list[str]:
        return list(dict.fromkeys(c.model_id for c in self.cells))


def _cells(spec: SweepSpec, lines: Lines) -> tuple[Cell, ...]:
    matrix = spec.matrix
    try:
        family = get_model(spec.model.arch)
    except ConfigError as exc:
        raise lines.error(["model", "arch"], str(exc)) from None
    for width, resolution in itertools.product(matrix.width, matrix.resolution):
        try:
            family.make_config(**{**spec.model.config_values(), "width": width, "resolution": resolution})
        except ConfigError as exc:
            raise lines.error(["matrix"], f"width {width}, resolution {resolution}: {exc}") from None
    cells = []
    for i, name in enumerate(matrix.targets):
        try:
            target = get_target(name)
        except ConfigError as exc:
            raise lines.error(["matrix", "targets", i], str(exc)) from None
        methods: list[str | None] = [None]
        if matrix.calib_method and target.calib_methods:
            methods = [m for m in matrix.calib_method if m in target.calib_methods]
            if not methods:
                raise lines.error(["matrix", "calib_method"], f"none of {', '.join(matrix.calib_method)} applies to "
                                  f"{name} (it offers {', '.join(target.calib_methods)})")
        cells += [Cell(w, r, name, m) for w, r, m in itertools.product(matrix.width, matrix.resolution, methods)]
    unique = tuple(dict.fromkeys(cells))
    if len(unique) != len(cells):
        raise lines.error(["matrix"], "a value is listed twice: every cell must be distinct")
    return unique


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file: its schema, then every cell as a recipe (errors name file:line)."""
    path = Path(path)
    data, lines = load_yaml(path, "sweep")
    spec = validate(SweepSpec, data, lines)
    unknown = [t for t in spec.targets if t not in spec.matrix.targets]
    if unknown:
        raise lines.error(["targets", unknown[0]], "not in matrix.targets: options for a target the sweep does not run")
    if spec.sweep.shard_images % spec.evaluation.batch_size:
        # Whole batches: each image then runs in the batch it has in a single pass, so its logits are the
        # same bits (a convolution's result can depend on the batch) and the merged top-1 is exact.
        raise lines.error(["sweep", "shard_images"], f"must be a multiple of evaluation.batch_size "
                                                     f"({spec.evaluation.batch_size}), so shards are whole batches")
    if spec.devices != ["cpu"]:
        raise lines.error(["devices"], "a sweep benches on the CPU of the Ray host that runs each bench task "
                                       "(devices: [cpu]); bench phones and boards with `edgedeploy run`")
    sweep = Sweep(spec=spec, path=path.resolve(), sha256=sha256_file(path), cells=_cells(spec, lines))
    for cell in sweep.cells:
        try:
            check_recipe(sweep.recipe(cell).spec, lines, sweep.path.parent)
        except ConfigFileError as exc:
            raise ConfigFileError(f"{exc} (cell {cell.id})") from None
    return sweep


def is_sweep_file(path: str | Path) -> bool:
    """Whether a YAML file is a sweep (has a top-level ``matrix:``), cheaply and without failing."""
    try:
        data, _ = load_yaml(Path(path), "file")
    except EdgeDeployError:
        return False  # the recipe loader reports what is wrong with it
    return isinstance(data, dict) and "matrix" in data
