"""An export's option values by name: what converters read (``ctx.options.io_dtype``) and the manifest records.

Kept apart from the declarations (options.py) so the converters, which the target registry imports, can take
the values without importing the registry back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["ExportOptions"]


class ExportOptions(Mapping[str, Any]):
    """An export's option values by name (also as attributes: ``options.io_dtype``); once resolved against a
    target, checked with that target's defaults filled in."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"no export option {name!r}") from None

    def __repr__(self) -> str:
        return f"ExportOptions({self._values!r})"

    def record(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The values (those ``names``, default all) as JSON (the manifest's export.options): enums and paths as
        strings, lists as lists."""
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, Enum):
                return value.value
            return str(value) if isinstance(value, Path) else value

        keep = set(self._values if names is None else names)
        return {name: plain(value) for name, value in self._values.items() if name in keep}
