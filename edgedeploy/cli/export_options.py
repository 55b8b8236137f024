"""The export options on the command line, derived from their declarations (edgedeploy.exporter.options): one
click option per declared option, with its flag, type, range, default and help; the command receives the values
the user gave as one mapping (``options``), never as loose keyword arguments."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import RegistryChoice
from edgedeploy.exporter.options import EXPORT_OPTIONS, ExportOption

__all__ = ["export_options", "click_option"]


def _click_type(option: ExportOption) -> Any:
    if option.kind == "int":
        return click.IntRange(None if option.minimum is None else int(option.minimum),
                              None if option.maximum is None else int(option.maximum),
                              min_open=option.above_minimum)
    if option.kind == "float":
        return ranges.Finite(option.minimum, option.maximum, min_open=option.above_minimum)
    if option.kind == "path":
        return click.Path(path_type=Path)
    if option.kind == "choice" and option.values is not None:
        return RegistryChoice(option.values)
    return str


def click_option(option: ExportOption, **overrides: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one declared export option (``overrides``: a command's own help or required-ness)."""
    settings: dict[str, Any] = {"help": option.help, "show_default": option.show_default}
    if option.kind == "flag":
        settings.update(is_flag=True, default=bool(option.default))
    elif option.kind == "list":
        settings.update(multiple=True, metavar=option.metavar)
    else:
        settings.update(type=_click_type(option), default=option.default if option.show_default else None,
                        metavar=option.metavar)
    return click.option(option.cli_flag, option.name, **{**settings, **overrides})


def export_options(*names: str,
                   helps: dict[str, str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds the named export options (all declared ones when none are named) to a command; the callback gets the
    values given on the command line as ``options`` (a dict by option name; defaults left to the request).
    ``helps``: a command's own help for some of them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        declared = [EXPORT_OPTIONS[n] for n in names] if names else list(EXPORT_OPTIONS.values())

        @functools.wraps(command)
        def with_options(*args: Any, **params: Any) -> Any:
            values = {o.name: params.pop(o.name) for o in declared}
            given = {name: value for name, value in values.items() if value is not None and value != ()}
            return command(*args, options=given, **params)

        for option in reversed(declared):
            own_help = (helps or {}).get(option.name)
            with_options = click_option(option, **({"help": own_help} if own_help else {}))(with_options)
        return with_options

    return decorate
