"""A recipe's model section: a registered family with its weights, a user's module (``module`` + ``factory``), or
an ONNX file (``onnx``). Everything runs, sweeps and tune ask of it: the config, the weights as named and as
loaded, the reference runner (PyTorch, or ONNX Runtime on the file) and the content that keys the caches; and
the checks of the section itself. Torch and onnx are imported only when a model is really loaded, so gate,
compare and report on results files stay free of them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import ConfigError, UserCodeError
from edgedeploy.exporter.targets import get_target
from edgedeploy.models import DEFAULT_MODEL, WEIGHT_NAMES, ModelConfig, get_model, model_task
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.modules import ModuleConfig
from edgedeploy.runtimes import LoadOptions, Runner, load_runner

if TYPE_CHECKING:
    from edgedeploy.exporter.onnx_source import OnnxInput

__all__ = ["RecipeModel", "check_model_section"]


@dataclass(frozen=True)
class RecipeModel:
    # The recipe's ModelSpec, its folder, its normalization, and how it resolves a path it names.
    spec: Any
    folder: Path
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    resolve: Callable[[str], Path]

    @property
    def config(self) -> ModelConfig:
        m = self.spec
        if m.onnx:
            source = self.onnx_source
            return ModuleConfig(f"onnx:{Path(m.onnx).stem}", source.resolution, source.num_classes)
        if m.module:
            importable(self.folder)
        return get_model(m.arch_name).make_config(**m.config_values())

    @property
    def onnx_source(self) -> OnnxInput:
        """An ONNX model, normalized (cached by content): its size, classes, and the reference graph."""
        from edgedeploy.exporter.onnx_source import normalized_onnx

        return normalized_onnx(self.resolve(self.spec.onnx), self.spec.config_values().get("resolution"))

    @property
    def weights_name(self) -> str:
        """The weights as the recipe names them (the family's default when it names none; an ONNX file's own)."""
        m = self.spec
        if m.onnx:
            return str(m.onnx)
        if m.module:
            importable(self.folder)
        return str(m.weights or get_model(m.arch_name).default_weights)

    @property
    def weights(self) -> str:
        w = self.weights_name
        return w if w in WEIGHT_NAMES else str(self.resolve(w))

    @property
    def reference_runtime(self) -> str:
        """Where the source model runs for the reference figures: PyTorch, or ONNX Runtime for an ONNX file."""
        return "onnxruntime" if self.spec.onnx else "torch"

    @property
    def reference_model(self) -> str:
        """What the reference runner loads: the weights (PyTorch), or the normalized ONNX graph."""
        return str(self.onnx_source.path) if self.spec.onnx else self.weights

    def reference_options(self, threads: int) -> LoadOptions:
        """How to load the source model."""
        if self.spec.onnx:  # the normalized graph has no manifest: the recipe's normalization feeds it
            return LoadOptions(threads=threads, mean=self.mean, std=self.std, verify=False)
        c = self.config
        return LoadOptions(threads=threads, mean=self.mean, std=self.std, architecture=Architecture.of(c))

    def load_reference(self, threads: int) -> Runner:
        """The source model, as parity and the accuracy drops compare against it."""
        return load_runner(self.reference_model, self.reference_options(threads), runtime=self.reference_runtime)

    @property
    def fingerprint(self) -> str:
        """The source model's content: its weights (with the family) or the ONNX file with its external data."""
        if self.spec.onnx:
            from edgedeploy.exporter.onnx_source import onnx_fingerprint

            return onnx_fingerprint(self.resolve(self.spec.onnx))
        from edgedeploy.models.weights import weights_fingerprint

        return weights_fingerprint(self.weights, self.config.arch)


def check_model_section(m: Any, has_mean: bool, targets: list[str], folder: Path,
                        fail: Callable[[list[str | int], str], None]) -> tuple[str, str]:
    """The model section against the registries: (its task, its name); ``fail(loc, message)`` on a problem."""
    if (m.module is None) != (m.factory is None):
        fail(["model", "module" if m.module is None else "factory"], "give module and factory together")
    if m.onnx is not None:
        given = [k for k in ("module", "width", "options", "weights") if getattr(m, k) is not None]
        if given or m.arch != DEFAULT_MODEL:
            fail(["model", given[0] if given else "arch"], "does not apply to an ONNX model (model.onnx)")
        if not has_mean:
            fail(["preprocessing"], "an ONNX model records no normalization: give mean and std")
        wrong = [name for name in targets if get_target(name).source != "onnx"]
        if wrong:
            fail(["targets", wrong[0]], "converts from PyTorch, not ONNX (model.onnx)")
        return "classification", Path(m.onnx).name
    if m.module is not None:
        if m.arch != DEFAULT_MODEL:
            fail(["model", "arch"], "give arch or module/factory, not both")
        importable(folder)
    try:
        family = get_model(m.arch_name)
    except ConfigError as exc:
        fail(["model", "module" if m.module else "arch"], str(exc))
    try:
        config = family.make_config(**m.config_values())
    except ConfigError as exc:
        fail(["model"], str(exc))
    except UserCodeError as exc:  # the user's factory or forward failed: exit 4, with the recipe's line
        try:
            fail(["model"], str(exc))
        except ConfigError as located:
            raise UserCodeError(str(located)) from exc
    return model_task(config), family.name


def importable(folder: Path) -> None:
    """A recipe's module is importable from the recipe's folder (as from the working directory)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
