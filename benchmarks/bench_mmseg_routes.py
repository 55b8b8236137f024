"""Every mmseg M-V2-D8 head through every export target: does the route take it, and how close is the artifact to
PyTorch (pixel agreement on the VOC images; max |diff| of the logits for float routes). Writes
benchmarks/MMSEG_ROUTES.md (the table in docs/variants.md).

    python benchmarks/bench_mmseg_routes.py --resolution 64
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

from edgedeploy.cli.render import table
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.sample_data import data_root
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.models import get_model
from edgedeploy.models.mmseg_mobilenet_v2.config import HEADS

OUTPUT = Path(__file__).with_name("MMSEG_ROUTES.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--calib-size", type=int, default=16)
    parser.add_argument("--parity-images", type=int, default=8)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--work", type=Path, default=Path("edgedeploy-out") / "mmseg-routes")
    args = parser.parse_args()
    cells: dict[tuple[str, str], str] = {}
    started = time.perf_counter()
    for head in HEADS:
        config = get_model(head).make_config(resolution=args.resolution)
        for target in TARGETS:
            try:
                parity = export(ExportRequest(
                    target=target, config=config, weights="sample", out_dir=args.work / head, threads=2,
                    calib_dir=data_root() / "imagenet-subset" / "calib", calib_size=args.calib_size,
                    parity_images=args.parity_images, parity_data=data_root() / "segmentation" / "voc-samples")).parity
                exact = TARGETS[target].precision == "fp32"
                cells[head, target] = (f"{parity['agreement']:.2f}% ({parity['max_abs_diff']:.0e})" if exact
                                       else f"{parity['agreement']:.1f}%")
            except EdgeDeployError as exc:
                cells[head, target] = f"refused: {' '.join(str(exc).split())[:150]}"
            print(f"{head} {target}: {cells[head, target]}", flush=True)
    rows = [[f"`{t}`", *(cells[h, t] for h in HEADS)] for t in TARGETS]
    text = f"""# mmseg's M-V2-D8 heads through every route

Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_mmseg_routes.py` in
{time.perf_counter() - started:.0f} s: `--weights sample`, {args.resolution} px, int8 calibrated on
{args.calib_size} ImageNet images, parity on {args.parity_images} VOC images (pixel agreement with PyTorch; float
routes: max |diff| of the logits).

{table(["target", *HEADS], rows)}

Reproduce: `python benchmarks/bench_mmseg_routes.py --resolution {args.resolution}`
"""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
