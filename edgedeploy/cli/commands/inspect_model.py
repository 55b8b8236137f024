"""``edgedeploy inspect``: what a model file is."""

from __future__ import annotations

import click

from edgedeploy.cli.options import ModelArgs, emit_json, json_option, model_options
from edgedeploy.cli.render import key_values, table


@click.command()
@click.argument("model")
@model_options
@json_option
def inspect(as_json: bool, model: str, model_args: ModelArgs) -> None:
    """Describe MODEL: parameters and MACs (PyTorch) or graph, IO and ops (ONNX)."""
    from edgedeploy.runtimes import inspect_model

    info = inspect_model(model, model_args.load_options(1))
    if as_json:
        emit_json(info)
        return
    scalars = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list)) and v is not None]
    if "macs" in info:
        scalars.append(("MACs (millions)", round(info["macs"] / 1e6, 1)))
    click.echo(key_values(scalars))
    for key in ("inputs", "outputs"):
        for v in info.get(key, []):
            click.echo(f"{key[:-1]:<8}{v['name']}  {v['shape']}  {v['dtype']}")
    if info.get("ops"):
        click.echo(table(["op", "count"], list(info["ops"].items())))

