"""Sweeps on a real local Ray runtime (2 CPUs): a 2x2 sweep of cheap targets, exact merge of the
sharded evaluation, resume after an interrupt, a cell that fails, a worker killed and retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("ray", reason="needs the [sweep] extra (ray)")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.core.sample_data import CALIB_DIR, SYNSETS, VAL_DIR  # noqa: E402
from edgedeploy.data.datasets import ImageFolder  # noqa: E402
from edgedeploy.devices import builtin_devices  # noqa: E402
from edgedeploy.measure.evaluate import evaluate  # noqa: E402
from edgedeploy.models.architecture import Architecture  # noqa: E402
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402
from edgedeploy.sweep.engine import TASK_THREADS, run_sweep  # noqa: E402
from edgedeploy.sweep.results import SWEEP_SCHEMA, read_sweep  # noqa: E402
from edgedeploy.sweep.schema import load_sweep  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.data]

IMAGES, BATCH, SHARD = 48, 8, 16
RUNS = 10


# Parity on 16 images (the default is 100): every build is still parity-checked, what is tested here is the sweep.
PARITY = "parity: {images: 16}"
ONNX = f"  onnx: {{{PARITY}}}"
INT8_RATIO = f"{ONNX}\n  onnx-int8: {{thresholds: {{max_latency_ratio: 5.0}}, {PARITY}}}"


def write_sweep(folder: Path, data_root: Path, matrix: str, thresholds: str = "{max_top1_drop: 10.0}",
                name: str = "small_sweep", targets: str = INT8_RATIO) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {{weights: sample}}\n"
        f"calibration: {{data: {data_root / CALIB_DIR}, size: 32}}\n"
        f"evaluation: {{data: {data_root / VAL_DIR}, synsets: {data_root / SYNSETS}, limit: {IMAGES}, "
        f"batch_size: {BATCH}}}\n"
        f"bench: {{runs: {RUNS}, warmup: 2}}\n"
        f"thresholds: {thresholds}\n"
        f"targets:\n{targets}\n"
        f"matrix:\n{matrix}\nsweep: {{shard_images: {SHARD}}}\n")
    return path


TWO_BY_TWO = "  width: [1.0]\n  resolution: [128, 160]\n  targets: [onnx, onnx-int8]"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("sweep")
    sweep = load_sweep(write_sweep(folder, data_root, TWO_BY_TWO))
    done = []
    results = run_sweep(sweep, folder / "out", max_workers=2, on_cell=done.append)
    return sweep, results, folder / "out", done


def test_two_by_two_sweep_builds_evaluates_and_benches_every_cell(swept):
    sweep, results, out, done = swept
    assert [c.id for c in sweep.cells] == ["w1.0-r128-onnx", "w1.0-r160-onnx", "w1.0-r128-onnx-int8",
                                           "w1.0-r160-onnx-int8"]
    assert results["schema"] == SWEEP_SCHEMA and results["status"] == "ok", results["failed"]
    assert results["counts"] == {"cells": 4, "ran": 4, "resumed": 0, "failed": 0}
    assert results["ray"]["cpus"] == 2 and results["ray"]["nodes"] == 1
    # One progress event per cell, counting up to the total.
    assert [(e.done, e.total) for e in done] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    host = builtin_devices()["cpu"].describe_host()
    for cell_id, cell in results["cells"].items():
        assert cell["status"] == "ok" and (out / cell["artifact"]).is_file()
        assert cell["accuracy"]["n"] == IMAGES and cell["accuracy"]["shards"] == IMAGES // SHARD
        assert len(cell["latency"]["cpu"]["samples_ms"]) == RUNS and cell["latency"]["cpu"]["latency_ms"]["p50"] > 0
        assert cell["host"]["cpu"] == host and cell["host"]["pid"] != os.getpid()
        assert cell["size_bytes"] < (4 * 2**20 if "int8" in cell_id else 15 * 2**20)
    # The smallest artifact is on the size front, and every cell off it is dominated by one on it.
    points = {i: (c["size_bytes"], c["accuracy"]["top1"]) for i, c in results["cells"].items()}
    front = results["fronts"]["top1_vs_size"]
    assert min(points, key=points.get) in front
    for i in set(points) - set(front):
        assert any(points[f][0] <= points[i][0] and points[f][1] >= points[i][1] for f in front), i
    [latency_front] = results["fronts"]["top1_vs_p50"]
    assert latency_front["cpu"] == host and latency_front["cells"]
    assert read_sweep(out / "sweep.json")["cells"].keys() == results["cells"].keys()


def test_sharded_evaluation_equals_a_single_process_run(swept, data_root):
    sweep, results, out, _ = swept
    dataset = ImageFolder.open(data_root / VAL_DIR, data_root / SYNSETS).subset(IMAGES)
    # One thread and the same batches as the sweep's tasks: the same bits in every logit (a thread count
    # changes a reduction's order), so everything a count or a max gives must be equal, not close.
    for resolution in (128, 160):
        model = load_runner("sample", LoadOptions(threads=TASK_THREADS, architecture=Architecture(resolution=resolution)))
        rows: list[np.ndarray] = []
        float_result = evaluate(model, dataset, batch_size=BATCH, on_scores=lambda s, _: rows.append(s))
        assert results["models"][f"w1.0-r{resolution}"]["accuracy"]["top1"] == float_result.top1
        for target in ("onnx", "onnx-int8"):
            cell = results["cells"][f"w1.0-r{resolution}-{target}"]
            single = evaluate(load_runner(str(out / cell["artifact"]), LoadOptions(threads=TASK_THREADS)), dataset,
                              np.concatenate(rows), batch_size=BATCH)
            for field in ("n", "top1", "top5", "agreement", "max_abs_diff"):
                assert cell["accuracy"][field] == getattr(single, field), (cell["params"], field)
            assert cell["accuracy"]["top1_drop"] == round(float_result.top1 - single.top1, 4)


def test_gate_checks_every_cell_and_report_rebuilds(swept, tmp_path, data_root):
    sweep, _, out, _ = swept
    result = CliRunner().invoke(cli, ["gate", str(sweep.path), "--results", str(out / "sweep.json"), "--json"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert {c["target"] for c in verdict["checks"]} == {c.id for c in sweep.cells}
    ratios = [c for c in verdict["checks"] if c["name"] == "latency_ratio[cpu]"]
    assert len(ratios) == 2 and all(c["status"] == "pass" and c["interval"] for c in ratios)
    # A limit no cell meets: every cell fails, the gate exits 1 (regression).
    strict = write_sweep(tmp_path, data_root, TWO_BY_TWO, "{max_size_mb: 1.0}")
    result = CliRunner().invoke(cli, ["gate", str(strict), "--results", str(out / "sweep.json")])
    assert result.exit_code == 1 and result.stdout.count("FAIL") == 4, result.output
    result = CliRunner().invoke(cli, ["report", str(out / "sweep.json"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "rep" / "sweep.html").read_text()
    assert "Pareto front: top-1 vs size" in page and "w1.0-r160-onnx-int8" in page
    assert (tmp_path / "rep" / "plots" / "sweep_top1_vs_p50.png").stat().st_size > 10_000


def test_a_rerun_resumes_every_finished_cell_without_ray(swept):
    sweep, _, out, _ = swept
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}
    again = run_sweep(sweep, out, max_workers=2)
    assert again["counts"] == {"cells": 4, "ran": 0, "resumed": 4, "failed": 0} and again["ray"] is None
    assert all(c["resumed"] for c in again["cells"].values())
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}


def _default_sigint() -> None:
    # Started from a background job, pytest ignores SIGINT and so would the child.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sweep_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgedeploy", "sweep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


@pytest.mark.long
def test_interrupted_sweep_keeps_finished_cells_and_a_rerun_does_only_the_rest(swept, tmp_path):
    sweep, _, _, _ = swept
    out = tmp_path / "out"
    # --force: every cell is built again (nothing from the cache), one at a time, so the sweep is mid-way.
    proc = _sweep_cli(str(sweep.path), "--out", str(out), "--max-workers", "1", "--force")
    deadline = time.monotonic() + 300
    while not list(out.glob("cells/*/cell.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and stderr.strip().endswith("error: interrupted"), stderr
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}
    assert 1 <= len(finished) < 4
    resumed = run_sweep(sweep, out, max_workers=2)
    assert resumed["counts"] == {"cells": 4, "ran": 4 - len(finished), "resumed": len(finished), "failed": 0}
    assert {i for i, c in resumed["cells"].items() if c["resumed"]} == set(finished)
    assert finished == {i: (out / "cells" / i / "cell.json").stat().st_mtime_ns for i in finished}


def _ray_task_pid(name: str, proc: subprocess.Popen, timeout: float = 300) -> int:
    """The pid of the Ray worker running task ``name`` (Ray titles a busy worker ``ray::<task>``)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for p in psutil.process_iter(["pid", "cmdline"]):
            if (p.info["cmdline"] or [""])[0].startswith(f"ray::{name}"):
                return p.info["pid"]
        time.sleep(0.05)
    raise AssertionError(f"no Ray worker ran {name}: {proc.communicate()}")


def test_a_killed_worker_is_retried_and_a_failing_cell_is_recorded(tmp_path, data_root):
    pytest.importorskip("psutil")
    # Width 0.5 with the sample (width 1.0) weights fails for a real reason; the width 1.0 cell's build
    # worker is killed once and Ray runs the build again.
    path = write_sweep(tmp_path, data_root, "  width: [1.0, 0.5]\n  resolution: [96]\n  targets: [onnx]",
                       name="faults", targets=ONNX)
    out = tmp_path / "out"
    proc = _sweep_cli(str(path), "--out", str(out), "--max-workers", "1", "--force", "--json")
    killed = _ray_task_pid("build", proc)
    os.kill(killed, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 6, stderr
    assert stdout.startswith("{"), (stdout, stderr)
    summary = json.loads(stdout)
    assert summary["counts"] == {"cells": 2, "ran": 2, "resumed": 0, "failed": 1}
    results = read_sweep(out / "sweep.json")
    good, bad = results["cells"]["w1.0-r96-onnx"], results["cells"]["w0.5-r96-onnx"]
    assert good["status"] == "ok" and good["build_host"]["pid"] != killed
    assert bad["status"] == "failed" and bad["stage"] == "export" and "worker" not in bad["error"]
    assert "error: w0.5-r96-onnx failed at export" in stderr


def test_gate_and_report_on_a_sweep_import_no_ml_stack_and_no_ray(swept, tmp_path):
    sweep, _, out, _ = swept
    script = f"""
import sys
from click.testing import CliRunner
from edgedeploy.cli.app import cli
gate = CliRunner().invoke(cli, ["gate", {str(sweep.path)!r}, "--results", {str(out / "sweep.json")!r}, "--json"])
report = CliRunner().invoke(cli, ["report", {str(out / "sweep.json")!r}, "--out", {str(tmp_path)!r}])
print(gate.exit_code, report.exit_code, sorted(m for m in ("torch", "tensorflow", "openvino", "onnxruntime", "ray")
                                               if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "0 0 []", result.stdout[-2000:] + result.stderr[-2000:]


def test_max_workers_with_a_cluster_address_is_a_usage_error(swept):
    sweep, _, out, _ = swept
    result = CliRunner().invoke(cli, ["sweep", str(sweep.path), "--out", str(out), "--ray-address", "auto",
                                      "--max-workers", "2", "--force"])
    assert result.exit_code == 2 and "--max-workers sizes the local Ray runtime" in result.stderr, result.output


def test_a_sweep_joins_an_existing_ray_cluster(swept, tmp_path, data_root):
    """--ray-address: the sweep is submitted to a running cluster (here a one-node head started with `ray start`)
    instead of starting its own runtime; the tasks get the cache and data folders through their environment."""
    import socket

    ray_cli = Path(sys.executable).with_name("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "EDGEDEPLOY_DATA": str(data_root)}
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=120)
    try:
        # One cell whose build the module's sweep already cached: the cluster evaluates and benches it.
        path = write_sweep(tmp_path, data_root, "  width: [1.0]\n  resolution: [128]\n  targets: [onnx]",
                           name="on_cluster", targets=ONNX)
        result = subprocess.run([sys.executable, "-m", "edgedeploy", "sweep", str(path), "--out", str(tmp_path / "out"),
                                 "--ray-address", f"127.0.0.1:{port}", "--json"],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ray"]["address"] == f"127.0.0.1:{port}" and summary["ray"]["cpus"] == 2
    cell = read_sweep(tmp_path / "out" / "sweep.json")["cells"]["w1.0-r128-onnx"]
    assert cell["build"]["cached"] and cell["accuracy"]["n"] == IMAGES
    assert cell["accuracy"]["top1"] == swept[1]["cells"]["w1.0-r128-onnx"]["accuracy"]["top1"]
