"""Latency and size of every MobileNetV2 width (x0.25-x2.0) on every route of a widths sweep, benched side by side:
the artifacts `edgedeploy sweep recipes/mobilenet_v2_widths_sweep.yaml` built, loaded in one process and timed in
interleaved rounds (a sweep benches each cell when it finishes, so its p50s come from different moments of a
shared machine). Writes benchmarks/WIDTHS.md.

    edgedeploy sweep recipes/mobilenet_v2_widths_sweep.yaml --out edgedeploy-out/mobilenet_v2_widths_sweep
    python benchmarks/bench_widths.py --sweep-out edgedeploy-out/mobilenet_v2_widths_sweep --rounds 5 --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench_runtimes import _cpu_name, _has_vnni

from edgedeploy.cli.render import table
from edgedeploy.core.manifest import tool_versions
from edgedeploy.measure.bench import benchmark
from edgedeploy.runtimes import LoadOptions, load_runner

OUTPUT = Path(__file__).with_name("WIDTHS.md")
# Per runtime: (fp32 target, int8 target).
PAIRS = {"ONNX Runtime": ("onnx", "onnx-int8"), "OpenVINO": ("openvino-fp32", "openvino-int8"),
         "LiteRT (onnx2tf)": ("tflite-fp32", "tflite-int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep-out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    sweep = json.loads((args.sweep_out / "sweep.json").read_text())
    cells = {(c["params"]["width"], c["params"]["target"]): c for c in sweep["cells"].values() if c["status"] == "ok"}
    runners = {key: load_runner(str(args.sweep_out / c["artifact"]), LoadOptions(threads=args.threads))
               for key, c in cells.items()}
    p50s: dict[tuple[float, str], list[float]] = {key: [] for key in runners}
    for r in range(args.rounds):
        for key, runner in runners.items():
            p50s[key].append(benchmark(runner, args.runs, args.warmup).latency_ms["p50"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    p50 = {key: statistics.median(v) for key, v in p50s.items()}
    widths = sorted({w for w, _ in cells})
    rows = []
    for width in widths:
        row = [width]
        for fp32, int8 in PAIRS.values():
            for target in (fp32, int8):
                key = (width, target)
                row.append(f"{p50[key]:.2f} ms, {runners[key].size_bytes / 2**20:.2f} MiB" if key in p50 else "-")
            ratio = p50.get((width, int8), 0) / p50[(width, fp32)] if (width, fp32) in p50 else 0
            row.append(f"{ratio:.2f}" if ratio else "-")
        rows.append(row)
    headers = ["width"] + [h for runtime, (fp32, int8) in PAIRS.items()
                           for h in (f"`{fp32}`", f"`{int8}`", f"{runtime} int8/fp32")]
    versions = tool_versions(("torch", "onnxruntime", "openvino", "nncf", "onnx2tf", "tensorflow", "ai-edge-litert"))
    text = f"""# MobileNetV2 x0.25-x2.0 at 224 px on three runtimes

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_widths.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs
- Artifacts: `recipes/mobilenet_v2_widths_sweep.yaml` (torchvision's channel rule, random weights, int8 calibrated on
  32 ImageNet images with the agreement floor lifted: untrained models have no decisions to keep)
- Latency: batch 1, {args.threads} threads, {args.rounds} interleaved rounds x {args.runs} timed runs
  (+{args.warmup} warm-up), median of the per-round p50s; size of the artifact's files
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(headers, rows)}

Reproduce: `python benchmarks/bench_widths.py --sweep-out DIR --rounds {args.rounds} --runs {args.runs}` (DIR: the
sweep's `--out`)
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
