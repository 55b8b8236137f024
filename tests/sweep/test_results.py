"""Pareto fronts, the per-CPU separation of latency fronts, and the finished-cell store a re-run resumes from."""

from __future__ import annotations

import json

import numpy as np

from edgedeploy.recipes.evidence import Predictions
from edgedeploy.sweep.results import CellStore, fronts, pareto_front


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = {"a": (10.0, 70.0), "b": (12.0, 75.0), "c": (12.0, 74.0), "d": (9.0, 60.0), "e": (20.0, 75.0),
              "f": (15.0, 76.0), "g": (9.0, 60.0)}
    # c is beaten by b (same cost, lower top-1), e by b (more cost, same top-1); d and g tie (both kept).
    assert pareto_front(points) == ["d", "g", "a", "b", "f"]
    assert pareto_front({}) == [] and pareto_front({"x": (1.0, 1.0)}) == ["x"]


def _cell(top1: float, p50: float, size: int, cpu: str, status: str = "ok") -> dict:
    return {"status": status, "accuracy": {"top1": top1}, "size_bytes": size, "host": {"cpu": cpu},
            "latency": {"cpu": {"latency_ms": {"p50": p50}}}}


def test_latency_fronts_never_mix_cpus():
    cells = {"fast-cpu-int8": _cell(70, 5, 4, "cpu A"), "fast-cpu-fp32": _cell(72, 9, 14, "cpu A"),
             "slow-cpu-int8": _cell(71, 50, 4, "cpu B"), "failed": _cell(99, 1, 1, "cpu A", status="failed")}
    result = fronts(cells)
    # On one front, slow-cpu-int8 (71 %, 50 ms) would be beaten by nothing on cpu B, and nothing from cpu B
    # can beat or be beaten by cpu A's cells.
    assert result["top1_vs_p50"] == [{"cpu": "cpu A", "cells": ["fast-cpu-int8", "fast-cpu-fp32"]},
                                     {"cpu": "cpu B", "cells": ["slow-cpu-int8"]}]
    # Size does not depend on the host: one front over all finished cells (the failed one is not a point).
    assert result["top1_vs_size"] == ["slow-cpu-int8", "fast-cpu-fp32"]


def test_a_cell_counts_as_finished_only_with_its_key_and_status_ok(tmp_path):
    store = CellStore(tmp_path)
    predictions = Predictions(np.array(["a" * 64, "b" * 64]), {"labels": np.array([1, 2], dtype=np.int32),
                                                               "top5": np.zeros((2, 5), dtype=np.int32)})
    store.write_cell("c1", {"key": "k1", "status": "ok", "x": 1}, predictions)
    record, loaded = store.finished_cell("c1", "k1")
    assert record["x"] == 1 and loaded.images.tolist() == predictions.images.tolist()
    assert store.finished_cell("c1", "other inputs") is None and store.finished_cell("c2", "k1") is None
    store.write_cell("c3", {"key": "k3", "status": "failed", "error": "boom"}, None)
    assert store.finished_cell("c3", "k3") is None  # a failed cell is tried again
    (tmp_path / "cells" / "c1" / "predictions.npz").write_bytes(b"truncated")
    assert store.finished_cell("c1", "k1") is None  # a damaged entry is done again
    assert json.loads((tmp_path / "cells" / "c3" / "cell.json").read_text())["error"] == "boom"
