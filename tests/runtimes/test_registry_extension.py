"""Adding a runtime is one backend folder + one registry row: a toy runtime, registered from a
plugin module that edgedeploy has never heard of, is listed, loads its files by suffix, and
serves `list`, `inspect`, `eval` and `bench` with no other module edited."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.runtimes import RUNTIMES, Runtime, register_runtime, runtime_for

PLUGIN = '''
"""A toy runtime: a .toy file is JSON {"classes": N}; its logits are the mean of each channel, tiled."""
import json
from pathlib import Path

import numpy as np

from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.core.io_spec import InputSpec, ModelIO, OutputSpec, Preprocessing


class ToyRunner(Runner):
    runtime = "toyrt"
    batch_size = None

    def __init__(self, source: str, options: LoadOptions):
        self.source = source
        classes = json.loads(Path(source).read_text())["classes"]
        self.io = ModelIO(InputSpec("x", (1, 3, 64, 64)), OutputSpec("y", classes),
                          Preprocessing.for_resolution(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))

    def infer(self, tensor):
        means = tensor.mean(axis=(2, 3))
        return {"y": np.tile(means, (1, self.io.output.num_classes // 3 + 1))[:, : self.io.output.num_classes]}

    def versions(self):
        return {"toyrt": "1.0"}


def inspect(model, options):
    return {"model": model, "runtime": "toyrt", "classes": json.loads(Path(model).read_text())["classes"]}
'''


@pytest.fixture()
def toy_runtime(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = register_runtime(Runtime("toyrt", (".toy",), "toy_plugin:ToyRunner", "toy_plugin:inspect", "toy-plugin",
                                       description="a toy runtime registered by a plugin"))
    yield backend
    del RUNTIMES["toyrt"]
    sys.modules.pop("toy_plugin", None)


def test_a_registered_runtime_is_listed_and_picked_by_suffix(toy_runtime, tmp_path):
    listed = CliRunner().invoke(cli, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["runtimes"]["toyrt"] == {"suffixes": [".toy"],
                                                              "description": "a toy runtime registered by a plugin"}
    assert runtime_for(str(tmp_path / "m.toy")) is toy_runtime


def test_a_registered_runtime_serves_inspect_and_eval(toy_runtime, tmp_path, val_dir):
    model = tmp_path / "m.toy"
    model.write_text(json.dumps({"classes": 1000}))
    runner = CliRunner()
    inspected = runner.invoke(cli, ["inspect", str(model), "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.stdout) == {"model": str(model), "runtime": "toyrt", "classes": 1000, "verified": None}
    evaluated = runner.invoke(cli, ["eval", str(model), "--data", str(val_dir), "--limit", "8", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    out = json.loads(evaluated.stdout)
    assert out["runtime"] == "toyrt" and out["n"] == 8 and out["versions"] == {"toyrt": "1.0"}
    # The host CPU profile runs every registered runtime ("*"), so it benches there too.
    benched = runner.invoke(cli, ["bench", str(model), "--runs", "3", "--warmup", "0", "--json"])
    assert benched.exit_code == 0, benched.output
    assert json.loads(benched.stdout)["runs"] == 3


def test_names_and_suffixes_must_be_new(toy_runtime):
    with pytest.raises(ConfigError, match="already registered"):
        register_runtime(Runtime("toyrt", (".toy2",), "x:y", "x:z", "x"))
    with pytest.raises(ConfigError, match="suffix .onnx belongs to another runtime"):
        register_runtime(Runtime("toy2", (".onnx",), "x:y", "x:z", "x"))
