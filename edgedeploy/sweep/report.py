"""The report of a sweep: the Pareto fronts (the task's metric, top-1 or mIoU, vs p50 latency and vs size)
as plots and tables, and every cell. Built from sweep.json alone. Latency fronts are drawn per bench
CPU: cells benched on different CPUs are never on one front or one axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.recipes.report import Page, log_ms_axis, num, png_bytes, results_task
from edgedeploy.sweep.results import cpu_of, p50
from edgedeploy.tasks import Task

__all__ = ["write_sweep_report", "cell_columns", "cell_rows"]


def cell_columns(task: Task) -> list[str]:
    return ["cell", "width", "res", "target", "calib", "size MiB", f"{task.metric_label} %", "drop pts",
            "drop interval", f"{task.agreement_label} %", "p50 ms", "status"]


NOTE = ("Drop and agreement are against the float (PyTorch) model of the same width and resolution on the same "
        "images (merged from the evaluation shards); the drop interval is a paired bootstrap interval. p50 is "
        "measured with the bench host to itself (its bench task holds all of its CPUs).")


def cell_rows(results: dict[str, Any], ids: list[str] | None = None) -> list[list[str]]:
    metric = results_task(results).metric
    rows = []
    for cell_id in ids if ids is not None else results["cells"]:
        c = results["cells"][cell_id]
        params = c["params"]
        head = [cell_id, f"{params['width']:g}", str(params["resolution"]), params["target"],
                params["calib_method"] or "-"]
        if c["status"] != "ok":
            rows.append(head + ["-"] * 6 + [f"FAILED ({c['stage']})"])
            continue
        acc = c["accuracy"]
        paired = acc.get("paired")
        rows.append(head + [num(c["size_bytes"] / 2**20), num(acc[metric]), num(acc[f"{metric}_drop"]),
                            f"[{paired['drop']['low']:.2f}, {paired['drop']['high']:.2f}]" if paired else "-",
                            num(acc["agreement"]), num(p50(c)), "resumed" if c.get("resumed") else "ok"])
    return rows


def _front_plot(ax: Any, points: dict[str, tuple[float, float]], front: list[str], label: str) -> None:
    ax.scatter([x for x, _ in points.values()], [y for _, y in points.values()], s=25, color="#bbb",
               label="cells")
    xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.plot(xs, ys, "o-", drawstyle="steps-post", color="tab:blue", label="Pareto front")
    for k, i in enumerate(front):
        ax.annotate(i, points[i], textcoords="offset points", xytext=(5, 4 + 9 * (k % 2)), fontsize=7)
    ax.set_ylabel(f"{label}, %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _figures(results: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    from matplotlib.figure import Figure

    task = results_task(results)
    metric, label = task.metric, task.metric_label
    ok = {i: c for i, c in results["cells"].items() if c["status"] == "ok" and c["accuracy"][metric] is not None}
    groups = results["fronts"][f"{metric}_vs_p50"]
    fig = Figure(figsize=(7.5, 4.6 * max(1, len(groups))), dpi=110)
    axes = fig.subplots(max(1, len(groups)), 1, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        points = {i: (p50(c), c["accuracy"][metric]) for i, c in ok.items()
                  if cpu_of(c) == group["cpu"] and p50(c) is not None}
        _front_plot(ax, points, group["cells"], label)
        log_ms_axis(ax)
        ax.set_xlabel("p50 latency, ms (log scale)")
        ax.set_title(f"{label} vs p50 on {group['cpu']}", fontsize=9)
    fig.tight_layout()
    plots = {f"sweep_{metric}_vs_p50": (f"Pareto front: {label} vs p50 latency", png_bytes(fig))}
    fig = Figure(figsize=(7.5, 4.6), dpi=110)
    ax = fig.subplots()
    _front_plot(ax, {i: (c["size_bytes"] / 2**20, c["accuracy"][metric]) for i, c in ok.items()},
                results["fronts"][f"{metric}_vs_size"], label)
    ax.set_xlabel("artifact size, MiB")
    ax.set_title(f"{label} vs size", fontsize=9)
    fig.tight_layout()
    plots[f"sweep_{metric}_vs_size"] = (f"Pareto front: {label} vs size", png_bytes(fig))
    return plots


def write_sweep_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """sweep.md, sweep.html and plots/sweep_*.png in ``out_dir``."""
    counts, ev, ray = results["counts"], results["evaluation"], results.get("ray") or {}
    summary = [
        ("status", "ok" if not results["failed"] else f"{counts['failed']} of {counts['cells']} cells failed"),
        ("sweep", f"{results['sweep']['path']} (sha256 {results['sweep']['sha256'][:12]})"),
        ("cells", f"{counts['cells']} ({counts['ran']} run, {counts['resumed']} resumed from an earlier run)"),
        ("evaluation", f"{ev['images']} images from {ev['data']}, {ev['shards']} shards per model"),
        ("ray", f"{ray['address']}, {ray['nodes']} node(s), {ray['cpus']} CPUs, Ray {ray['version']}" if ray
         else "not started (every cell resumed)"),
        ("created", results["created_utc"]),
        ("run time", f"{results['seconds']:.1f} s"),
    ]
    task = results_task(results)
    metric, label, columns = task.metric, task.metric_label, cell_columns(task)
    tables = [(f"Pareto front: {label} vs p50 on {g['cpu']}", columns, cell_rows(results, g["cells"]), "")
              for g in results["fronts"][f"{metric}_vs_p50"]]
    tables.append((f"Pareto front: {label} vs size", columns, cell_rows(results, results["fronts"][f"{metric}_vs_size"]),
                   ""))
    tables.append(("All cells", columns, cell_rows(results), NOTE))
    page = Page(title=f"edgedeploy sweep: {results['sweep']['name']}", summary=summary, tables=tables,
                failed=[(i, c["stage"], c["error"]) for i, c in results["cells"].items() if c["status"] != "ok"],
                plots=_figures(results), tools=results["tools"])
    return page.write(out_dir, "sweep")
