"""The Ray side of a sweep: start a local runtime or join a cluster, the sweep's jobs as Ray remote
functions, and where bench jobs may run.

Local by default (``ray.init`` with this machine's CPUs, or ``--max-workers`` of them): nothing is
downloaded and no dashboard is started, so it works offline. With an address it joins that cluster;
every node then needs this package installed and the same paths for the data, the output folder and
$EDGEDEPLOY_CACHE (a shared mount), which the jobs get in their environment.

Build and evaluation jobs take one CPU each and run one thread, so N workers are N busy cores, not
N x threads. A bench job takes every CPU of the driver's node (a hard node-affinity placement), so
Ray runs nothing else there while it times, and all of a run's latencies come from one host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from edgedeploy.core.cache import cache_dir
from edgedeploy.core.errors import ConfigError, DependencyError
from edgedeploy.sweep import jobs

__all__ = ["RaySession", "ray_session", "RETRIES"]

log = logging.getLogger(__name__)

# A job whose worker died (killed, out of memory) runs again this many times; a job that failed for
# a real reason returns its error instead of raising (sweep.jobs), so Ray does not retry it.
RETRIES = 3
# The object store holds the float model's logits per shard (1000 floats per image) and shard results.
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20


@dataclass
class RaySession:
    ray: Any
    address: str
    cpus: int
    nodes: int
    bench_node: str
    bench_cpus: int
    remote: dict[str, Any]
    start_seconds: float

    def describe(self) -> dict[str, Any]:
        return {"address": self.address, "version": self.ray.__version__, "nodes": self.nodes, "cpus": self.cpus,
                "bench_node": self.bench_node, "bench_cpus": self.bench_cpus, "start_seconds": self.start_seconds}

    def bench_options(self) -> dict[str, Any]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return {"num_cpus": self.bench_cpus,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=self.bench_node, soft=False)}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError("edgedeploy sweep needs Ray: pip install 'edgedeploy[sweep]'") from None
    return ray


def _task_environment() -> dict[str, str]:
    """What jobs must see wherever they run: the cache root and the sample data, as absolute paths."""
    from edgedeploy.core.sample_data import find_data_root

    env = {"EDGEDEPLOY_CACHE": str(cache_dir("builds").parent.resolve())}
    data = find_data_root()
    if data is not None:
        env["EDGEDEPLOY_DATA"] = str(data.resolve())
    return env


@contextmanager
def ray_session(address: str | None, max_workers: int | None) -> Iterator[RaySession]:
    """A started (or joined) Ray runtime for the duration of the block, shut down after it."""
    # Ray prints some notices to stdout (e.g. "(raylet) A worker died ..."); stdout is the command's
    # result (--json), so they go to stderr with the logs.
    with contextlib.redirect_stdout(sys.stderr):
        yield from _session(address, max_workers)


def _session(address: str | None, max_workers: int | None) -> Iterator[RaySession]:
    ray = _import_ray()
    start = time.perf_counter()
    # No usage report from a local runtime (and no network wait when there is none).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    runtime_env = {"env_vars": _task_environment()}
    if address is None:
        cpus = max_workers or os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, runtime_env=runtime_env)
    else:
        if max_workers is not None:
            raise ConfigError("--max-workers sizes the local Ray runtime; a cluster's size is its own "
                              "(drop --max-workers or --ray-address)")
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, runtime_env=runtime_env)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--ray-address {address}: cannot join the Ray cluster ({' '.join(str(exc).split())[:200]})") from None
    try:
        driver_node = ray.get_runtime_context().get_node_id()
        alive = [n for n in ray.nodes() if n.get("Alive")]
        node_cpus = {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in alive}
        bench_node = driver_node if node_cpus.get(driver_node) else max(node_cpus, key=node_cpus.get)
        one_cpu = {"num_cpus": 1, "max_retries": RETRIES}
        remote = {
            "build": ray.remote(**one_cpu)(jobs.build),
            "reference_shard": ray.remote(**one_cpu)(jobs.reference_shard),
            "target_shard": ray.remote(**one_cpu)(jobs.target_shard),
            "bench": ray.remote(max_retries=RETRIES)(jobs.bench),
        }
        yield RaySession(ray, address or "local", sum(node_cpus.values()), len(alive), bench_node,
                         node_cpus[bench_node], remote, round(time.perf_counter() - start, 2))
    finally:
        ray.shutdown()
