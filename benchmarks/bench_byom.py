"""Bring your own model: which routes take a user's nn.Module (a small plain CNN, torchvision's MobileNetV3-Small),
and what exporting a module costs over the registered family on the same route. Writes benchmarks/BYOM.md.

    python benchmarks/bench_byom.py

The modules are random-weight (MobileNetV3-Small: torchvision's init), so int8 routes are built with the
top-1 agreement floor lifted (agreement between two near-uniform outputs says nothing); float routes keep
their |logit difference| tolerance. A route that cannot convert an op fails with its converter's reason.
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "models"))  # the user modules the tests use

from bench_runtimes import _cpu_name, _has_vnni  # noqa: E402

from edgedeploy.cli.render import table  # noqa: E402
from edgedeploy.core.errors import EdgeDeployError  # noqa: E402
from edgedeploy.exporter.pipeline import ExportRequest, export  # noqa: E402
from edgedeploy.exporter.targets import TARGETS  # noqa: E402
from edgedeploy.models import get_model  # noqa: E402
from edgedeploy.models.modules import module_family  # noqa: E402

OUTPUT = HERE / "BYOM.md"
MODULES = {"user_modules:tiny_cnn": 64, "user_modules:mobilenet_v3_small": 224}


def _matrix(out: Path) -> list[list[str]]:
    rows = []
    for entry, size in MODULES.items():
        config = get_model(entry).make_config(resolution=size)
        for name, target in TARGETS.items():
            start = time.perf_counter()
            try:
                result = export(ExportRequest(target=name, config=config, weights="module", out_dir=out, threads=2,
                                              parity_min_agreement=0.0 if target.calibrated else None))
                parity = result.parity
                row = [entry.split(":")[1], name, "yes", f"{parity['max_abs_diff']:.2g}",
                       f"{parity['agreement']:.0f}", f"{result.size_bytes / 1024:.0f}", f"{time.perf_counter() - start:.1f}", ""]
            except EdgeDeployError as exc:
                reason = " ".join(str(exc).split(" (log:")[0].split())
                row = [entry.split(":")[1], name, f"no (exit {exc.exit_code})", "-", "-", "-",
                       f"{time.perf_counter() - start:.1f}", reason[:110]]
            rows.append(row)
            print(" | ".join(row), file=sys.stderr, flush=True)
    return rows


def _config(kind: str) -> Any:
    """The config as the CLI makes it: a user module's family is new in each process (import, probe)."""
    if kind == "family":
        return get_model("mobilenet_v2").make_config()
    return module_family("user_modules:mobilenet_v2_sample").make_config(resolution=224)


def _overhead(out: Path, routes: tuple[str, ...], repeats: int) -> list[list[str]]:
    """The same network and weights as the registered family and as a user module (a factory), side by side,
    alternating which goes first; the config (the module's import and probe) is timed with the export."""
    rows = []
    for route in routes:
        times: dict[str, list[float]] = {"family": [], "module": []}
        load: dict[str, list[float]] = {"family": [], "module": []}
        for i in range(repeats):
            for kind in ("family", "module") if i % 2 == 0 else ("module", "family"):
                start = time.perf_counter()
                config = _config(kind)
                result = export(ExportRequest(target=route, config=config, weights="sample" if kind == "family"
                                              else "module", out_dir=out, threads=2))
                times[kind].append(time.perf_counter() - start)
                load[kind].append(time.perf_counter() - start - sum(v for k, v in result.steps.items()
                                                                     if k != "load weights"))
        fam, mod = statistics.median(times["family"]), statistics.median(times["module"])
        fam_load, mod_load = statistics.median(load["family"]), statistics.median(load["module"])
        rows.append([route, f"{fam:.2f}", f"{mod:.2f}", f"{mod - fam:+.2f}", f"{fam_load:.2f}", f"{mod_load:.2f}"])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        matrix = _matrix(Path(tmp) / "matrix")
        overhead = _overhead(Path(tmp) / "overhead", ("onnx", "tflite-int8"), args.repeats)
    text = f"""# Bring your own model: routes and overhead

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_byom.py`.
Machine: {_cpu_name()} ({"with" if _has_vnni() else "without"} VNNI), {os.cpu_count()} logical CPUs.

## Which routes take a user module

`--model user_modules:tiny_cnn` (plain convolutions, batch norm, max pooling, linear head; 64x64) and
`--model user_modules:mobilenet_v3_small` (torchvision's, random weights, 10 classes: hardswish, hardsigmoid,
squeeze-excitation; 224x224), every target; int8 routes with the agreement floor lifted (random weights).

{table(["module", "target", "exports", "max abs diff", "agreement %", "KiB", "seconds", "reason"], matrix)}

## Overhead of a user module over the registered family

MobileNetV2 1.0/224 with the sample weights, exported as `--arch mobilenet_v2 --weights sample` and as
`--model user_modules:mobilenet_v2_sample` (a factory returning the same network and weights); median of
{args.repeats} exports each, alternating which goes first.

{table(["target", "family s", "module s", "overhead s", "family: config + load s", "module: config + load s"],
        overhead)}

The last two columns are where the two differ (the rest of the export is the same graph): the family builds
the network and loads its checkpoint, the module's factory is imported and called, probed with one forward
pass, and its parameters hashed.

Reproduce: `python benchmarks/bench_byom.py`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
