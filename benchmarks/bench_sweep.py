"""Wall time of one 8-cell sweep on a local Ray runtime with 1 worker vs 2 workers, on this machine.

The sweep: MobileNetV2 1.0 at 128/160/192/224 x {onnx, onnx-int8} (int8 calibrated on 100 images),
each cell evaluated on the whole val split (600 images, shards of 256) and benched 30 runs. Every
run starts cold (its own empty cache and output folder), so 1 and 2 workers do the same work; the
worker counts alternate round by round so drift weighs on both. Besides the wall time it sums what
the tasks spent (builds, evaluation shards, benches) for the scaling model in docs/commands/sweep.md. Writes
benchmarks/SWEEP.md.

    python benchmarks/bench_sweep.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from edgedeploy.cli.render import table
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import CALIB_DIR, SYNSETS, VAL_DIR, data_root
from edgedeploy.devices import builtin_devices
from edgedeploy.sweep.engine import run_sweep
from edgedeploy.sweep.schema import load_sweep

RESULTS = Path(__file__).with_name("SWEEP.md")


def _sweep_file(folder: Path, runs: int) -> Path:
    root = data_root()
    path = folder / "bench_sweep.yaml"
    path.write_text(
        "name: bench_sweep\nmodel: {weights: sample}\n"
        f"calibration: {{data: {root / CALIB_DIR}, size: 100}}\n"
        f"evaluation: {{data: {root / VAL_DIR}, synsets: {root / SYNSETS}}}\n"
        f"bench: {{runs: {runs}, warmup: 5}}\n"
        "matrix: {width: [1.0], resolution: [128, 160, 192, 224], targets: [onnx, onnx-int8]}\n")
    return path


def _task_seconds(results: dict) -> dict[str, float]:
    cells = [c for c in results["cells"].values() if c["status"] == "ok"]
    return {"build": sum(c["build"]["seconds"] for c in cells),
            "eval": sum(c["accuracy"]["seconds"] for c in cells)
            + sum(m["accuracy"]["seconds"] for m in results["models"].values()),
            "bench": sum(c["bench_seconds"] for c in cells)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per cell")
    args = parser.parse_args()
    walls: dict[int, list[float]] = {1: [], 2: []}
    tasks: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_sweep(_sweep_file(Path(tmp), args.runs))
        for round_index in range(args.rounds):
            for workers in ((1, 2) if round_index % 2 == 0 else (2, 1)):
                run_dir = Path(tmp) / f"round{round_index}-w{workers}"
                os.environ["EDGEDEPLOY_CACHE"] = str(run_dir / "cache")  # cold: nothing built or evaluated yet
                start = time.perf_counter()
                results = run_sweep(sweep, run_dir / "out", max_workers=workers)
                walls[workers].append(time.perf_counter() - start)
                assert results["status"] == "ok", results["failed"]
                tasks[workers].append(_task_seconds(results))
                print(f"round {round_index + 1}, {workers} worker(s): {walls[workers][-1]:.1f} s "
                      f"(Ray start {results['ray']['start_seconds']:.1f} s)", file=sys.stderr)
    wall = {w: statistics.median(v) for w, v in walls.items()}
    rows = [[f"{w}", f"{wall[w]:.1f}", " / ".join(f"{x:.1f}" for x in walls[w]),
             *[f"{statistics.median(t[k] for t in tasks[w]):.1f}" for k in ("build", "eval", "bench")]]
            for w in (1, 2)]
    ratio = wall[2] / wall[1]
    text = "\n".join([
        "# Sweep scaling: 1 vs 2 workers (local Ray)", "",
        f"- when: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- host: {builtin_devices()['cpu'].describe_host()}",
        f"- tools: {', '.join(f'{k} {v}' for k, v in tool_versions(('ray', 'onnxruntime', 'torch')).items())}",
        "- sweep: MobileNetV2 1.0 x resolution {128, 160, 192, 224} x {onnx, onnx-int8}: 8 cells, "
        f"600 val images each (shards of 256), {args.runs} timed runs each; every run cold (empty cache)",
        f"- command: `python benchmarks/bench_sweep.py --rounds {args.rounds} --runs {args.runs}`", "",
        table(["workers", "wall s (median)", "each round s", "build task-s", "eval task-s", "bench task-s"], rows),
        "", f"**2 workers / 1 worker wall time: {ratio:.3f}x** (target <= 0.65x).", "",
        "Task-seconds are the sums of what the tasks themselves took (builds and evaluation shards run in "
        "parallel, benches one at a time on the bench host); with 2 workers they grow a little: two "
        "processes share the memory bandwidth and caches of two cores.", ""])
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
