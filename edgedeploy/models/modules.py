"""A user's own ``nn.Module`` as a model family: a factory named ``package.module:callable`` (the CLI's
``--model``, recipes' ``arch``) or an instance (the Python API).

The module becomes one more row of the model registry, so everything downstream (the PyTorch reference,
the manifest, the build cache, parity, the gate) treats it like a registered family. What a registered
family declares (its task, its class count) is read off the module itself: one forward pass on a zero
image of the requested size; rank 2 out is classification, rank 4 at the input's size is segmentation.
The module's own parameters are its weights (``--weights module``, the default for such a family), or
a state_dict file loaded into it, checked key by key as for any family.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgedeploy.core.errors import ConfigError, UserCodeError
from edgedeploy.core.usercode import contained

__all__ = ["MODULE_ENTRY", "ModuleConfig", "ModuleFamily", "module_family", "InstanceFamilies", "INSTANCE_FAMILIES",
           "input_resolution"]

# "package.module:callable": what --model and a recipe's arch take for a factory.
MODULE_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# The options a module takes: its size comes from the example input, the rest from the module.
_ACCEPTED = ("resolution", "num_classes", "width")


@dataclass(frozen=True)
class ModuleConfig:
    """A module's input size and what its forward pass returns (the family's probe fills the last two)."""

    arch: str
    resolution: int
    num_classes: int
    task: str = "classification"
    # The registry's common field; a module has no width multiplier.
    width: float = 1.0
    # A detector's post-processing as the module declares it (its ``detection_parameters``), as JSON text so
    # the config stays hashable; "" for other modules.
    detection: str = ""

    def detection_parameters(self) -> dict[str, Any]:
        """What the module's own ``detection_parameters`` gave (edgedeploy.tasks.detection reads it)."""
        return dict(json.loads(self.detection)) if self.detection else {}

    @property
    def name(self) -> str:
        stem = self.arch.split("@")[0].rsplit(":", 1)[-1]
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', stem).strip('_') or 'model'}_{self.resolution}"


def input_resolution(shape: tuple[int, ...] | list[int], what: str = "example input") -> int:
    """The square RGB image size of an NCHW example input of batch 1, or a one-line error naming the problem."""
    dims = tuple(int(d) for d in shape)
    if len(dims) != 4:
        raise ConfigError(f"{what} has rank {len(dims)} ({list(dims)}); expected 4: 1,3,H,W (NCHW, batch 1)")
    n, c, h, w = dims
    if n != 1 or c != 3:
        raise ConfigError(f"{what} {list(dims)}: expected batch 1 and 3 channels (1,3,H,W)")
    if h != w or h < 8:
        raise ConfigError(f"{what} {list(dims)}: expected a square image of at least 8x8 pixels")
    return h


@dataclass(frozen=True)
class ModuleFamily:
    """A registry row built around a module (duck-types :class:`edgedeploy.models.ModelFamily`)."""

    name: str
    # "package.module:callable" or a callable returning the module (the Python API's instance, copied).
    factory: str | Callable[[], Any]
    description: str = "a user's nn.Module"
    # Read off the module by the probe; the registry's common attribute.
    task: str = "classification"
    weights: tuple[Any, ...] = ()
    _probed: dict[int, tuple[str, int, str]] = field(default_factory=dict, compare=False, repr=False)

    default_weights = "module"
    owns_weights = True

    def map_keys(self, state: dict[str, Any]) -> tuple[dict[str, Any], None]:
        return state, None  # a module's state_dict is in its own key names

    def named_weights(self, name: str) -> Any:
        raise ConfigError(f"{self.name} is a module: it has no {name!r} weights (use --weights module, its own "
                          "parameters, or a state_dict path)")

    def build(self, config: Any = None) -> Any:
        from torch import nn

        make = self._callable()
        try:
            with contained(self.name, "the factory"):
                module = make()
        except UserCodeError as exc:
            cause = exc.__cause__
            if isinstance(cause, TypeError) and "argument" in str(cause):  # called wrong: a usage problem
                raise ConfigError(f"{self.name}: the factory needs arguments ({cause}); give one that takes none "
                                  "(wrap it: def factory(): return MyNet(classes=10))") from None
            raise
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{self.name}: the factory returned a {type(module).__name__}, not a torch.nn.Module")
        return module.eval()

    def make_config(self, **values: Any) -> ModuleConfig:
        unknown = sorted(k for k, v in values.items() if k not in _ACCEPTED and v is not None)
        if unknown:
            raise ConfigError(f"{self.name} is a module: it takes no option {', '.join(unknown)}")
        if values.get("width") not in (None, 1.0):
            raise ConfigError(f"{self.name} is a module: --width does not apply (it is the module's own design)")
        resolution = values.get("resolution")
        if resolution is None:
            raise ConfigError(f"{self.name}: give the input size (--input-shape 1,3,H,W or --example-input FILE)")
        task, num_classes, detection = self._probe(int(resolution))
        wanted = values.get("num_classes")
        if wanted is not None and wanted != num_classes:
            raise ConfigError(f"{self.name}: the module outputs {num_classes} classes, not {wanted}")
        return ModuleConfig(self.name, int(resolution), num_classes, task, detection=detection)

    def _probe(self, resolution: int) -> tuple[str, int, str]:
        if resolution not in self._probed:
            import torch

            input_resolution((1, 3, resolution, resolution))
            module = self.build()
            with contained(self.name, f"forward on a 1x3x{resolution}x{resolution} input"), torch.no_grad():
                out = module(torch.zeros(1, 3, resolution, resolution))
            if isinstance(out, (tuple, list, dict)):
                self._probed[resolution] = ("detection", *self._detector_outputs(module, out))
            elif not isinstance(out, torch.Tensor):
                raise ConfigError(f"{self.name}: forward returned a {type(out).__name__}; expected one tensor "
                                  "(class scores, or per-pixel class scores), or a detector's two heads")
            elif out.ndim == 2:
                self._probed[resolution] = ("classification", int(out.shape[1]), "")
            elif out.ndim == 4 and tuple(out.shape[2:]) == (resolution, resolution):
                self._probed[resolution] = ("segmentation", int(out.shape[1]), "")
            else:
                raise ConfigError(f"{self.name}: forward returned shape {list(out.shape)}; expected (1, classes) "
                                  f"or (1, classes, {resolution}, {resolution})")
        return self._probed[resolution]

    def _detector_outputs(self, module: Any, out: Any) -> tuple[int, str]:
        """(classes, detection parameters as JSON) of a module whose forward returns several tensors: a detector
        that declares its post-processing (``detection_parameters``: anchors, box coder scales, labels, NMS, as
        the registered families' configs give them) and returns box encodings (1, A, 4) and class logits
        (1, A, 1 + classes), in that order or by those names."""
        import torch

        heads = list(out.values()) if isinstance(out, dict) else list(out)
        declared = getattr(module, "detection_parameters", None)
        if declared is None:
            raise ConfigError(f"{self.name}: forward returned {len(heads)} outputs; a model with several outputs is "
                              "read by the detection task, which needs the module's detection_parameters (anchors, "
                              "box coder scales, labels, NMS): see docs/detection.md")
        if len(heads) != 2 or not all(isinstance(h, torch.Tensor) and h.ndim == 3 for h in heads) or \
                heads[0].shape[-1] != 4 or heads[0].shape[1] != heads[1].shape[1]:
            raise ConfigError(f"{self.name}: a detector returns box encodings (1, anchors, 4) and class logits "
                              f"(1, anchors, 1 + classes); got {[list(getattr(h, 'shape', [])) for h in heads]}")
        with contained(self.name, "detection_parameters"):
            parameters = declared() if callable(declared) else declared
        try:
            text = json.dumps(parameters, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.name}: detection_parameters is not plain data ({exc})") from None
        return int(heads[1].shape[-1]) - 1, text

    def _callable(self) -> Callable[[], Any]:
        if callable(self.factory):
            return self.factory
        module_name, attr = self.factory.split(":")
        # As uvicorn and gunicorn do: the user's own package is importable from where they run the command.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            with contained(self.name, f"importing {module_name}"):
                module = importlib.import_module(module_name)
        except UserCodeError as exc:
            cause = exc.__cause__
            # The named module (or its package) not being there is a wrong name; anything else is its own code.
            if isinstance(cause, ModuleNotFoundError) and f"{module_name}.".startswith(f"{cause.name}."):
                raise ConfigError(f"{self.name}: cannot import {module_name} ({type(cause).__name__}: "
                                  f"{_first_line(cause)})") from None
            raise
        make = getattr(module, attr, None)
        if make is None:
            raise ConfigError(f"{self.name}: {module_name} has no {attr!r}")
        if not callable(make):
            raise ConfigError(f"{self.name}: {attr} is a {type(make).__name__}, not a callable returning a module")
        return make  # type: ignore[no-any-return]


@functools.cache
def module_family(entry: str) -> ModuleFamily:
    """The family of a factory named ``package.module:callable`` (one per name: it keeps what its probe found)."""
    if not MODULE_ENTRY.match(entry):
        raise ConfigError(f"{entry!r}: expected package.module:callable (a function returning an nn.Module)")
    return ModuleFamily(entry, entry, description=f"nn.Module from {entry}")


class InstanceFamilies:
    """The families of ``nn.Module`` instances handed to the Python API in this process, by name: an instance
    cannot be rebuilt from its name, so loading by name (the export's reference, its parity) looks it up here.
    Kept apart from the family registry, which lists only families declared in code."""

    def __init__(self) -> None:
        self._families: dict[str, ModuleFamily] = {}

    def family_of(self, module: Any) -> ModuleFamily:
        """The family of ``module``, named by its class and parameters (a fresh copy per build, so export never
        changes the caller's module); the first instance with those parameters is the one kept."""
        import copy

        from edgedeploy.models.weights import state_dict_sha256

        name = f"module:{type(module).__name__}@{state_dict_sha256(module.state_dict())[:12]}"
        if name not in self._families:
            snapshot = copy.deepcopy(module).eval()
            self._families[name] = ModuleFamily(name, lambda: copy.deepcopy(snapshot),
                                                description=f"nn.Module {type(module).__qualname__}")
        return self._families[name]

    def get(self, name: str) -> ModuleFamily | None:
        return self._families.get(name)


# The process's instances (the Python API's nn.Module arguments).
INSTANCE_FAMILIES = InstanceFamilies()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
