"""SSD-MobileNetV1 (Google's detector's weights, on and off the uint8 grid) on every route: COCO mAP on the 159
shared val2017 images against the PyTorch float port, agreement with its confident detections, size, and p50
latency measured in one process, interleaved round by round; and the issue's speed target: tflite-int8 with the
post-processing in its graph (TFLite_Detection_PostProcess) against Google's own detector .tflite, at the same
input size and threads, side by side. Writes benchmarks/DETECTION.md.

    python benchmarks/bench_detection.py --rounds 5 --runs 20
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

import numpy as np
from bench_runtimes import _cpu_name, _has_vnni

from edgedeploy.cli.render import table
from edgedeploy.core.io_spec import InputSpec, ModelIO, OutputSpec, Preprocessing
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import data_root
from edgedeploy.exporter.build_cache import cached_export
from edgedeploy.exporter.pipeline import ExportRequest
from edgedeploy.measure.bench import benchmark, host_step_latency
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.models import get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, Runner, load_runner
from edgedeploy.runtimes.litert.runner import open_interpreter
from edgedeploy.tasks import get_task
from edgedeploy.tasks.detection.postprocess import GRAPH_OUTPUTS

OUTPUT = Path(__file__).with_name("DETECTION.md")
CALIBRATION = Path(__file__).resolve().parents[1] / "calibration" / "imagenet-subset-calib-200.json"
GOOGLE = "detection/ssd_mobilenet_v1_coco_quant.tflite"
TARGETS = ("onnx", "onnx-int8", "tflite-fp32", "tflite-int8", "openvino-fp32", "openvino-int8", "litert-fp32",
           "litert-int8", "executorch-fp32", "executorch-int8")
INT8 = tuple(t for t in TARGETS if t.endswith("int8"))


class GoogleDetector(Runner):
    """Google's .tflite timed as LiteRT runs it (XNNPACK, the same threads): uint8 camera pixels in, its four
    post-processed outputs out. Only for timing: it has no manifest, and edgedeploy reads one output without one."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int):
        self.source, self.batch_size = str(path), 1
        self.interpreter = open_interpreter(path, threads, True)
        detail = self.interpreter.get_input_details()[0]
        self._input = detail["index"]
        boxes, *more = (OutputSpec(name, 4, layout="tensor") for name in GRAPH_OUTPUTS)
        self.io = ModelIO(InputSpec(detail["name"], tuple(detail["shape"]), "uint8", "NHWC"), boxes,
                          Preprocessing(300, 300, raw_pixels=True, resize_mode="stretch"), more_outputs=tuple(more))

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self.interpreter.set_tensor(self._input, tensor)
        self.interpreter.invoke()
        return {}

    def versions(self) -> dict[str, str]:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", default=["sample", "sample-offgrid"])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=100)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    family = get_model("ssd_mobilenet_v1")
    coco = get_task(family.task).open_dataset(data_root() / "detection" / "coco-val2017")
    config = family.make_config()
    rows, timed = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for weights in args.weights:
            reference = load_runner(weights, LoadOptions(threads=args.threads, architecture=Architecture.of(config)))
            float_result = evaluate(reference, coco, batch_size=8)
            rows.append([weights, "PyTorch float port", "-", f"{float_result.map:.2f}", "-", "-", "-"])
            builds = [(t, "host") for t in args.targets] + ([("tflite-int8", "graph")] if weights == "sample" else [])
            for target, where in builds:
                start = time.perf_counter()
                result, _ = cached_export(ExportRequest(
                    target=target, config=config, weights=weights, out_dir=Path(tmp) / weights / where,
                    threads=args.threads, calib_dir=CALIBRATION, calib_size=args.calib_size,
                    **({"postprocess": "graph"} if where == "graph" else {})))
                runner = load_runner(result["path"], LoadOptions(threads=args.threads))
                accuracy = evaluate(runner, coco, reference=reference, batch_size=8)
                name = f"{target}{' (NMS in graph)' if where == 'graph' else ''}"
                rows.append([weights, name, f"{runner.size_bytes / 2**20:.2f}", f"{accuracy.map:.2f}",
                             f"{accuracy.map - float_result.map:+.2f}", f"{accuracy.agreement:.1f}",
                             f"{time.perf_counter() - start:.0f}"])
                if weights == "sample":
                    timed[name] = runner
                print(f"{weights} {name}: mAP {accuracy.map:.2f}", file=sys.stderr)
        timed["Google's detector .tflite (uint8, NMS in graph)"] = GoogleDetector(data_root() / GOOGLE, args.threads)
        p50s: dict[str, list[float]] = {name: [] for name in timed}
        for r in range(args.rounds):
            for name, runner in timed.items():
                p50s[name].append(benchmark(runner, args.runs, args.warmup).latency_ms["p50"])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        latency_rows = []
        google = statistics.median(p50s["Google's detector .tflite (uint8, NMS in graph)"])
        for name, runner in timed.items():
            p50 = statistics.median(p50s[name])
            step = host_step_latency(runner.source, LoadOptions(threads=args.threads), args.runs, p50) \
                if "NMS in graph" not in name else None
            host = step["latency_ms"]["p50"] if step else 0.0
            latency_rows.append([name, f"{p50:.2f}", f"{host:.2f}", f"{p50 + host:.2f}", f"{(p50 + host) / google:.2f}"])
    versions = tool_versions(("torch", "onnxruntime", "openvino", "nncf", "onnx2tf", "tensorflow", "litert-torch",
                              "ai-edge-quantizer", "ai-edge-litert", "executorch", "pycocotools"))
    text = f"""# SSD-MobileNetV1 on every route

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_detection.py`.

- Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs
- Model: `ssd_mobilenet_v1` 0.75/300, Google's detector's weights dequantized (`sample`) and moved off their uint8
  grid (`sample-offgrid`: what a float-trained model's weights are like); host post-processing with Google's
  settings (fast NMS, IoU 0.6, 10 detections) unless the row says the NMS is in the graph
- mAP@[.5:.95] (pycocotools) on the 159 COCO val2017 images of the shared data folder; agreement: the share of
  the float port's detections with score >= 0.5 the artifact finds again (same class, IoU >= 0.5)
- int8: calibrated on {args.calib_size} ImageNet calibration images, each target's defaults; export seconds
  include parity and evaluation (and come from the build cache when an identical build exists)
- Latency: batch 1, {args.threads} threads, {args.rounds} interleaved rounds x {args.runs} timed runs (+{args.warmup}
  warm-up), median of the per-round p50s; the host step (box decoding + NMS in numpy) timed on the artifact's
  own outputs
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(["weights", "target", "size MiB", "mAP", "vs float", "agreement %", "export+eval s"], rows)}

Latency with the post-processing, against Google's own detector (the same 300 px input and threads):

{table(["model", "graph p50 ms", "host step p50 ms", "total ms", "x Google's"], latency_rows)}

Reproduce: `python benchmarks/bench_detection.py --rounds {args.rounds} --runs {args.runs}`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
