"""``edgedeploy run``, ``gate`` and ``report``: a recipe's whole deployment, its verdict, its report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli.options import OutputPath, emit_json, json_option
from edgedeploy.cli.render import key_values, table


def split_targets(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def recipe_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
                     help="Output folder [default: edgedeploy-out/<recipe name>]."),
        click.option("--targets", "only", multiple=True,
                     help="Only these recipe targets (comma-separated or repeated) [default: all]."),
        click.option("--force", is_flag=True, help="Rebuild and re-evaluate even when the cache has the result."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run_recipe_with_progress(
    recipe_path: Path, out_dir: Path | None, only: tuple[str, ...], force: bool
) -> tuple[Any, dict[str, Any], Path, dict[str, Path]]:
    """Load and run a recipe, with one progress line per stage on stderr; writes results and report.
    Returns (recipe, results, output folder, report paths)."""
    from edgedeploy.recipes.report import write_report
    from edgedeploy.recipes.run import run_recipe
    from edgedeploy.recipes.schema import load_recipe

    recipe = load_recipe(recipe_path)
    out = out_dir or Path("edgedeploy-out") / recipe.name

    def show(event: Any) -> None:
        detail = f" ({event.detail})" if event.detail else ""
        click.echo(f"[{event.index}/{event.total}] {event.target}: {event.stage}{detail}", err=True)

    results = run_recipe(recipe, out, split_targets(only), force, on_event=show)
    return recipe, results, out, write_report(results, out)


def without_samples(results: dict[str, Any]) -> dict[str, Any]:
    """results.json minus the per-run latency samples (kept in the file, too long for a terminal)."""
    def strip(entry: dict[str, Any]) -> dict[str, Any]:
        if "latency" not in entry:
            return entry
        return {**entry, "latency": {d: {k: v for k, v in lat.items() if k != "samples_ms"}
                                     for d, lat in entry["latency"].items()}}

    return {**results, "reference": strip(results["reference"]),
            "targets": {n: strip(t) for n, t in results["targets"].items()}}


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@recipe_run_options
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, as_json: bool, recipe: Path, out_dir: Path | None, only: tuple[str, ...],
            force: bool) -> None:
    """Run RECIPE: export every target, evaluate, bench; write results.json and a report."""
    from edgedeploy.core.errors import EXIT_INCOMPLETE
    from edgedeploy.recipes.report import report_columns, report_rows, results_task
    from edgedeploy.recipes.results import RESULTS_FILE

    _, results, out, paths = run_recipe_with_progress(recipe, out_dir, only, force)
    summary = {**without_samples(results), "results_file": str(out / RESULTS_FILE),
               "report": {k: str(v) for k, v in paths.items()}}
    if as_json:
        emit_json(summary)
    else:
        click.echo(table(report_columns(results_task(results)), report_rows(results)))
        click.echo(key_values([("results", summary["results_file"]), ("report", str(paths["html"])),
                               ("time", f"{results['seconds']:.1f} s")]))
    if results["failed"]:
        for name in results["failed"]:
            t = results["targets"][name]
            click.echo(f"error: {name} failed at {t['stage']}: {t['error']}", err=True)
        ctx.exit(EXIT_INCOMPLETE)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Check this results.json instead of running the recipe first.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A previous results.json: no target's metric (top-1, mIoU) may fall more than "
                   "max_<metric>_regression below it (paired image by image when both have their .evidence.npz "
                   "beside them).")
@click.option("--junit", type=OutputPath(folder=False), default=None,
              help="Also write the verdicts as JUnit XML (one test case per target and check).")
@click.option("--no-verify", is_flag=True,
              help="Gate even if an artifact beside the results no longer matches its manifest or the results.")
@click.option("--public-key", type=click.Path(path_type=Path), default=None,
              help="Require every measured artifact to be beside the results and signed (edgedeploy sign) with "
                   "the private key of this public key (PEM).")
@recipe_run_options
@json_option
@click.pass_context
def gate(ctx: click.Context, as_json: bool, recipe: Path, results_file: Path | None, baseline: Path | None,
         junit: Path | None, no_verify: bool, public_key: Path | None, out_dir: Path | None, only: tuple[str, ...],
         force: bool) -> None:
    """Fail (exit 1) when a target breaks RECIPE's thresholds or regresses against --baseline.

    RECIPE may be a sweep file: then every cell is checked (--results: its sweep.json).
    Exit 0: every check passed. 1: a regression. 6: a target failed to build or measure,
    or is missing from the results (the gate fails closed), or a figure is not a number. 2/3: bad
    recipe or files (3 also: an artifact beside the results changed since it was measured).
    """
    from edgedeploy.recipes.evidence import read_evidence
    from edgedeploy.recipes.gate import check_results
    from edgedeploy.recipes.results import RESULTS_FILE, read_results, verify_result_artifacts
    from edgedeploy.recipes.schema import load_recipe
    from edgedeploy.sweep.schema import is_sweep_file

    if public_key is not None and no_verify:
        raise click.UsageError("--public-key requires the artifacts to be verified: drop --no-verify")
    if results_file is not None and (force or out_dir is not None):
        raise click.UsageError("--force and --out apply only when the gate runs the recipe (no --results)")
    if public_key is not None:  # checked before any work: a key it cannot use would fail only at the end
        from edgedeploy.core.signing import check_public_key

        check_public_key(public_key)
    if is_sweep_file(recipe):
        from edgedeploy.cli.commands.sweep import run_sweep_with_progress
        from edgedeploy.sweep.gate import check_sweep, read_sweep_evidence
        from edgedeploy.sweep.results import SWEEP_FILE, read_sweep
        from edgedeploy.sweep.schema import load_sweep

        if baseline is not None or only:
            raise click.UsageError("--baseline and --targets apply to recipes; a sweep gates every cell")
        if results_file is not None:
            loaded, results = load_sweep(recipe), read_sweep(results_file)
        else:
            loaded, results, out, _ = run_sweep_with_progress(recipe, out_dir, None, None, force)
            results_file = out / SWEEP_FILE
        verified = {} if no_verify else verify_result_artifacts({"targets": results["cells"]}, results_file.parent,
                                                                public_key)
        report = check_sweep(loaded, results, read_sweep_evidence(results, results_file))
    else:
        if results_file is not None:
            loaded = load_recipe(recipe)
            results = read_results(results_file)
        else:
            loaded, results, out, _ = run_recipe_with_progress(recipe, out_dir, only, force)
            results_file = out / RESULTS_FILE
        verified = {} if no_verify else verify_result_artifacts(results, Path(results_file).parent, public_key)
        before = read_results(baseline) if baseline else None
        report = check_results(loaded, results, before, split_targets(only),
                               read_evidence(results, Path(results_file)),
                               read_evidence(before, baseline) if before is not None and baseline else None)
    _render_gate(ctx, as_json, report, results_file, baseline, junit, verified if not no_verify else False)


def _render_gate(ctx: click.Context, as_json: bool, report: Any, results_file: Path, baseline: Path | None,
                 junit: Path | None, verified: dict[str, bool | None] | bool) -> None:
    from edgedeploy.recipes.gate import GATE_COLUMNS, write_junit

    if junit is not None:
        write_junit(report, junit)
    verdict = report.to_dict()
    if as_json:
        emit_json({**verdict, "results_file": str(results_file), "baseline": str(baseline) if baseline else None,
                   "junit": str(junit) if junit else None, "artifacts_verified": verified})
    else:
        click.echo(table(GATE_COLUMNS, report.rows()))
        for note in report.notes:
            click.echo(f"note: {note}")
        counts = verdict["counts"]
        word = "PASS" if report.passed else "REGRESSION" if report.exit_code == 1 else "ERROR"
        click.echo(f"gate {word}: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, "
                   f"{counts['skip']} skipped ({results_file})")
    if not report.passed:
        bad = [f"{c.target} {c.name}: {c.message}" for c in report.checks if c.status in ("fail", "error")]
        click.echo(f"error: gate failed: {'; '.join(bad)}", err=True)
        ctx.exit(report.exit_code)


@click.command()
@click.argument("results_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Where to write report.md/.html and plots/ [default: beside RESULTS_FILE].")
@json_option
def report(as_json: bool, results_file: Path, out_dir: Path | None) -> None:
    """Rebuild the Markdown/HTML report of a run from its results.json (or of a sweep from its sweep.json)."""
    from edgedeploy.recipes.report import write_report
    from edgedeploy.recipes.results import read_results
    from edgedeploy.sweep.report import write_sweep_report
    from edgedeploy.sweep.results import is_sweep_results, read_sweep

    if is_sweep_results(results_file):
        paths = write_sweep_report(read_sweep(results_file), out_dir or results_file.parent)
    else:
        paths = write_report(read_results(results_file), out_dir or results_file.parent, results_file.parent)
    if as_json:
        emit_json({k: str(v) for k, v in paths.items()})
        return
    click.echo(key_values([(k, str(v)) for k, v in paths.items()]))

