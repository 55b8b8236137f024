"""mmsegmentation's M-V2-D8 heads (FCN, PSPNet, DeepLabV3, DeepLabV3+) at 512x512: fp32 and int8 p50 on the same
runtime, measured in one process, interleaved round by round; size, export time and pixel agreement with the
PyTorch model on the 14 VOC images. Writes benchmarks/MMSEG.md.

    python benchmarks/bench_mmseg_heads.py --rounds 3 --runs 10

The ``sample`` weights (no mmseg checkpoint can be downloaded here): the ImageNet MobileNetV2 as the backbone and a
seeded head standardized on it; latency and size are a trained model's, agreement a model with a trained one's
numerics but not its decisions.
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
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import data_root
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.measure.bench import benchmark
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.models import get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.mmseg_mobilenet_v2.config import HEADS
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.tasks import get_task

OUTPUT = Path(__file__).with_name("MMSEG.md")
CALIBRATION = Path(__file__).resolve().parents[1] / "calibration" / "imagenet-subset-calib-200.json"
# Per runtime: (fp32 target, int8 target); --pairs picks (ONNX Runtime's int8 export at 512 px took 9 minutes a
# head here, most of it outside the quantizer).
PAIRS = {"OpenVINO": ("openvino-fp32", "openvino-int8"), "ONNX Runtime": ("onnx", "onnx-int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", nargs="+", default=list(HEADS))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--parity-images", type=int, default=8)
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    voc = get_task("segmentation").open_dataset(data_root() / "segmentation" / "voc-samples")
    pairs = {runtime: PAIRS[runtime] for runtime in args.pairs}
    targets = [t for pair in pairs.values() for t in pair]
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for head in args.heads:
            config = get_model(head).make_config(resolution=args.resolution)
            reference = load_runner("sample", LoadOptions(threads=args.threads, architecture=Architecture(
                arch=head, resolution=args.resolution)))
            exported, seconds, refused = {}, {}, {}
            for target in targets:
                start = time.perf_counter()
                try:
                    result = export(ExportRequest(
                        target=target, config=config, weights="sample", out_dir=Path(tmp) / head,
                        threads=args.threads, calib_dir=CALIBRATION, calib_size=args.calib_size,
                        parity_images=args.parity_images, parity_data=data_root() / "segmentation" / "voc-samples"))
                    exported[target] = result.path
                except EdgeDeployError as exc:  # a refused export is a row: its reason is the result
                    refused[target] = str(exc)
                seconds[target] = time.perf_counter() - start
                print(f"{head} {target}: {refused.get(target, 'exported')} in {seconds[target]:.1f} s", file=sys.stderr)
            runners = {t: load_runner(str(p), LoadOptions(threads=args.threads)) for t, p in exported.items()}
            agreement = {t: evaluate(r, voc, reference=reference, batch_size=1).agreement for t, r in runners.items()}
            p50s: dict[str, list[float]] = {t: [] for t in runners}
            for r in range(args.rounds):
                for t, runner in runners.items():
                    p50s[t].append(benchmark(runner, args.runs, args.warmup).latency_ms["p50"])
                print(f"{head}: round {r + 1}/{args.rounds} done", file=sys.stderr)
            p50 = {t: statistics.median(v) for t, v in p50s.items()}
            for runtime, (fp32, int8) in pairs.items():
                for t in (fp32, int8):
                    if t in refused:
                        rows.append([head, runtime, t, "-", f"{seconds[t]:.0f}", f"refused: {refused[t][:200]}", "-"])
                        continue
                    rows.append([head, runtime, t, f"{runners[t].size_bytes / 2**20:.1f}", f"{seconds[t]:.0f}",
                                 f"{agreement[t]:.2f}", f"{p50[t]:.0f}"])
                if fp32 in p50 and int8 in p50:
                    ratios.append([head, runtime, f"{p50[fp32]:.0f}", f"{p50[int8]:.0f}",
                                   f"{p50[int8] / p50[fp32]:.2f}"])
    versions = tool_versions(("torch", "onnxruntime", "openvino", "nncf"))
    size = f"{args.resolution}x{args.resolution}"
    text = f"""# mmsegmentation's M-V2-D8 heads at {size}: int8 beside fp32

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_mmseg_heads.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs
- Models: width 1.0, 19 classes (Cityscapes), output stride 8, `--weights sample` (ImageNet backbone, seeded
  head standardized on it); input {size}
- int8 (not the defaults: this row's calibration and parity are smaller so the four heads build in one sitting):
  {args.calib_size} ImageNet calibration images (calibration/imagenet-subset-calib-200.json), parity on
  {args.parity_images} VOC images; each target's default method and per-channel weights
- Agreement: pixels where the artifact's class equals the PyTorch model's, 14 VOC images resized to {size}
- Latency: batch 1, {args.threads} threads, {args.rounds} interleaved rounds x {args.runs} timed runs
  (+{args.warmup} warm-up), median of the per-round p50s
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(["head", "runtime", "target", "size MiB", "export s", "pixel agreement %", "p50 ms"], rows)}

int8 p50 / fp32 p50 on the same runtime:

{table(["head", "runtime", "fp32 p50 ms", "int8 p50 ms", "int8 / fp32"], ratios)}

Reproduce: `python benchmarks/bench_mmseg_heads.py --pairs {" ".join(f"'{p}'" for p in args.pairs)} --rounds {args.rounds} \
--runs {args.runs} --calib-size {args.calib_size} --parity-images {args.parity_images}`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
