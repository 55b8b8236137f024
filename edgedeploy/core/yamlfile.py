"""YAML configuration files (recipes, device profiles): safe loading, strict schemas, errors with lines.

YAML is read with the safe loader (plain data only, never Python objects) and a
duplicate key is an error rather than a silent overwrite. Schema errors (pydantic)
are reported as ``file:line: key.path: message`` for the first problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as SchemaError

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.paths import read_text

__all__ = ["ConfigFileError", "Lines", "Section", "load_yaml", "validate"]

Model = TypeVar("Model", bound=BaseModel)

# A recipe or profile is a few KB; a generated sweep a few hundred.
MAX_YAML_BYTES = 4 * 2**20
# Values a document may expand to once its aliases are followed (a large sweep has a few thousand).
MAX_YAML_NODES = 200_000


class ConfigFileError(ConfigError):
    """A configuration file that cannot be used as written (syntax, schema, unknown names...)."""


class Section(BaseModel):
    """A strict schema section: unknown keys are errors, types are not coerced, NaN and infinities are refused
    (YAML's .nan/.inf would pass every range check)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Lines:
    """Maps a key path (as pydantic reports it) to its line in the YAML source."""

    def __init__(self, path: Path, root: yaml.Node):
        self.path = path
        self.root = root

    def line(self, loc: Sequence[str | int]) -> int:
        node = self.root
        for depth, part in enumerate(loc):
            child = None
            if isinstance(node, yaml.MappingNode):
                # The last key points at its own line (an unknown key has no useful value line).
                last = depth == len(loc) - 1
                child = next((k if last else v for k, v in node.value if k.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node = child
        return node.start_mark.line + 1

    def error(self, loc: Sequence[str | int], message: str) -> ConfigFileError:
        """``file:line: key.path: message`` for the key at ``loc``."""
        return ConfigFileError(f"{self.path}:{self.line(loc)}: {'.'.join(map(str, loc))}: {message}")


def _duplicate_key(node: yaml.Node, seen_nodes: set[int] | None = None) -> yaml.Node | None:
    # Aliases make the node graph a DAG or even a cycle (a: &x [*x]): visit each node once.
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return None
    seen_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                return key
            seen.add(key.value)
            children.append(value)
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    for child in children:
        found = _duplicate_key(child, seen_nodes)
        if found is not None:
            return found
    return None


def _check_expansion(path: Path, root: yaml.Node | None) -> None:
    """Refuse a document whose aliases expand it past MAX_YAML_NODES (a "billion laughs" bomb: nine aliases of
    nine aliases... are a few hundred bytes and 10^9 nodes once anything walks them). Counted on the node graph,
    each node once, so the check itself is linear in the file."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_YAML_NODES + 1  # a cycle (a: &x [*x]) expands without end
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total = min(total + size(child), MAX_YAML_NODES + 1)
        sizes[id(node)] = total
        return total

    if root is not None and size(root) > MAX_YAML_NODES:
        raise ConfigFileError(f"{path}: its aliases expand it to more than {MAX_YAML_NODES:,} values (an alias "
                              "bomb?); refused")


def load_yaml(path: Path, what: str, expect: type = dict) -> tuple[Any, Lines]:
    """Safe-load ``path`` (a ``what``, e.g. "recipe"); its top level must be an ``expect`` (dict or list)."""
    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_expansion(path, root)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(data, expect) or root is None:
        shape = "mapping" if expect is dict else "list"
        raise ConfigFileError(f"{path}: a {what} is a YAML {shape}")
    duplicate = _duplicate_key(root)
    if duplicate is not None:
        raise ConfigFileError(f"{path}:{duplicate.start_mark.line + 1}: duplicate key {duplicate.value!r}")
    return data, Lines(path, root)


def validate(schema: type[Model], data: Any, lines: Lines, loc: Sequence[str | int] = ()) -> Model:
    """``schema`` validated from ``data`` (found at ``loc`` in the file); the first error with its line."""
    try:
        return schema.model_validate(data)
    except SchemaError as exc:
        errors = exc.errors()
        first = errors[0]
        where = [*loc, *first["loc"]]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{first['msg']} (got {str(first.get('input'))[:60]!r})"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        dotted = ".".join(str(p) for p in where) or "(top level)"
        raise ConfigFileError(f"{lines.path}:{lines.line(where)}: {dotted}: {message}{more}") from exc
