"""``edgedeploy inspect``: what a model file is."""

from __future__ import annotations

from dataclasses import replace

import click

from edgedeploy.cli.options import ModelArgs, devices_option, emit_json, json_option, model_options
from edgedeploy.cli.render import execution_text, key_values, table


@click.command()
@click.argument("model")
@click.option("--device", default=None,
              help="gpu: also load MODEL on the GPU accelerator and say which ops it would run on the CPU, and on "
                   "which adapter (nothing is refused: this is the question).")
@devices_option
@model_options
@json_option
def inspect(as_json: bool, model: str, device: str | None, devices_file: str | None, model_args: ModelArgs) -> None:
    """Describe MODEL: parameters and MACs (PyTorch) or graph, IO and ops (ONNX)."""
    from edgedeploy.devices import get_device
    from edgedeploy.measure.on_device import eval_runner
    from edgedeploy.runtimes import inspect_model

    options = model_args.load_options(1)
    info = inspect_model(model, options)
    if device is not None:
        dev = get_device(device, devices_file)
        if dev.accelerator != "gpu":
            raise click.UsageError(f"--device {device}: inspect loads a model on a GPU device only (gpu)")
        info["gpu"] = eval_runner(model, dev, replace(options, gpu_fallback=True)).execution()
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
    if "gpu" in info:
        click.echo(key_values([("gpu", execution_text(info["gpu"]))]))

