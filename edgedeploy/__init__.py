"""edgedeploy: take a PyTorch MobileNetV2 (or your own model) to the edge and prove it still works there.

The Python API (:mod:`edgedeploy.api`): ``edgedeploy.export``, ``load``, ``evaluate``, ``bench`` and
``preprocess_images``, imported on first use so ``import edgedeploy`` stays light.
"""

from __future__ import annotations

import types
from typing import Any

from edgedeploy.core.version import __version__

__all__ = ["__version__", "export", "load", "evaluate", "bench", "preprocess_images"]

_API = ("load", "evaluate", "bench", "preprocess_images")


class _ExportPackage(types.ModuleType):
    """``edgedeploy.export`` is the export layer's package and, called, the API's ``export()``: a submodule
    import sets the package attribute to the module, so the module itself answers the call."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from edgedeploy.api import export as api_export

        return api_export(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _API:
        from edgedeploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgedeploy' has no attribute {name!r}")


from edgedeploy import export  # noqa: E402  (the light package module; its converters load lazily)

export.__class__ = _ExportPackage
