"""``edgedeploy devices [setup NAME]``: device profiles, reachability, set-up."""

from __future__ import annotations

from dataclasses import asdict

import click

from edgedeploy.cli.options import devices_option, emit_json, json_option
from edgedeploy.cli.render import key_values, table


@click.group("devices", invoke_without_command=True)
@devices_option
@json_option
@click.pass_context
def devices_cmd(ctx: click.Context, as_json: bool, devices_file: str | None) -> None:
    """List device profiles and whether each is reachable now (and why not), then the GPU accelerators this host
    has (LiteRT's GPU accelerator, ONNX Runtime's WebGPU and CUDA/TensorRT providers, OpenVINO's GPU plugin) with
    the adapter each would use, or why none."""
    if ctx.invoked_subcommand is not None:
        return
    from edgedeploy.devices import load_devices, probe
    from edgedeploy.runtimes import gpu_accelerators

    rows = []
    for dev in load_devices(devices_file).values():
        state = probe(dev)
        rows.append({"name": dev.name, "transport": dev.transport, "abi": dev.abi, "runtimes": dev.runtime_names,
                     "delegates": dev.delegates, "reachable": state.reachable, "detail": state.detail,
                     "description": dev.description})
    accelerators = [asdict(a) for a in gpu_accelerators()]
    if as_json:
        emit_json({"devices": rows, "gpu_accelerators": accelerators})
        return
    click.echo(table(["device", "transport", "runtimes", "reachable", "detail"],
                     [[r["name"], r["transport"], ",".join(r["runtimes"]), "yes" if r["reachable"] else "no",
                       r["detail"]] for r in rows]))
    click.echo("\n" + table(["GPU accelerator", "runtime", "usable", "adapter, or why not"],
                            [[a["accelerator"], a["runtime"], "yes" if a["usable"] else "no", a["detail"]]
                             for a in accelerators]))


@devices_cmd.command("setup")
@click.argument("name")
@devices_option
@json_option
def devices_setup(as_json: bool, name: str, devices_file: str | None) -> None:
    """Prepare device NAME: build the arm64-emu root, or download benchmark_model for an adb/ssh device."""
    from edgedeploy.devices import NothingToSetUp, driver_for, get_device

    driver = driver_for(get_device(name, devices_file))
    try:
        out = driver.setup(on_step=lambda step: click.echo(f"{name}: {step} ...", err=True))
    except NothingToSetUp as exc:  # asking is a usage mistake: said as click says one
        raise click.UsageError(str(exc)) from exc
    if as_json:
        emit_json({"device": name, **out})
        return
    click.echo(key_values([(k, v if not isinstance(v, list) else ", ".join(v)) for k, v in out.items()]))
