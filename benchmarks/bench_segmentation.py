"""Mobile DeepLabv3 (Google's float weights) at 257 and 513 px: every runtime's fp32 and int8 artifact side by
side. mIoU and pixel agreement with PyTorch on the 14 VOC images, size, export time, and p50 latency measured in
one process, interleaved round by round; the int8/fp32 p50 ratio per runtime is the issue's speed target
(<= 0.6x at 513 px on a CPU with VNNI). Writes benchmarks/SEGMENTATION.md.

    python benchmarks/bench_segmentation.py --rounds 5 --runs 20
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
from edgedeploy.core.sample_data import data_root
from edgedeploy.exporter.build_cache import cached_export
from edgedeploy.exporter.pipeline import ExportRequest
from edgedeploy.measure.bench import benchmark
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.models import get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.tasks import get_task

OUTPUT = Path(__file__).with_name("SEGMENTATION.md")
CALIBRATION = Path(__file__).resolve().parents[1] / "calibration" / "imagenet-subset-calib-200.json"
# Per runtime: (fp32 target, int8 target).
PAIRS = {
    "ONNX Runtime": ("onnx", "onnx-int8"),
    "OpenVINO": ("openvino-fp32", "openvino-int8"),
    "LiteRT (onnx2tf)": ("tflite-fp32", "tflite-int8"),
    "LiteRT (litert-torch)": ("litert-fp32", "litert-int8"),
    "ExecuTorch (XNNPACK)": ("executorch-fp32", "executorch-int8"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[257, 513])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=100)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    family = get_model("deeplabv3_mobilenet_v2")
    task = get_task(family.task)
    voc = task.open_dataset(data_root() / "segmentation" / "voc-samples")
    targets = [t for pair in PAIRS.values() for t in pair]
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for resolution in args.resolutions:
            config = family.make_config(resolution=resolution)
            reference = load_runner("sample", LoadOptions(threads=args.threads, architecture=Architecture(arch=family.name, resolution=resolution)))
            float_result = evaluate(reference, voc, batch_size=2)
            exported, seconds = {}, {}
            for target in targets:
                start = time.perf_counter()
                result, _ = cached_export(ExportRequest(
                    target=target, config=config, out_dir=Path(tmp) / str(resolution), threads=args.threads,
                    calib_dir=CALIBRATION, calib_size=args.calib_size))
                exported[target], seconds[target] = result["path"], time.perf_counter() - start
                print(f"{resolution} {target}: exported in {seconds[target]:.1f} s", file=sys.stderr)
            runners = {t: load_runner(exported[t], LoadOptions(threads=args.threads)) for t in targets}
            accuracy = {t: evaluate(runners[t], voc, reference=reference, batch_size=2) for t in targets}
            p50s: dict[str, list[float]] = {t: [] for t in targets}
            for r in range(args.rounds):
                for t in targets:
                    p50s[t].append(benchmark(runners[t], args.runs, args.warmup).latency_ms["p50"])
                print(f"{resolution}: round {r + 1}/{args.rounds} done", file=sys.stderr)
            p50 = {t: statistics.median(v) for t, v in p50s.items()}
            for runtime, (fp32, int8) in PAIRS.items():
                for t in (fp32, int8):
                    a = accuracy[t]
                    rows.append([resolution, runtime, t, f"{runners[t].size_bytes / 2**20:.2f}", f"{seconds[t]:.0f}",
                                 f"{a.miou:.2f}", f"{a.miou - float_result.miou:+.2f}", f"{a.agreement:.2f}",
                                 f"{p50[t]:.1f}"])
                ratios.append([resolution, runtime, f"{p50[fp32]:.1f}", f"{p50[int8]:.1f}", f"{p50[int8] / p50[fp32]:.2f}"])
            rows.append([resolution, "PyTorch", "float reference", "-", "-", f"{float_result.miou:.2f}", "-", "-", "-"])
    versions = tool_versions(("torch", "onnxruntime", "openvino", "nncf", "onnx2tf", "tensorflow", "litert-torch",
                              "ai-edge-quantizer", "ai-edge-litert", "executorch"))
    text = f"""# Mobile DeepLabv3 on every runtime, 257 and 513 px

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_segmentation.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs
- Model: Google's float Mobile DeepLabv3 (MobileNetV2 0.5, output stride 8) read from its .tflite; input resized to the
  resolution, logits resized back to each 513x513 mask (bilinear, half-pixel), mIoU over the 12 classes present
- int8: calibrated on {args.calib_size} ImageNet calibration images (calibration/imagenet-subset-calib-200.json),
  each target's default method and per-channel weights; export seconds include parity (and come from the build
  cache when an identical build exists)
- Latency: batch 1, {args.threads} threads, {args.rounds} interleaved rounds x {args.runs} timed runs
  (+{args.warmup} warm-up), median of the per-round p50s
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(["px", "runtime", "target", "size MiB", "export s", "mIoU %", "vs float", "pixel agreement %", "p50 ms"], rows)}

int8 p50 / fp32 p50 on the same runtime:

{table(["px", "runtime", "fp32 p50 ms", "int8 p50 ms", "int8 / fp32"], ratios)}

Reproduce: `python benchmarks/bench_segmentation.py --rounds {args.rounds} --runs {args.runs}`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
