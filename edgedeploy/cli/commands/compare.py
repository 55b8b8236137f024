"""``edgedeploy compare``: two runs' results side by side, with per-target deltas, intervals and verdicts."""

from __future__ import annotations

from pathlib import Path

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import emit_json, json_option
from edgedeploy.cli.render import table


@click.command()
@click.argument("results_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("results_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--confidence", type=ranges.CONFIDENCE, default=0.95, show_default=True,
              help="Confidence of the intervals; a change is significant at 1 - confidence.")
@click.option("--latency-margin", type=ranges.Finite(0, 10), default=0.10, show_default=True,
              help="A p50 ratio B/A is a change only when its whole interval lies beyond 1 +/- this.")
@json_option
def compare(as_json: bool, results_a: Path, results_b: Path, confidence: float, latency_margin: float) -> None:
    """Compare two runs' results.json (e.g. main vs a pull request): the metric (top-1, mIoU) paired image by image,
    p50 latency per device, each with its interval and verdict. Exit 0 whatever changed."""
    from edgedeploy.recipes.compare import compare_columns, compare_results
    from edgedeploy.recipes.evidence import read_evidence
    from edgedeploy.recipes.results import read_results
    from edgedeploy.tasks import get_task

    a, b = read_results(results_a), read_results(results_b)
    comparison = compare_results(a, b, read_evidence(a, results_a), read_evidence(b, results_b),
                                 confidence, latency_margin)
    if as_json:
        emit_json({"a": str(results_a), "b": str(results_b), **comparison.to_dict()})
        return
    click.echo(table(compare_columns(get_task(comparison.task)), comparison.rows()))
    for note in comparison.notes:
        click.echo(f"note: {note}")
    changed = comparison.changed
    click.echo(f"compare: {len(changed)} of {len(comparison.targets)} targets changed"
               + (f" ({', '.join(changed)})" if changed else "") + f"; A {results_a}, B {results_b}")
