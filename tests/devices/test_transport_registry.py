"""Adding a transport is one DeviceDriver class + one registry row: a toy transport, registered from
a plugin module edgedeploy has never heard of, is accepted in a profile file and serves
`devices`, `devices setup` and `bench`, with no other module edited."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.devices import TRANSPORTS, DeviceDriver, load_devices, register_transport

PLUGIN = '''
"""A toy transport: a board that answers at once with fixed timings."""
from pathlib import Path

from edgedeploy.core.errors import ConfigError
from edgedeploy.devices import DeviceDriver, LatencyResult, LatencyStats, Reachability


class ToyDriver(DeviceDriver):
    def probe(self):
        return Reachability(True, f"toy board at {self.device.host}")

    def setup(self, on_step):
        on_step("nothing to download")
        return {"firmware": "toy-1.0", "files": ["a.bin", "b.bin"]}

    def eval_runner(self, model, options):
        raise ConfigError(f"on {self.device.name} only latency is measured (bench)")

    def bench(self, model, options, request):
        return LatencyResult(tool="toybench", threads=options.threads, runs=request.runs, warmup=request.warmup,
                             latency_ms=LatencyStats(p50=1.5, mean=1.6, min=1.0, max=2.5),
                             model_size_bytes=Path(model).stat().st_size)
'''
PROFILE = ("- name: toy\n  description: a toy board on a toy transport\n  transport: toy\n  host: toy.local\n"
           "  default_threads: 3\n  runtimes: [onnxruntime]\n")


@pytest.fixture()
def toy_transport(tmp_path, monkeypatch):
    (tmp_path / "toy_transport_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_transport_plugin

    backend = register_transport("toy", toy_transport_plugin.ToyDriver)
    yield backend
    del TRANSPORTS["toy"]
    sys.modules.pop("toy_transport_plugin", None)


@pytest.fixture()
def profiles(tmp_path):
    path = tmp_path / "toy-devices.yaml"
    path.write_text(PROFILE)
    return path


def test_an_unregistered_transport_is_refused_with_its_line(tmp_path):
    path = tmp_path / "unregistered.yaml"
    path.write_text(PROFILE)
    with pytest.raises(ConfigError, match=r"unregistered.yaml:3: 0.transport: Input should be 'local', 'adb', "
                                          r"'qemu' or 'ssh' \(got 'toy'\)"):
        load_devices(str(path))


def test_a_registered_transport_is_listed_by_devices(toy_transport, profiles, monkeypatch):
    result = CliRunner().invoke(cli, ["devices", "--devices", str(profiles), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["devices"]}
    assert rows["toy"] == {"name": "toy", "transport": "toy", "abi": "host", "runtimes": ["onnxruntime"],
                           "delegates": [], "reachable": True, "detail": "toy board at toy.local",
                           "description": "a toy board on a toy transport"}
    assert "cpu" in rows  # the built-in profiles are still there
    monkeypatch.setenv("EDGEDEPLOY_DEVICES", str(profiles))  # the same file through the environment
    human = CliRunner().invoke(cli, ["devices"])
    assert human.exit_code == 0 and "toy board at toy.local" in human.stdout


def test_a_registered_transport_benches(toy_transport, profiles, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx" * 8)
    result = CliRunner().invoke(cli, ["bench", str(model), "--device", "toy", "--devices", str(profiles),
                                      "--runs", "7", "--warmup", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "model": str(model), "runtime": "onnxruntime", "device": "toy", "tool": "toybench",
        "latency_ms": {"p50": 1.5, "mean": 1.6, "min": 1.0, "max": 2.5}, "runs": 7, "warmup": 2, "threads": 3,
        "execution": None, "versions": None, "model_size_bytes": 32, "host": None, "verified": None}
    human = CliRunner().invoke(cli, ["bench", str(model), "--device", "toy", "--devices", str(profiles)])
    assert human.exit_code == 0, human.output
    assert ["device", "toy,", "3", "threads"] in [line.split() for line in human.stdout.splitlines()]
    header, _, values = human.stdout.splitlines()[-3:]  # the statistics the transport reported, in its order
    assert header.split() == ["latency", "ms", "p50", "mean", "min", "max"] and values.split() == ["1.50", "1.60",
                                                                                                   "1.00", "2.50"]


def test_a_registered_transport_sets_up_and_refuses_eval(toy_transport, profiles, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_DEVICES", str(profiles))
    setup = CliRunner().invoke(cli, ["devices", "setup", "toy", "--json"])
    assert setup.exit_code == 0, setup.output
    assert json.loads(setup.stdout) == {"device": "toy", "firmware": "toy-1.0", "files": ["a.bin", "b.bin"]}
    assert "toy: nothing to download ..." in setup.stderr
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    evaluated = CliRunner().invoke(cli, ["eval", str(model), "--data", str(tmp_path), "--device", "toy"])
    assert evaluated.exit_code == 2 and "on toy only latency is measured (bench)" in evaluated.stderr


def test_register_transport_refuses_a_taken_name_or_a_non_backend(toy_transport):
    with pytest.raises(ConfigError, match="transport 'toy' is already registered"):
        register_transport("toy", toy_transport)
    with pytest.raises(ConfigError, match="transport 'adb' is already registered"):
        register_transport("adb", toy_transport)
    with pytest.raises(TypeError, match="is not a DeviceDriver subclass"):
        register_transport("serial", object)  # type: ignore[arg-type]
    assert issubclass(toy_transport, DeviceDriver) and "serial" not in TRANSPORTS
