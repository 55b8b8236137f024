"""The human report of a run: Markdown and a self-contained HTML page, with PNG plots and, for tasks
that have them (segmentation), pictures of every model's predictions side by side.

Everything comes from the results dict (results.json) and the files beside it, so a report can be
rebuilt from a results folder alone. The HTML embeds its plots and pictures as data URIs: one file to
upload as a CI artifact or attach to a review. Columns name the run's task's metric (top-1, mIoU).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.core.io_spec import DEFAULT_TASK
from edgedeploy.tasks import Task, get_task

__all__ = ["write_report", "report_rows", "report_columns", "results_task", "Page", "Pictures", "png_bytes",
           "log_ms_axis", "num"]

NOTE = ("Drop and agreement ({agreement}) are against the PyTorch float model on the same images; the drop interval "
        "is a paired bootstrap interval over images, lost/gained the images the target scores worse and better than "
        "the float model, p the paired test on them (McNemar for per-image correctness, Wilcoxon for per-image IoU). "
        "Speed-up is the float target's p50 divided by this target's, on the same device in the same run (benched in "
        "interleaved rounds); the p50 ratio is its inverse with a bootstrap interval.")


def results_task(results: dict[str, Any]) -> Task:
    """The task a results file measured (files written before tasks existed: classification)."""
    return get_task(results.get("task", DEFAULT_TASK))


def report_columns(task: Task) -> list[str]:
    return ["target", "runtime", "device", "size MiB", f"{task.metric_label} %", "drop pts", "drop interval",
            "lost/gained (p)", f"{task.agreement_label} %", "p50 ms", "p90 ms", "speed-up vs float",
            "p50 ratio vs float"]
PLOTS = {"accuracy_vs_latency": "Top-1 vs p50 latency", "latency_distribution": "Latency distribution"}


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(interval: dict[str, float]) -> str:
    return f"[{interval['low']:.2f}, {interval['high']:.2f}]"


def report_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per (target, device), the float reference first; failed targets get one row."""
    rows = []
    metric = results_task(results).metric
    ref = results["reference"]
    for device, lat in ref["latency"].items():
        rows.append(["pytorch (reference)", ref["runtime"], device, "-", num(ref["accuracy"][metric]), "-", "-", "-",
                     "-", num(lat["latency_ms"]["p50"]), num(lat["latency_ms"].get("p90")), "-", "-"])
    for name, t in results["targets"].items():
        if t["status"] != "ok":
            rows.append([name, t["runtime"], "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                         f"FAILED ({t['stage']})"])
            continue
        acc = t["accuracy"]
        # Results written before per-image evidence (schema 1) have no paired statistics.
        paired = acc.get("paired")
        speedup = t.get("speedup_vs_float", {})
        ratios = t.get("latency_ratio_vs_float", {})
        for device, lat in t["latency"].items():
            ratio = speedup.get(device)
            rows.append([
                name, t["runtime"], device, num(t["size_bytes"] / 2**20), num(acc[metric]), num(acc[f"{metric}_drop"]),
                _interval(paired["drop"]) if paired else "-",
                f"{paired['lost']}/{paired['gained']} ({paired['p_value']:.2g})" if paired else "-",
                num(acc["agreement"]), num(lat["latency_ms"]["p50"]), num(lat["latency_ms"].get("p90")),
                "-" if ratio is None else f"{ratio:.2f}x vs {speedup['baseline']}",
                f"{ratios[device]['estimate']:.2f} {_interval(ratios[device])}" if device in ratios else "-",
            ])
    return rows


def _figures(results: dict[str, Any]) -> dict[str, bytes]:
    # The object API needs no pyplot state and no display backend.
    from matplotlib.figure import Figure

    ok = {n: t for n, t in results["targets"].items() if t["status"] == "ok"}
    ref = results["reference"]
    task = results_task(results)
    points = [("pytorch", ref["accuracy"][task.metric], ref["latency"])] + [
        (n, t["accuracy"][task.metric], t["latency"]) for n, t in ok.items()]
    pngs = {}

    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.subplots()
    for device in results["devices"]:
        xs = [lat[device]["latency_ms"]["p50"] for _, _, lat in points if device in lat]
        ys = [top1 for _, top1, lat in points if device in lat]
        ax.scatter(xs, ys, label=device, s=40)
        for i, (name, top1, lat) in enumerate(points):
            if device in lat:
                # Staggered label offsets: targets with equal accuracy sit on one line.
                ax.annotate(name, (lat[device]["latency_ms"]["p50"], top1), textcoords="offset points",
                            xytext=(5, 4 + 9 * (i % 3)), fontsize=8)
    log_ms_axis(ax)
    ax.set_xlabel("p50 latency, ms (log scale)")
    ax.set_ylabel(f"{task.metric_label}, %")
    ax.set_title(f"{results['recipe']['name']}: {task.metric_label} vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(title="device")
    fig.tight_layout()
    pngs["accuracy_vs_latency"] = png_bytes(fig)

    # Remote devices report summary statistics only (benchmark_model), so they have no samples to draw.
    series = [(f"{name} [{device}]", lat[device]["samples_ms"]) for name, _, lat in points
              for device in results["devices"] if "samples_ms" in lat.get(device, {})]
    fig = Figure(figsize=(7.5, 0.45 * len(series) + 1.4), dpi=110)
    ax = fig.subplots()
    if not series:
        ax.text(0.5, 0.5, "no per-run samples: remote devices report summary statistics only",
                ha="center", va="center", transform=ax.transAxes)
        pngs["latency_distribution"] = png_bytes(fig)
        return pngs
    ax.boxplot([s for _, s in series], orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(series) + 1), [label for label, _ in series], fontsize=8)
    log_ms_axis(ax)
    ax.set_xlabel("latency per inference, ms (log scale)")
    ax.set_title("latency distribution (every timed run)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    pngs["latency_distribution"] = png_bytes(fig)
    return pngs


def log_ms_axis(ax: Any) -> None:
    """A log x axis labelled 1, 2, 5, 10, 20 ... rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _summary(results: dict[str, Any]) -> list[tuple[str, str]]:
    ev = results["evaluation"]
    failed = results["failed"]
    return [
        ("status", "ok" if not failed else f"{len(failed)} of {len(results['targets'])} targets failed"),
        ("recipe", f"{results['recipe']['path']} (sha256 {results['recipe']['sha256'][:12]})"),
        ("evaluation", f"{ev['images']} images from {ev['data']}"),
        ("host", results["host"]),
        ("created", results["created_utc"]),
        ("run time", f"{results['seconds']:.1f} s"),
    ]


@dataclass(frozen=True)
class Pictures:
    """A grid of pictures: one row per image, one column per view (input, ground truth, each model).
    ``rows``: (image name, one PNG per column or None)."""

    heading: str
    columns: list[str]
    rows: list[tuple[str, list[bytes | None]]]
    note: str = ""

    @classmethod
    def from_results(cls, results: dict[str, Any], results_dir: Path) -> Pictures | None:
        """The pictures a run recorded (files relative to its folder); None when it has none, or when they
        were not copied with the results."""
        entry = results.get("pictures")
        if not entry:
            return None
        rows = []
        for row in entry["rows"]:
            files = [results_dir / f if f else None for f in row["files"]]
            if any(f is not None and not f.is_file() for f in files):
                return None
            rows.append((row["image"], [f.read_bytes() if f else None for f in files]))
        return cls("Predictions", entry["columns"], rows, entry.get(
            "note", "The first images of the evaluation data: the input, its ground truth, the float model (pytorch) "
                    "and every target, as the model's classes in PASCAL VOC's colours at the image's size."))


@dataclass(frozen=True)
class Page:
    """A report page, written as Markdown and as one self-contained HTML file (plots as data URIs)."""

    title: str
    summary: list[tuple[str, str]]
    # (heading or "", columns, rows, note); a row whose last cell starts with FAILED is marked.
    tables: list[tuple[str, list[str], list[list[str]], str]]
    failed: list[tuple[str, str, str]]  # (name, stage, error)
    plots: dict[str, tuple[str, bytes]]  # file stem -> (title, PNG)
    tools: dict[str, str]
    pictures: Pictures | None = None

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""] + [f"- **{k}**: {v}" for k, v in self.summary]
        for heading, columns, rows, note in self.tables:
            lines += ["", f"## {heading}"] if heading else []
            lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines += ["", note] if note else []
        lines.append("")
        if self.failed:
            lines += ["## Failed", ""] + [f"- **{n}** ({stage}): {error}" for n, stage, error in self.failed] + [""]
        lines += ["## Plots", ""] + [f"![{title}](plots/{name}.png)" for name, (title, _) in self.plots.items()] + [""]
        if self.pictures:
            p = self.pictures
            images = [image for image, _ in p.rows]
            lines += [f"## {p.heading}", "", "| | " + " | ".join(images) + " |", "|" + "---|" * (len(images) + 1)]
            # One row per view (input, ground truth, each model), one column per image: many targets fit a page.
            lines += [f"| {column} | " + " | ".join(
                f"![{column}]({self._picture_file(image, column)})" if pngs[i] else "-" for image, pngs in p.rows)
                + " |" for i, column in enumerate(p.columns)]
            lines += ["", p.note, ""]
        lines += ["## Tools", "", ", ".join(f"{k} {v}" for k, v in self.tools.items()), ""]
        return "\n".join(lines)

    @staticmethod
    def _picture_file(image: str, column: str) -> str:
        return f"pictures/{Path(image).stem}/{column.replace(' ', '-')}.png"

    def _pictures_html(self) -> str:
        if not self.pictures:
            return ""
        e, p = html.escape, self.pictures
        head = "<th></th>" + "".join(f"<th>{e(image)}</th>" for image, _ in p.rows)
        body = "".join(
            f"<tr><th>{e(column)}</th>" + "".join(
                f"<td><img class=\"picture\" alt=\"{e(image)}: {e(column)}\" src=\"data:image/png;base64,"
                f"{base64.b64encode(pngs[i]).decode()}\"></td>" if pngs[i] else "<td>-</td>" for image, pngs in p.rows)
            + "</tr>" for i, column in enumerate(p.columns))
        return (f"<h2>{e(p.heading)}</h2><table class=\"pictures\"><thead><tr>{head}</tr></thead><tbody>{body}"
                f"</tbody></table><p class=\"note\">{e(p.note)}</p>")

    def html(self) -> str:
        e = html.escape
        summary = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in self.summary)
        tables = ""
        for heading, columns, rows, note in self.tables:
            head = "".join(f"<th>{e(c)}</th>" for c in columns)
            body = "".join(("<tr class='failed'>" if row[-1].startswith("FAILED") else "<tr>")
                           + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
            tables += ((f"<h2>{e(heading)}</h2>" if heading else "")
                       + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                       + (f"<p class=\"note\">{e(note)}</p>" if note else ""))
        failed = "".join(f"<li><b>{e(n)}</b> ({e(stage)}): {e(error)}</li>" for n, stage, error in self.failed)
        plots = "".join(
            f"<h3>{e(title)}</h3><img alt=\"{e(title)}\" src=\"data:image/png;base64,"
            f"{base64.b64encode(png).decode()}\">" for title, png in self.plots.values())
        tools = e(", ".join(f"{k} {v}" for k, v in self.tools.items()))
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(self.title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{e(self.title)}</h1><dl>{summary}</dl>{tables}"
                + (f"<h2>Failed</h2><ul>{failed}</ul>" if failed else "")
                + f"<h2>Plots</h2>{plots}{self._pictures_html()}<h2>Tools</h2><p class=\"note\">{tools}</p>"
                + "</body></html>\n")

    def write(self, out_dir: str | Path, stem: str) -> dict[str, Path]:
        """``out_dir/<stem>.md``, ``<stem>.html`` and ``plots/*.png``; returns their paths."""
        out_dir = Path(out_dir)
        paths = {}
        for name, (_, png) in self.plots.items():
            paths[name] = out_dir / "plots" / f"{name}.png"
            with atomic_path(paths[name]) as tmp:
                tmp.write_bytes(png)
        for image, pngs in self.pictures.rows if self.pictures else []:
            for column, png in zip(self.pictures.columns, pngs):  # type: ignore[union-attr]
                if png is not None:
                    with atomic_path(out_dir / self._picture_file(image, column)) as tmp:
                        tmp.write_bytes(png)
        paths["markdown"] = out_dir / f"{stem}.md"
        atomic_write_text(paths["markdown"], self.markdown())
        paths["html"] = out_dir / f"{stem}.html"
        atomic_write_text(paths["html"], self.html())
        return paths


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td:nth-child(2), td:nth-child(3) { text-align: left; }
th { background: #f0f0f0; }
tr.failed td { background: #fde2e2; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
dt { font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; }
table.pictures td { text-align: center; padding: 2px; }
table.pictures tbody th { text-align: left; background: #f0f0f0; }
img.picture { width: 180px; max-width: none; border: 0; }
.note { color: #555; font-size: 13px; }
"""


def write_report(results: dict[str, Any], out_dir: str | Path, results_dir: str | Path | None = None
                 ) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into ``out_dir``; returns their paths. ``results_dir``:
    where the results file lies (its pictures are read from there; default ``out_dir``)."""
    pngs = _figures(results)
    task = results_task(results)
    page = Page(
        title=f"edgedeploy report: {results['recipe']['name']}", summary=_summary(results),
        tables=[("", report_columns(task), report_rows(results), NOTE.format(agreement=task.agreement_label))],
        failed=[(n, t["stage"], t["error"]) for n, t in results["targets"].items() if t["status"] != "ok"],
        plots={name: (PLOTS[name], png) for name, png in pngs.items()}, tools=results["tools"],
        pictures=Pictures.from_results(results, Path(results_dir or out_dir)))
    return page.write(out_dir, "report")
