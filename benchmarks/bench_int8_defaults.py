"""What a user gets from `edgedeploy export --target T --weights <float-trained model>` with nothing else set,
on every int8 route, beside the alternatives the defaults were chosen against: whether the export succeeds
(parity floors as shipped), its conversion fidelity and quantization cost as export reports them, the task
metric on held-out data with the paired drop against the float model (95% bootstrap interval) and the export
time. Writes benchmarks/INT8_DEFAULTS.md.

Fixtures (the float-trained ones the data set has): `sample-offgrid` (MobileNetV2 1.0/224, 600 val images,
top-1) and Google's float Mobile DeepLabv3 (`--arch deeplabv3_mobilenet_v2 --weights sample`, 257 px, the 14
VOC images, mIoU).

    python benchmarks/bench_int8_defaults.py [--routes ...] [--fixtures classification segmentation] [--defaults-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_runtimes import _cpu_name

from edgedeploy.cli.render import table
from edgedeploy.core.cpu import describe_int8_kernels
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import VAL_DIR, data_root
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.measure.evaluate import accumulate
from edgedeploy.models import get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.tasks import get_task

OUTPUT = Path(__file__).with_name("INT8_DEFAULTS.md")
ROUTES = ("tflite-int8", "onnx-int8", "openvino-int8", "litert-int8", "executorch-int8")
# Each fixture: the request's model fields, the held-out data, and the alternatives beside the defaults.
FIXTURES: dict[str, dict[str, Any]] = {
    "classification": {"label": "sample-offgrid 224", "weights": "sample-offgrid", "arch": "mobilenet_v2",
                       "options": {}, "data": VAL_DIR, "alternatives": {"--ptq cle,bias-correction":
                                                                          {"ptq": ("cle", "bias-correction")}}},
    "segmentation": {"label": "DeepLab float 257", "weights": "sample", "arch": "deeplabv3_mobilenet_v2",
                     "options": {}, "data": "segmentation/voc-samples", "alternatives": {}},
}


def _measure(route: str, fixture: dict[str, Any], options: dict[str, Any], out: Path) -> list[str]:
    family = get_model(fixture["arch"])
    config = family.make_config(**fixture["options"])
    start = time.perf_counter()
    try:
        result = export(ExportRequest(target=route, config=config, weights=fixture["weights"], out_dir=out,
                                      threads=2, **options))
    except EdgeDeployError as exc:
        return ["refused", "-", "-", "-", "-", f"{time.perf_counter() - start:.0f}", " ".join(str(exc).split())[:90]]
    seconds = time.perf_counter() - start
    parity = result.parity
    interval = parity["agreement_interval"]
    fidelity = parity.get("fidelity") or {}
    runner = load_runner(str(result.path), LoadOptions(threads=2))
    reference = load_runner(fixture["weights"], LoadOptions(threads=2, architecture=Architecture(arch=fixture["arch"])), runtime="torch")
    task = get_task(runner.io.task)
    data = task.open_dataset(data_root() / fixture["data"])
    ref, cand = accumulate(reference, data), accumulate(runner, data)
    paired = task.paired(ref.records(), cand.records(), 0.95)
    metric = task.metric
    assert paired is not None
    drop = paired.drop
    return ["ok", f"{fidelity.get('sqnr_db', float('nan')):.1f}",
            f"{parity['agreement']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]",
            f"{cand.metrics(False)[metric]:.2f} / {ref.metrics(False)[metric]:.2f}",
            f"{-drop.estimate:+.2f} [{-drop.high:+.2f}, {-drop.low:+.2f}]", f"{seconds:.0f}", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", nargs="+", default=list(ROUTES))
    parser.add_argument("--fixtures", nargs="+", default=list(FIXTURES), choices=list(FIXTURES))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--defaults-only", action="store_true", help="skip the alternatives (half the time)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.fixtures:
            fixture = FIXTURES[name]
            for route in args.routes:
                alternatives = {} if args.defaults_only else fixture["alternatives"]
                for label, options in {"defaults": {}, **alternatives}.items():
                    row = [route, fixture["label"], label, *_measure(route, fixture, options, Path(tmp) / route)]
                    rows.append(row)
                    print(" | ".join(row), file=sys.stderr, flush=True)
    versions = tool_versions(("torch", "onnxruntime", "openvino", "nncf", "onnx2tf", "tensorflow", "litert-torch",
                              "ai-edge-quantizer", "executorch"))
    text = f"""# int8 with the defaults on float-trained models, every route

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_int8_defaults.py`.

- Machine: {_cpu_name()} ({describe_int8_kernels()}), {os.cpu_count()} logical CPUs
- Each export as a user runs it: the sample calib split (200 images) for calibration, the parity checks as
  shipped (fidelity >= 10 dB against the host simulation; agreement with float on 100 calib images, refused
  only when the interval's upper end is below 50%).
- metric: top-1 (classification, 600 val images) or mIoU (segmentation, 14 VOC images at 257 px), artifact /
  float PyTorch; change = artifact minus float with its 95% paired bootstrap interval.
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

{table(["target", "fixture", "options", "export", "fidelity dB", "agreement % [95% CI]", "metric (int8 / float)",
        "change [95% CI]", "export s", "note"], rows)}

Reproduce: `python benchmarks/bench_int8_defaults.py`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
