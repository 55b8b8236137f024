"""``edgedeploy sweep``: a recipe times a matrix, each cell built, evaluated and benched on Ray."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import OutputPath, emit_json, json_option
from edgedeploy.cli.render import key_values, table


def run_sweep_with_progress(sweep_file: Path, out_dir: Path | None, address: str | None, max_workers: int | None,
                            force: bool) -> tuple[Any, dict[str, Any], Path, dict[str, Path]]:
    """Load and run (or resume) a sweep with one progress bar over its cells; writes sweep.json and the
    report. Returns (sweep, results, output folder, report paths)."""
    from tqdm import tqdm

    from edgedeploy.sweep.engine import run_sweep
    from edgedeploy.sweep.report import write_sweep_report
    from edgedeploy.sweep.schema import load_sweep

    sweep = load_sweep(sweep_file)
    out = out_dir or Path("edgedeploy-out") / sweep.name
    # disable=None: no bar when stderr is not a terminal; a line per cell then (CI logs, --json).
    with tqdm(total=len(sweep.cells), desc=sweep.name, unit="cell", file=sys.stderr, disable=None) as bar:
        def done(event: Any) -> None:
            bar.update(1)
            if bar.disable:
                how = "resumed" if event.resumed else event.status
                click.echo(f"[{event.done}/{event.total}] {event.cell}: {how}", err=True)

        results = run_sweep(sweep, out, address, max_workers, force, on_cell=done)
    return sweep, results, out, write_sweep_report(results, out)


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ray-address", default=None,
              help="Join this Ray cluster (auto, host:port or ray://host:port) [default: start a local Ray runtime].")
@click.option("--max-workers", type=ranges.WORKERS, default=None,
              help="CPUs of the local Ray runtime: cells built and evaluated at once [default: all].")
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Output folder [default: edgedeploy-out/<sweep name>]; a re-run there resumes.")
@click.option("--force", is_flag=True, help="Redo every cell, ignoring finished cells and the caches.")
@json_option
@click.pass_context
def sweep(ctx: click.Context, as_json: bool, sweep_file: Path, ray_address: str | None, max_workers: int | None,
          out_dir: Path | None, force: bool) -> None:
    """Run SWEEP_FILE: every cell of its matrix built, evaluated (sharded) and benched on Ray.

    Finished cells are kept: a re-run into the same folder does only what is left. Writes
    sweep.json and sweep.md/.html with the Pareto fronts. Exit 6 when a cell failed.
    """
    from edgedeploy.core.errors import EXIT_INCOMPLETE
    from edgedeploy.recipes.report import results_task
    from edgedeploy.sweep.report import cell_columns, cell_rows
    from edgedeploy.sweep.results import SWEEP_FILE

    _, results, out, paths = run_sweep_with_progress(sweep_file, out_dir, ray_address, max_workers, force)
    summary = {"sweep_file": str(out / SWEEP_FILE), "report": {k: str(v) for k, v in paths.items()},
               **{k: results[k] for k in ("status", "counts", "failed", "fronts", "seconds", "ray")}}
    if as_json:
        emit_json(summary)
    else:
        click.echo(table(cell_columns(results_task(results)), cell_rows(results)))
        counts = results["counts"]
        click.echo(key_values([
            ("cells", f"{counts['cells']} ({counts['ran']} run, {counts['resumed']} resumed, {counts['failed']} failed)"),
            *[(f"front (p50, {g['cpu']})", ", ".join(g["cells"]))
              for g in results["fronts"][f"{results_task(results).metric}_vs_p50"]],
            ("front (size)", ", ".join(results["fronts"][f"{results_task(results).metric}_vs_size"])),
            ("results", summary["sweep_file"]), ("report", str(paths["html"])), ("time", f"{results['seconds']:.1f} s")]))
    for cell_id in results["failed"]:
        cell = results["cells"][cell_id]
        click.echo(f"error: {cell_id} failed at {cell['stage']}: {cell['error']}", err=True)
    if results["failed"]:
        ctx.exit(EXIT_INCOMPLETE)
