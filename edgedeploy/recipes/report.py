"""The human report of a run: Markdown and a self-contained HTML page, with PNG plots.

Everything comes from the results dict (results.json), so a report can be rebuilt
from a results file alone. The HTML embeds its plots as data URIs: one file to
upload as a CI artifact or attach to a review.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_path, atomic_write_text

__all__ = ["write_report", "report_rows", "COLUMNS"]

COLUMNS = ["target", "runtime", "device", "size MiB", "top-1 %", "drop pts", "drop interval", "lost/gained (p)",
           "agreement %", "p50 ms", "p90 ms", "speed-up vs float", "p50 ratio vs float"]
NOTE = ("Drop and agreement are against the PyTorch float model on the same images; the drop interval is a paired "
        "bootstrap interval, lost/gained the images the float model gets right and the target wrong and the reverse, "
        "p McNemar's exact test on them. Speed-up is the float target's p50 divided by this target's, on the same "
        "device in the same run (benched in interleaved rounds); the p50 ratio is its inverse with a bootstrap "
        "interval.")
PLOTS = {"accuracy_vs_latency": "Top-1 vs p50 latency", "latency_distribution": "Latency distribution"}


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(interval: dict[str, float]) -> str:
    return f"[{interval['low']:.2f}, {interval['high']:.2f}]"


def report_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per (target, device), the float reference first; failed targets get one row."""
    rows = []
    ref = results["reference"]
    for device, lat in ref["latency"].items():
        rows.append(["pytorch (reference)", ref["runtime"], device, "-", _num(ref["accuracy"]["top1"]), "-", "-", "-",
                     "-", _num(lat["latency_ms"]["p50"]), _num(lat["latency_ms"].get("p90")), "-", "-"])
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
                name, t["runtime"], device, _num(t["size_bytes"] / 2**20), _num(acc["top1"]), _num(acc["top1_drop"]),
                _interval(paired["drop"]) if paired else "-",
                f"{paired['lost']}/{paired['gained']} ({paired['p_value']:.2g})" if paired else "-",
                _num(acc["agreement"]), _num(lat["latency_ms"]["p50"]), _num(lat["latency_ms"].get("p90")),
                "-" if ratio is None else f"{ratio:.2f}x vs {speedup['baseline']}",
                f"{ratios[device]['estimate']:.2f} {_interval(ratios[device])}" if device in ratios else "-",
            ])
    return rows


def _figures(results: dict[str, Any]) -> dict[str, bytes]:
    # The object API needs no pyplot state and no display backend.
    from matplotlib.figure import Figure

    ok = {n: t for n, t in results["targets"].items() if t["status"] == "ok"}
    ref = results["reference"]
    points = [("pytorch", ref["accuracy"]["top1"], ref["latency"])] + [
        (n, t["accuracy"]["top1"], t["latency"]) for n, t in ok.items()]
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
    _log_ms_axis(ax)
    ax.set_xlabel("p50 latency, ms (log scale)")
    ax.set_ylabel("top-1, %")
    ax.set_title(f"{results['recipe']['name']}: accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(title="device")
    fig.tight_layout()
    pngs["accuracy_vs_latency"] = _png(fig)

    # Remote devices report summary statistics only (benchmark_model), so they have no samples to draw.
    series = [(f"{name} [{device}]", lat[device]["samples_ms"]) for name, _, lat in points
              for device in results["devices"] if "samples_ms" in lat.get(device, {})]
    fig = Figure(figsize=(7.5, 0.45 * len(series) + 1.4), dpi=110)
    ax = fig.subplots()
    if not series:
        ax.text(0.5, 0.5, "no per-run samples: remote devices report summary statistics only",
                ha="center", va="center", transform=ax.transAxes)
        pngs["latency_distribution"] = _png(fig)
        return pngs
    ax.boxplot([s for _, s in series], orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(series) + 1), [label for label, _ in series], fontsize=8)
    _log_ms_axis(ax)
    ax.set_xlabel("latency per inference, ms (log scale)")
    ax.set_title("latency distribution (every timed run)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    pngs["latency_distribution"] = _png(fig)
    return pngs


def _log_ms_axis(ax: Any) -> None:
    """A log x axis labelled 1, 2, 5, 10, 20 ... rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _png(fig: Any) -> bytes:
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


def _markdown(results: dict[str, Any]) -> str:
    lines = [f"# edgedeploy report: {results['recipe']['name']}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _summary(results)]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in report_rows(results)]
    lines += ["", NOTE, ""]
    failed = [(n, t) for n, t in results["targets"].items() if t["status"] != "ok"]
    if failed:
        lines += ["## Failed targets", ""] + [f"- **{n}** ({t['stage']}): {t['error']}" for n, t in failed] + [""]
    lines += ["## Plots", ""] + [f"![{title}](plots/{name}.png)" for name, title in PLOTS.items()] + [""]
    lines += ["## Tools", "", ", ".join(f"{k} {v}" for k, v in results["tools"].items()), ""]
    return "\n".join(lines)


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
.note { color: #555; font-size: 13px; }
"""


def _html(results: dict[str, Any], pngs: dict[str, bytes]) -> str:
    e = html.escape
    title = f"edgedeploy report: {results['recipe']['name']}"
    summary = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _summary(results))
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = "".join(
        ("<tr class='failed'>" if row[-1].startswith("FAILED") else "<tr>")
        + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
        for row in report_rows(results)
    )
    failed = "".join(f"<li><b>{e(n)}</b> ({e(t['stage'])}): {e(t['error'])}</li>"
                     for n, t in results["targets"].items() if t["status"] != "ok")
    plots = "".join(
        f"<h3>{e(PLOTS[name])}</h3><img alt=\"{e(PLOTS[name])}\" src=\"data:image/png;base64,"
        f"{base64.b64encode(png).decode()}\">" for name, png in pngs.items())
    tools = e(", ".join(f"{k} {v}" for k, v in results["tools"].items()))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><dl>{summary}</dl>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p class=\"note\">{e(NOTE)}</p>"
            + (f"<h2>Failed targets</h2><ul>{failed}</ul>" if failed else "")
            + f"<h2>Plots</h2>{plots}<h2>Tools</h2><p class=\"note\">{tools}</p></body></html>\n")


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    pngs = _figures(results)
    paths = {}
    for name, png in pngs.items():
        paths[name] = out_dir / "plots" / f"{name}.png"
        with atomic_path(paths[name]) as tmp:
            tmp.write_bytes(png)
    paths["markdown"] = out_dir / "report.md"
    atomic_write_text(paths["markdown"], _markdown(results))
    paths["html"] = out_dir / "report.html"
    atomic_write_text(paths["html"], _html(results, pngs))
    return paths
