"""``edgedeploy list``: the registries (targets, runtimes, devices, models)."""

from __future__ import annotations

import click

from edgedeploy.cli.options import devices_option, emit_json, json_option
from edgedeploy.cli.render import table


@click.command("list")
@devices_option
@json_option
def list_cmd(as_json: bool, devices_file: str | None) -> None:
    """List export targets, runtimes, devices, models and tasks."""
    from edgedeploy.core.errors import EdgeDeployError
    from edgedeploy.devices import builtin_devices, load_devices
    from edgedeploy.exporter.targets import TARGETS
    from edgedeploy.models import MODELS
    from edgedeploy.runtimes import RUNTIMES
    from edgedeploy.tasks import task_rows

    try:
        devices, devices_error = load_devices(devices_file), None
    except EdgeDeployError as exc:
        # A broken user profile file must not hide the rest: list the built-in devices and say why.
        devices, devices_error = builtin_devices(), str(exc)
        click.echo(f"warning: {exc} (listing the built-in devices)", err=True)
    out = {
        "targets": {t.name: {"runtime": t.runtime, "suffix": t.file_suffix, "description": t.description}
                    for t in TARGETS.values()},
        "runtimes": {r.name: {"suffixes": list(r.suffixes), "description": r.description} for r in RUNTIMES.values()},
        "devices": {d.name: {"transport": d.transport, "description": d.description} for d in devices.values()},
        "models": {m.name: {"task": m.task, "weights": [w.name for w in m.weights], "description": m.description}
                   for m in MODELS.values()},
        "tasks": {t.name: {"metric": t.metric, "agreement": t.agreement_label, "description": t.description}
                  for t in task_rows()},
    }
    if devices_error:
        out["devices_error"] = devices_error
    if as_json:
        emit_json(out)
        return
    click.echo(table(["target", "runtime", "file", "description"],
                     [[n, t["runtime"], t["suffix"], t["description"]] for n, t in out["targets"].items()]))
    click.echo()
    click.echo(table(["runtime", "files", "description"],
                     [[n, " ".join(r["suffixes"]), r["description"]] for n, r in out["runtimes"].items()]))
    click.echo()
    click.echo(table(["device", "transport", "description"],
                     [[n, d["transport"], d["description"]] for n, d in out["devices"].items()]))
    click.echo()
    click.echo(table(["model", "task", "weights", "description"],
                     [[n, m["task"], " ".join(m["weights"]), m["description"]] for n, m in out["models"].items()]))
    click.echo()
    click.echo(table(["task", "metric", "agreement", "description"],
                     [[n, t["metric"], t["agreement"], t["description"]] for n, t in out["tasks"].items()]))
