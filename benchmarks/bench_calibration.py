"""Top-1 of every int8 target against calibration size and method, on one val split.

Each (target, method, size) is exported from the sample weights with a class-stratified
calibration sample of the sample calib split (seed 0), then evaluated on the whole val
split; the float model's top-1 on the same split is the first row. Writes
benchmarks/CALIBRATION.md.

    python benchmarks/bench_calibration.py --sizes 25 50 100 200
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from edgedeploy.cli.render import table
from edgedeploy.core.manifest import tool_versions
from edgedeploy.core.sample_data import VAL_DIR, data_root
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.runtimes import LoadOptions, load_runner

RESULTS = Path(__file__).with_name("CALIBRATION.md")
# What each backend offers: TFLite's converter has min/max only (no method to choose).
STUDY = [(name, method) for name, t in TARGETS.items() if t.calibrated
         for method in (t.calib_methods or ("minmax",))]


def _cpu() -> str:
    """The CPU model and whether it has VNNI: ONNX Runtime's int8 kernels saturate without it."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return platform.machine()
    text = info.read_text()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.machine())
    return f"{model} ({'with' if 'vnni' in text else 'without'} VNNI)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = data_root()
    val = ImageFolder.open(root / VAL_DIR)
    options = LoadOptions(threads=args.threads)
    float_top1 = evaluate(load_runner("sample", options), val).top1
    rows, seconds = [["float (PyTorch)", "-", *[f"{float_top1:.2f}"] * len(args.sizes), "-"]], {}
    with tempfile.TemporaryDirectory() as tmp:
        for target, method in STUDY:
            cells = []
            for size in args.sizes:
                start = time.perf_counter()
                result = export(ExportRequest(
                    target=target, out_dir=Path(tmp), name=f"{target}-{method}-{size}", threads=args.threads,
                    calib_size=size, calib_method=method if TARGETS[target].calib_methods else None,
                    parity_images=4, parity_min_agreement=0))
                top1 = evaluate(load_runner(str(result.path), options), val).top1
                seconds[(target, method, size)] = time.perf_counter() - start
                cells.append(f"{top1:.2f}")
                print(f"{target:14s} {method:14s} {size:4d}: top-1 {top1:.2f} "
                      f"({seconds[(target, method, size)]:.0f} s)", file=sys.stderr, flush=True)
            best = max(seconds[(target, method, s)] for s in args.sizes)
            rows.append([target, method, *cells, f"{best:.0f}"])
    header = ["target", "method", *[f"top-1 @ {s}" for s in args.sizes], "slowest export+eval s"]
    versions = tool_versions(("torch", "onnxruntime", "tensorflow", "ai-edge-litert", "openvino", "nncf"))
    RESULTS.write_text(
        "# Calibration size and method\n\n"
        f"Top-1 (%) on the {len(val)}-image val split of `{root}`, per int8 target, calibration method "
        "and number of calibration images (class-stratified sample of the calib split, seed 0).\n\n"
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {_cpu()}, "
        f"{args.threads} threads; {', '.join(f'{k} {v}' for k, v in versions.items())}.\n\n"
        + "```\n" + table(header, rows) + "\n```\n\n"
        "Reproduce: `python benchmarks/bench_calibration.py --sizes " + " ".join(map(str, args.sizes)) + "`\n"
    )
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
