"""Which route gives the smaller, faster, more accurate artifact? fp32 and int8 of every route, side by side.

Routes: ONNX -> onnx2tf -> TFLiteConverter (tflite-*), PyTorch -> litert-torch (+ AI Edge
Quantizer) (litert-*), PyTorch -> ExecuTorch/XNNPACK (executorch-*), and the existing OpenVINO
and ONNX Runtime rows. For each target: cold export (empty caches) and warm re-export (the
content-addressed cache) wall times, size, op count with the TRANSPOSE/PAD ops the route left
in the graph, top-1 and top-1 agreement with PyTorch on the 600-image val split, and p50
latency at 1 and 2 threads, measured in one process, interleaved round by round. Writes
benchmarks/ROUTES.md.

    python benchmarks/bench_routes.py --rounds 5 --runs 50
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

from bench_runtimes import _cpu_name, _has_vnni

from edgedeploy.cli.render import table
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import VAL_DIR, data_root
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.exporter.build_cache import cached_export
from edgedeploy.exporter.pipeline import ExportRequest
from edgedeploy.measure.bench import benchmark
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.runtimes import LoadOptions, inspect_model, load_runner

OUTPUT = Path(__file__).with_name("ROUTES.md")
ROUTES = {
    "onnx2tf": ("tflite-fp32", "tflite-int8"),
    "litert-torch": ("litert-fp32", "litert-int8", "litert-a16w8"),
    "ExecuTorch": ("executorch-fp32", "executorch-int8"),
    "OpenVINO": ("openvino-fp32", "openvino-int8"),
    "ONNX Runtime": ("onnx", "onnx-int8"),
}
# The ratios the targets are stated in: (numerator, denominator) at 1 and 2 threads.
RATIOS = (("litert-int8", "tflite-int8"), ("executorch-int8", "tflite-int8"), ("litert-fp32", "tflite-fp32"),
          ("executorch-fp32", "tflite-fp32"))
# Ops a route adds around the convolutions (layout changes, explicit padding), by runtime's op name.
LAYOUT_OPS = ("TRANSPOSE", "PAD", "StaticTranspose", "Transpose", "Pad", "StaticConstantPad")


def timed_export(target: str, out: Path) -> tuple[str, float, float]:
    """The artifact, its cold export seconds (empty caches) and its warm (cached) re-export seconds."""
    request = ExportRequest(target=target, out_dir=out, threads=2)
    start = time.perf_counter()
    result, cached = cached_export(request)
    cold = time.perf_counter() - start
    assert not cached, f"{target}: the cache was not empty"
    start = time.perf_counter()
    _, cached = cached_export(request)
    warm = time.perf_counter() - start
    assert cached, f"{target}: the second export was not served from the cache"
    return result["path"], cold, warm


def graph_counts(path: str) -> tuple[int, str]:
    """Op count and the layout ops it holds (e.g. '1 TRANSPOSE, 5 PAD')."""
    info = inspect_model(path, LoadOptions(verify=False))
    ops = {**info.get("ops", {}), **info.get("delegated_ops", {}), **info.get("portable_ops", {})}
    layout = ", ".join(f"{n} {op}" for op, n in ops.items() if op in LAYOUT_OPS) or "none"
    return info["nodes"], layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    targets = [t for route in ROUTES.values() for t in route]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGEDEPLOY_CACHE"] = str(Path(tmp) / "cache")  # cold means cold: no earlier conversions
        exported = {}
        for target in targets:
            exported[target] = timed_export(target, Path(tmp) / "out")
            print(f"{target}: cold {exported[target][1]:.1f} s, warm {exported[target][2]:.1f} s", file=sys.stderr)
        val = ImageFolder.open(data_root() / VAL_DIR)
        reference = load_runner("sample", LoadOptions(threads=2))
        accuracy = {"torch": evaluate(reference, val)}
        for target in targets:
            accuracy[target] = evaluate(load_runner(exported[target][0], LoadOptions(threads=2)), val,
                                        reference=reference)
            print(f"{target}: top-1 {accuracy[target].top1:.2f}, agreement {accuracy[target].agreement:.2f}",
                  file=sys.stderr)
        runners = {(t, n): load_runner(exported[t][0], LoadOptions(threads=n)) for t in targets for n in (1, 2)}
        p50s: dict[tuple[str, int], list[float]] = {key: [] for key in runners}
        for r in range(args.rounds):
            for key, runner in runners.items():
                p50s[key].append(benchmark(runner, args.runs, args.warmup).latency_ms["p50"])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        counts = {t: graph_counts(exported[t][0]) for t in targets}
        sizes = {t: runners[(t, 1)].size_bytes or 0 for t in targets}
    p50 = {key: statistics.median(values) for key, values in p50s.items()}
    torch_top1 = accuracy["torch"].top1 or 0.0
    rows = [[route, t, f"{exported[t][1]:.1f}", f"{exported[t][2]:.1f}", f"{sizes[t] / 2**20:.2f}", counts[t][0],
             counts[t][1], f"{accuracy[t].top1:.2f}", f"{(accuracy[t].top1 or 0) - torch_top1:+.2f}",
             f"{accuracy[t].agreement:.2f}", f"{p50[(t, 1)]:.2f}", f"{p50[(t, 2)]:.2f}"]
            for route, route_targets in ROUTES.items() for t in route_targets]
    headers = ["route", "target", "cold export s", "warm export s", "size MiB", "ops", "layout ops", "top-1 %",
               "vs float", "agreement %", "p50 ms 1 thr", "p50 ms 2 thr"]
    ratios = "\n".join(f"- {a} / {b}: {p50[(a, 1)] / p50[(b, 1)]:.2f}x at 1 thread, "
                       f"{p50[(a, 2)] / p50[(b, 2)]:.2f}x at 2 threads" for a, b in RATIOS)
    versions = tool_versions(("torch", "onnx2tf", "tensorflow", "litert-torch", "ai-edge-quantizer", "ai-edge-litert",
                              "executorch", "torchao", "openvino", "nncf", "onnxruntime"))
    text = f"""# Routes side by side

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_routes.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs
- Model: MobileNetV2 1.0/224, the sample weights; float PyTorch top-1 {torch_top1:.2f} on the val split (600 images)
- Export times: cold = empty caches, 2 threads for the parity check; warm = the same request again (cache hit)
- Latency: batch 1, {args.rounds} interleaved rounds x {args.runs} timed runs (+{args.warmup} warm-up), median of
  the per-round p50s; every model loaded once per thread count
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(headers, rows)}

Latency ratios:

{ratios}

Reproduce: `python benchmarks/bench_routes.py --rounds {args.rounds} --runs {args.runs}`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
