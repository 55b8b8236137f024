"""`edgedeploy eval --reference` with the float reference's outputs cached: the wall time of an eval without a
reference, with one on a cold cache, and with one again (the cache warm), as a user runs them (the CLI, one
process each), alternating for --rounds rounds; medians and the ratio to the eval without a reference.

    python benchmarks/bench_reference_cache.py ARTIFACT [--weights sample-offgrid] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_runtimes import _cpu_name

from edgedeploy.core.sample_data import VAL_DIR, data_root


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("edgedeploy")), *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact")
    parser.add_argument("--weights", default="sample-offgrid")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    val = str(data_root() / VAL_DIR)
    base = ["eval", args.artifact, "--data", val, "--threads", "2", "--json"]
    reference = [*base, "--reference", args.weights, "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5"]
    times: dict[str, list[float]] = {"no reference": [], "reference, cold cache": [], "reference, cached": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "EDGEDEPLOY_CACHE": cache}
            times["no reference"].append(_timed(base, env))
            times["reference, cold cache"].append(_timed(reference, env))
            times["reference, cached"].append(_timed(reference, env))
    plain = statistics.median(times["no reference"])
    print(f"{_cpu_name()}, {os.cpu_count()} CPUs, {args.rounds} rounds, 600 val images, {Path(args.artifact).name}")
    for name, values in times.items():
        print(f"{name:24s} median {statistics.median(values):6.2f} s  ({statistics.median(values) / plain:.2f}x)")


if __name__ == "__main__":
    main()
