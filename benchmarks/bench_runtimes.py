"""Side-by-side latency, accuracy and size of every export target on this CPU.

Exports the sample weights to every registered target, then measures PyTorch, each
artifact and Google's two published int8 MobileNetV2 models in one process,
interleaved round by round (this machine is shared and noisy: interleaving spreads
any disturbance over all rows). Each row reports the median of the per-round p50s.
Writes benchmarks/RESULTS.md.

    python benchmarks/bench_runtimes.py --threads 2 --rounds 5 --runs 50
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from edgedeploy.cli.render import table
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import VAL_DIR, data_root
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.measure.bench import benchmark
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.runtimes import LoadOptions, load_runner

RESULTS = Path(__file__).with_name("RESULTS.md")
# Google's own int8 MobileNetV2 1.0/224 (TF asymmetric padding: ~2 points more top-1 than our float weights).
GOOGLE_REFERENCES = {
    "google tf2 PTQ int8": "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "google tf1 QAT uint8": "mobilenet_v2_1.0_224_quant.tflite",
}
# Latency ratios the TFLite acceptance criteria are stated in.
RATIOS = (
    ("tflite-int8", "google tf2 PTQ int8"),
    ("tflite-int8", "tflite-fp32"),
    ("openvino-int8", "openvino-fp32"),
    ("onnx-int8", "onnx"),
    ("onnx", "torch (eager)"),
)


def benchmark_app_median(xml: str, threads: int, iterations: int) -> float:
    """OpenVINO's own benchmark_app on the same IR, threads and f32 precision: median ms.

    benchmark_app refuses -nthreads together with a hint, so the latency hint's
    configuration is spelled out: one stream, ``threads`` threads.
    """
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    out = subprocess.run(
        [exe, "-m", xml, "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync", "-nthreads", str(threads),
         "-infer_precision", "f32", "-niter", str(iterations)],
        capture_output=True, text=True, check=True,
    ).stdout
    # Printed in us below a millisecond (VNNI CPUs run int8 MobileNetV2 in ~0.9 ms).
    match = re.search(r"Median:\s+([\d.]+) (ms|us)", out)
    if not match:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-2000:]}")
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def compare_with_benchmark_app(runners: dict, threads: int, runs: int, warmup: int, rounds: int) -> list[list]:
    """Alternate our harness and benchmark_app on each OpenVINO model; medians of the per-round figures."""
    rows = []
    for label, runner in runners.items():
        if runner.runtime != "openvino":
            continue
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(benchmark(runner, runs, warmup).latency_ms["p50"])
            theirs.append(benchmark_app_median(runner.source, threads, runs))
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append([label, round(a, 2), round(b, 2), f"{(a - b) / b * 100:+.1f}%"])
    return rows


def _has_vnni() -> bool:
    """int8 dot products in one instruction: without them x86 int8 kernels gain little (and ORT's saturate)."""
    try:
        return "vnni" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-accuracy", action="store_true", help="Skip the val-split accuracy column.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    options = LoadOptions(threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        models = {"torch (eager)": "sample"}
        for name in TARGETS:
            result = export(ExportRequest(target=name, out_dir=Path(tmp), threads=args.threads))
            models[name] = str(result.path)
            print(f"exported {name} in {result.to_dict()['seconds']:.1f} s", file=sys.stderr)
        for label, filename in GOOGLE_REFERENCES.items():
            models[label] = str(data_root() / "reference" / filename)
        runners = {label: load_runner(model, options) for label, model in models.items()}
        p50s: dict[str, list[float]] = {label: [] for label in runners}
        for r in range(args.rounds):
            for label, runner in runners.items():
                p50s[label].append(benchmark(runner, args.runs, args.warmup).latency_ms["p50"])
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in p50s.items()),
                  file=sys.stderr)
        accuracy: dict[str, tuple[float | None, float | None]] = {}
        if not args.no_accuracy:
            val = ImageFolder.open(data_root() / VAL_DIR)
            for label, runner in runners.items():
                res = evaluate(runner, val)
                accuracy[label] = (res.top1, res.top5)
        app_rows = compare_with_benchmark_app(runners, args.threads, args.runs, args.warmup, 3)
        base = statistics.median(p50s["torch (eager)"])
        rows = []
        for label, runner in runners.items():
            median = statistics.median(p50s[label])
            top1, top5 = accuracy.get(label, (None, None))
            size = runner.size_bytes
            rows.append([label, runner.runtime, f"{size / 2**20:.2f}" if size else "-", top1, top5,
                         round(median, 2), round(min(p50s[label]), 2), f"{median / base:.2f}x"])

    medians = {label: statistics.median(v) for label, v in p50s.items()}
    ratio_lines = "\n".join(
        f"- {a} / {b}: {medians[a] / medians[b]:.2f}x" for a, b in RATIOS if a in medians and b in medians
    )
    headers = ["model", "runtime", "size MiB", "top-1 %", "top-5 %", "p50 ms (median)", "p50 ms (best)", "vs torch"]
    versions = tool_versions(("torch", "onnx", "onnxruntime", "onnxsim", "tensorflow", "onnx2tf", "ai-edge-litert",
                              "openvino", "nncf"))
    output_option = "" if args.output.resolve() == RESULTS.resolve() else f" --output {args.output}"
    text = f"""# Benchmark results

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_runtimes.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}
- Settings: {args.threads} threads, batch 1, {args.rounds} interleaved rounds x {args.runs} timed runs
  (+{args.warmup} warm-up); latency is the median over rounds of each round's p50.
- Accuracy: `imagenet-subset/val` (600 images), Resize 256 + CenterCrop 224, each model fed as its manifest says
  (Google's models: raw uint8 pixels, 1001 classes with background dropped).
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(headers, rows)}

Latency ratios (medians above):

{ratio_lines}

Our harness (latency hint, {args.threads} threads) vs OpenVINO's own `benchmark_app` on the same IR
(`-hint none -nstreams 1 -nthreads {args.threads} -infer_precision f32 -api sync`, the same configuration
spelled out); medians of 3 alternating rounds of {args.runs} runs:

{table(["model", "edgedeploy p50 ms", "benchmark_app median ms", "difference"], app_rows)}

Reproduce:

```
python benchmarks/bench_runtimes.py --threads {args.threads} --rounds {args.rounds} --runs {args.runs}{output_option}
```
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
