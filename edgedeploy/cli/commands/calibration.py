"""``edgedeploy calibration``: pin a calibration set as a definition file."""

from __future__ import annotations

from pathlib import Path

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import OutputPath, emit_json, json_option


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=OutputPath(folder=False), required=True,
              help="Definition file to write (.json).")
@click.option("--size", type=ranges.IMAGES, default=200, show_default=True, help="Images to select.")
@click.option("--seed", type=ranges.SEED, default=0, show_default=True, help="Seed of the class-stratified selection.")
@click.option("--name", default=None, help="Set name [default: the file stem].")
@json_option
def calibration(as_json: bool, source: Path, output: Path, size: int, seed: int, name: str | None) -> None:
    """Pin a calibration set: select images from SOURCE and write a definition (paths + sha256)."""
    from edgedeploy.data.calibration import write_definition

    if output.suffix != ".json":
        raise click.BadParameter("the definition file must end in .json", param_hint="--output")
    out = write_definition(source, output, size, seed, name)
    if as_json:
        emit_json(out)
        return
    click.echo(f"wrote {out['path']}: {out['images']} images from {out['classes']} folders under {out['root']}")

