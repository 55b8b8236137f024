"""The report: Markdown and self-contained HTML with the numbers of results.json, and real PNG plots."""

import base64
import re

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.recipes.report import report_columns, report_rows, write_report
from edgedeploy.tasks import get_task

pytestmark = [pytest.mark.data, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_rows_carry_the_results_numbers(recipe_run):
    _, results, _ = recipe_run
    rows = {row[0]: row for row in report_rows(results)}
    assert set(rows) == {"pytorch (reference)", "onnx", "tflite-fp32", "tflite-int8"}
    int8 = results["targets"]["tflite-int8"]
    row = dict(zip(report_columns(get_task("classification")), rows["tflite-int8"]))
    assert row["top-1 %"] == f"{int8['accuracy']['top1']:.2f}"
    assert row["top-1 agreement %"] == f"{int8['accuracy']['agreement']:.2f}"
    assert row["size MiB"] == f"{int8['size_bytes'] / 2**20:.2f}"
    assert row["p50 ms"] == f"{int8['latency']['cpu']['latency_ms']['p50']:.2f}"
    assert row["speed-up vs float"] == f"{int8['speedup_vs_float']['cpu']:.2f}x vs tflite-fp32"


def test_markdown_html_and_plots_are_written(recipe_run, tmp_path):
    _, results, _ = recipe_run
    paths = write_report(results, tmp_path)
    for name in ("accuracy_vs_latency", "latency_distribution"):
        png = paths[name].read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    md = paths["markdown"].read_text()
    html = paths["html"].read_text()
    for row in report_rows(results):
        assert "| " + " | ".join(row) + " |" in md
        assert all(f"<td>{cell}</td>" in html for cell in row)
    assert "](plots/accuracy_vs_latency.png)" in md
    # Self-contained: the plots are embedded, nothing is fetched from elsewhere.
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 2 and all(base64.b64decode(e).startswith(PNG_MAGIC) for e in embedded)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_report_command_rebuilds_from_results(recipe_run, tmp_path):
    _, _, out = recipe_run
    result = CliRunner().invoke(cli, ["report", str(out / "results.json"), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").is_file() and (tmp_path / "plots" / "latency_distribution.png").is_file()


def test_report_of_a_missing_results_file_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope.json")])
    assert result.exit_code == 3 and result.stderr.strip().count("\n") == 0
    assert "results file not found" in result.stderr
