"""A recipe's export options, derived from their declarations (edgedeploy.exporter.options): the fields of a
target's section (``io_dtype``, ``max_drop``, ``ptq``, ...) and of its ``parity`` and ``calibration``
sub-sections, each with its option's type, range and default; and the values a section sets, by option name.

The recipe's own structure is written here once: ``parity`` always exists (every field has a default), while
``calibration`` is optional and, when present, names its ``data``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from edgedeploy.core.yamlfile import Section
from edgedeploy.exporter.options import EXPORT_OPTIONS, ExportOption

__all__ = ["section_model", "section_values", "OPTIONAL_SECTIONS"]

# Sub-sections a target may leave out entirely, with the fields they then must give.
OPTIONAL_SECTIONS = {"calibration": ("data",)}


def _field(option: ExportOption, required: bool) -> tuple[Any, Any]:
    """The pydantic field of ``option``: YAML types, the option's range, its default (None: the target's)."""
    bounds: dict[str, Any] = {}
    if option.minimum is not None:
        bounds["gt" if option.above_minimum else "ge"] = option.minimum
    if option.maximum is not None:
        bounds["le"] = option.maximum
    kind: Any = {"int": int, "float": float, "flag": bool, "list": list[str]}.get(option.kind, str)
    if option.enum is not None:
        # YAML gives strings: the enum's values, not its members (not strict).
        kind, bounds = option.enum, {**bounds, "strict": False}
    if required:
        return kind, Field(..., **bounds)
    if option.kind == "list":
        return kind, Field(list(option.default or ()), **bounds)
    default = option.default if option.kind == "flag" or option.default is not None else None
    return (kind if default is not None else kind | None), Field(default, **bounds)


def section_model(name: str = "", extra: dict[str, Any] | None = None) -> type[Section]:
    """The pydantic model of a target's section (``name`` empty) or of one of its sub-sections, built from the
    options declared when it is called; ``extra``: fields the recipe adds itself (thresholds)."""
    fields: dict[str, Any] = {}
    prefix = f"{name}." if name else ""
    required = OPTIONAL_SECTIONS.get(name, ())
    sections: dict[str, Any] = {}
    for option in EXPORT_OPTIONS.values():
        if option.recipe is None or not option.recipe.startswith(prefix):
            continue
        key = option.recipe[len(prefix):]
        if "." in key:  # a sub-section of this one
            section = key.split(".", 1)[0]
            if section not in sections:
                model = section_model(prefix + section)
                sections[section] = ((model | None, None) if section in OPTIONAL_SECTIONS else (model, model()))
            continue
        fields[key] = _field(option, key in required)
    # The section's own keys first, then its sub-sections (the order errors are reported in).
    return create_model(f"{(name or 'target').title()}Spec", __base__=Section, **fields,
                        **dict(sorted(sections.items(), key=lambda item: item[0] != "calibration")),
                        **(extra or {}))


def section_values(section: Any, calibration: Any, resolve: Any) -> dict[str, Any]:
    """The export options a target's ``section`` sets, by option name (paths through ``resolve``);
    ``calibration``: the calibration section that applies (the target's or the recipe's), or None."""
    values: dict[str, Any] = {}
    for option in EXPORT_OPTIONS.values():
        if option.recipe is None:
            continue
        *path, key = option.recipe.split(".")
        holder = section
        for part in path:
            holder = calibration if part == "calibration" else getattr(holder, part, None)
        value = getattr(holder, key, None) if holder is not None else None
        if value is None or value == []:
            continue
        values[option.name] = resolve(value) if option.kind == "path" else (
            tuple(value) if isinstance(value, list) else value)
    return values

