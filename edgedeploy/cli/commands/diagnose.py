"""``edgedeploy diagnose``: per-layer quantization error and the layers to keep in float."""

from __future__ import annotations

from pathlib import Path

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import OutputPath, emit_json, json_option, progress, verified_text
from edgedeploy.cli.render import fmt, key_values, table


@click.command()
@click.argument("model")
@click.option("--reference", required=True, help="The float export of the same model and format (e.g. tflite-fp32).")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Real images to compare activations on.")
@click.option("--images", type=ranges.PARITY_IMAGES, default=32, show_default=True,
              help="Images to use (a seeded sample of --data).")
@click.option("--suggest", type=click.IntRange(0, 100), default=3, show_default=True,
              help="How many layers to suggest keeping in float.")
@click.option("--plot", type=OutputPath(folder=False), default=None,
              help="PNG of SQNR and RMSE per layer [default: <model stem>.layers.png here].")
@click.option("--threads", type=ranges.THREADS, default=None, help="Threads for the output comparison.")
@click.option("--no-verify", is_flag=True, help="Use the models even if their files no longer match their manifests.")
@json_option
def diagnose(as_json: bool, model: str, reference: str, data: Path, images: int, suggest: int, plot: Path | None,
             threads: int | None, no_verify: bool) -> None:
    """Per-layer int8 error of MODEL against its float REFERENCE, and the layers to keep in float."""
    from edgedeploy.devices import default_threads
    from edgedeploy.diagnose.analysis import diagnose as run_diagnose
    from edgedeploy.diagnose.analysis import plot_layer_errors

    with progress(images, "diagnose") as bar:
        result = run_diagnose(model, reference, data, images, suggest,
                              threads or default_threads(), on_progress=bar.update, verify=not no_verify)
    result["plot"] = str(plot_layer_errors(result, plot or Path(f"{Path(model).stem}.layers.png")))
    if as_json:
        emit_json(result)
        return
    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    click.echo(table(["#", "layer", "op", "SQNR dB", "RMSE steps", "max |err|", "weights dB", "range dB", "clipped %",
                      "local noise"],
                     [[e["index"], e["name"], e["op"], num(e["sqnr_db"], ".1f"), num(e["rmse_steps"], ".2f"),
                       num(e["max_abs_error"], ".3g"), num(e["weights_sqnr_db"], ".1f"), num(e["range_sqnr_db"], ".1f"),
                       num(e["clipped_pct"], ".2f"), num(e["local_noise"], ".4f")] for e in result["layers"]]))
    out = result["output"]
    suggestion = result["suggestions"]
    click.echo(key_values([
        ("images", result["images"]),
        ("output", f"{out['agreement_of']} {fmt(out['agreement'])} % with the reference, "
                   f"max |diff| {out['max_abs_diff']:.3g}"),
        ("layers", f"{result['layers_compared']} compared, {result['layers_unmatched']} without a float counterpart"),
        ("diagnosis", result["diagnosis"]),
        ("suggestion", f"export --target {suggestion['target']} {suggestion['export_option']}"
         if suggestion["layers"] else "none"),
        ("plot", result["plot"]),
        ("verified", verified_text(result["verified"])),
    ]))

