"""edgedeploy: take a PyTorch MobileNetV2 (or your own model) to the edge and prove it still works there.

The Python API (:mod:`edgedeploy.api`): ``edgedeploy.export``, ``load``, ``evaluate``, ``bench`` and
``preprocess_images``, imported on first use so ``import edgedeploy`` stays light. The export layer is the
package :mod:`edgedeploy.exporter`; ``edgedeploy.export`` is a plain function.
"""

from __future__ import annotations

from typing import Any

from edgedeploy.core.version import __version__

__all__ = ["__version__", "export", "load", "evaluate", "bench", "preprocess_images"]

_API = ("export", "load", "evaluate", "bench", "preprocess_images")


def __getattr__(name: str) -> Any:
    if name in _API:
        from edgedeploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgedeploy' has no attribute {name!r}")
