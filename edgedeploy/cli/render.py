"""Human-readable rendering of results (the --json path bypasses this entirely)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["table", "key_values", "fmt", "execution_text"]


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {fmt(v)}" for k, v in pairs)


def execution_text(execution: dict[str, Any] | None) -> str:
    """How a model ran, in one line: a GPU run names its accelerator, adapter, precision and any CPU fallback."""
    if not execution:
        return ""
    if "accelerator" not in execution:
        return ", ".join(f"{k} {v}" for k, v in execution.items())
    adapter = execution["adapter"]
    software = " - a software adapter on the CPU: not GPU figures" if execution.get("software") else ""
    ops = execution.get("cpu_ops") or []
    listed = ", ".join(ops[:4]) + (", ..." if len(ops) > 4 else "")
    where = f"{len(ops)} ops on the CPU ({listed})" if ops else "fully on the GPU"
    return (f"{execution['accelerator']} on {adapter['name']} ({adapter['type']}, {adapter['backend']}{software}), "
            f"precision {execution['precision']}, {where}")
