"""Every numeric option of every command, and every numeric field of the recipe and sweep schemas, has a
range checked at parse time: out-of-range, NaN and infinite values are one line and exit 2, never a
traceback, a hang (100000 threads) or a silent default (0 threads, -5 calibration images)."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedeploy.cli.app import cli
from edgedeploy.cli.ranges import Finite
from edgedeploy.core.yamlfile import ConfigFileError, Section
from edgedeploy.recipes.schema import RecipeSpec, load_recipe
from edgedeploy.sweep.schema import SweepSpec, load_sweep

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


NUMERIC_OPTIONS = [(path, param) for path, command in _commands() for param in command.params
                   if isinstance(param, click.Option)
                   and isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)]


def test_every_numeric_option_has_a_range_with_both_bounds() -> None:
    assert len(NUMERIC_OPTIONS) > 40
    unbounded = [f"{' '.join(path)} {param.opts[0]}" for path, param in NUMERIC_OPTIONS
                 if not isinstance(param.type, click.IntRange | Finite)
                 or param.type.min is None or param.type.max is None]
    assert unbounded == []


def _outside(kind: click.ParamType) -> st.SearchStrategy[str]:
    low, high = kind.min, kind.max  # type: ignore[attr-defined]
    if isinstance(kind, click.IntRange):
        return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).map(str)
    below = st.floats(max_value=low, exclude_max=not kind.min_open, allow_nan=False)  # type: ignore[attr-defined]
    above = st.floats(min_value=high, exclude_min=not kind.max_open, allow_nan=False)  # type: ignore[attr-defined]
    return st.one_of(below, above, st.sampled_from([math.nan, math.inf, -math.inf])).map(repr)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_out_of_range_option_values_are_one_line_and_exit_2(data: st.DataObject) -> None:
    path, param = data.draw(st.sampled_from(NUMERIC_OPTIONS))
    value = data.draw(_outside(param.type))
    # The bad option first: click converts options in command-line order, so it is the one refused.
    args = [*path, param.opts[0], value, *(["0.5"] * (param.nargs - 1))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (args, result.output)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output, (args, result.output)
    assert param.opts[0] in result.stderr, (args, result.stderr)


# ------------------------------------------------------------------ recipe and sweep schemas


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = next((m.ge if isinstance(m, annotated_types.Ge) else m.gt for m in metadata
                if isinstance(m, annotated_types.Ge | annotated_types.Gt)), None)
    high = next((m.le if isinstance(m, annotated_types.Le) else m.lt for m in metadata
                 if isinstance(m, annotated_types.Le | annotated_types.Lt)), None)
    return low, high


def _fields(model: type[Section], path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], type, tuple]]:
    """(YAML path, int or float, (low, high)) of every numeric field; list items get index 0."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            annotation = args[0] if len(args) == 1 else annotation
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, Section):
            yield from _fields(annotation, (*path, name))
        elif origin is dict and issubclass(typing.get_args(annotation)[1], Section):
            yield from _fields(typing.get_args(annotation)[1], (*path, name, "onnx"))
        elif annotation in (int, float):
            yield (*path, name), annotation, _bounds(info.metadata)
        elif origin is list:
            item = typing.get_args(annotation)[0]
            if typing.get_origin(item) is typing.Annotated:
                base, *meta = typing.get_args(item)
                if base in (int, float):
                    yield (*path, name, 0), base, _bounds([m for f in meta for m in getattr(f, "metadata", [f])])
            elif item in (int, float):
                yield (*path, name, 0), item, (None, None)


RECIPE_FIELDS = list(_fields(RecipeSpec, ()))
SWEEP_FIELDS = [f for f in _fields(SweepSpec, ()) if f[0][0] in ("matrix", "sweep")]
BASE_RECIPE = {"name": "r", "model": {"arch": "mobilenet_v2"}, "evaluation": {"data": "val"},
               "calibration": {"data": "calib"}, "targets": {"onnx": {"calibration": {"data": "calib"}}}}
BASE_SWEEP = {**BASE_RECIPE, "targets": {}, "matrix": {"width": [1.0], "resolution": [224], "targets": ["onnx"]}}


def test_every_numeric_schema_field_has_both_bounds() -> None:
    assert len(RECIPE_FIELDS) > 20 and len(SWEEP_FIELDS) == 3
    unbounded = [".".join(map(str, path)) for path, _, (low, high) in RECIPE_FIELDS + SWEEP_FIELDS
                 if low is None or high is None]
    assert unbounded == []


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = yaml.safe_load(yaml.safe_dump(document))  # a deep copy
    node = document
    for key, nxt in zip(path[:-1], path[1:]):
        if isinstance(node, dict) and key not in node:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    if isinstance(path[-1], int):
        node[:] = [value] * max(len(node), 4 if path[-2] == "input_shape" else 3 if path[-2] in ("mean", "std") else 1)
    else:
        node[path[-1]] = value
    return document


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_out_of_range_schema_values_name_their_line(data: st.DataObject, tmp_path: Path) -> None:
    sweep = data.draw(st.booleans())
    path, kind, (low, high) = data.draw(st.sampled_from(SWEEP_FIELDS if sweep else RECIPE_FIELDS))
    if kind is int:
        value: Any = data.draw(st.one_of(st.integers(max_value=int(low) - 1), st.integers(min_value=int(high) + 1)))
    else:
        value = data.draw(st.one_of(st.floats(max_value=low, exclude_max=True), st.floats(min_value=high, exclude_min=True),
                                    st.sampled_from([math.nan, math.inf])))
    document = _set(BASE_SWEEP if sweep else BASE_RECIPE, path, value)
    file = tmp_path / ("s.yaml" if sweep else "r.yaml")
    file.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigFileError) as info:
        (load_sweep if sweep else load_recipe)(file)
    message = str(info.value)
    assert "\n" not in message and file.name in message and str(path[-1] if isinstance(path[-1], str) else path[-2]) in message
    assert info.value.exit_code == 2
