"""Adding a task is one registry row: a toy task ("which colour dominates the image", its own data layout,
metric, accumulator and paired test), registered from a plugin module with a toy model family, is listed,
exported with parity, evaluated on its own data (and refuses another task's), run in a recipe, gated on
its own metric's threshold and reported under its own column names, with no edgedeploy module edited."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.models import MODELS, ModelFamily, register_model
from edgedeploy.tasks import TASKS, get_task, register_task

PLUGIN = '''
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.core.stats import paired_accuracy
from edgedeploy.data.datasets import ImageSet
from edgedeploy.tasks.base import LAYOUT_SPECIFIC, Accumulator, Task, pct


class ColourSet(ImageSet):
    @classmethod
    def read(cls, root: Path) -> "ColourSet":
        rows = [line.split(",") for line in (root / "colours.csv").read_text().split()]
        return cls(root, [(root / name, int(label)) for name, label in rows], "colours.csv")


class ColourAccumulator(Accumulator):
    SUMS = ("labeled", "hits")

    def __init__(self):
        super().__init__()
        self.labeled = self.hits = 0

    def _update(self, scores, labels, probabilities, reference):
        predicted = scores.argmax(1)
        self.labeled += sum(label is not None for label in labels)
        self.hits += sum(int(p == label) for p, label in zip(predicted, labels) if label is not None)
        self._record(labels=np.array([-1 if label is None else label for label in labels]), predicted=predicted)

    def _merge(self, other):
        self.labeled += other.labeled
        self.hits += other.hits

    def metrics(self, with_reference):
        return {"colour_acc": pct(self.hits, self.labeled)}


class Colour(Task):
    name = "colour"
    description = "toy: the dominant colour channel"
    metric, metric_label = "colour_acc", "colour accuracy"
    agreement_label = "colour agreement"
    label_records = ("labels",)

    def preprocessing(self, resolution, mean, std, raw_pixels=False):
        return Preprocessing(resolution, resolution, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), resize_mode="stretch")

    def layout_match(self, path):
        return LAYOUT_SPECIFIC if (path / "colours.csv").is_file() else 0

    def _open(self, path, options):
        return ColourSet.read(path)

    def accumulator(self):
        return ColourAccumulator()

    def paired(self, reference, candidate, confidence):
        labels = reference["labels"]
        return paired_accuracy(reference["predicted"] == labels, candidate["predicted"] == labels, confidence)


@dataclass(frozen=True)
class ColourConfig:
    arch: ClassVar[str] = "colour_net"
    width: float = 1.0
    resolution: int = 32
    num_classes: int = 3

    @property
    def name(self):
        return f"colour_net_{self.resolution}"


class ColourNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.mix = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.mix.bias.zero_()

    def forward(self, x):
        return self.mix(x).mean((2, 3))
'''


@pytest.fixture()
def colour_task(tmp_path, monkeypatch):
    (tmp_path / "colour_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    import colour_plugin

    task = register_task(colour_plugin.Colour())
    register_model(ModelFamily("colour_net", "toy: a 1x1 conv and a mean", "colour_plugin:ColourConfig",
                               "colour_plugin:ColourNet", task="colour"))
    yield task
    del TASKS["colour"], MODELS["colour_net"]
    sys.modules.pop("colour_plugin", None)


@pytest.fixture()
def colours(tmp_path):
    """12 images, each dominated by one channel (noise on top), labelled in colours.csv."""
    root = tmp_path / "colours"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        pixels = rng.integers(0, 90, (40, 40, 3))
        pixels[..., i % 3] += 150
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"{i}.png")
        rows.append(f"{i}.png,{i % 3}")
    (root / "colours.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_task_is_registered_once_and_its_metric_must_be_new(colour_task):
    assert get_task("colour") is colour_task and colour_task.drop_threshold == "max_colour_acc_drop"
    with pytest.raises(ConfigError, match="task 'colour' is already registered"):
        register_task(colour_task)
    listed = json.loads(CliRunner().invoke(cli, ["list", "--json"]).stdout)
    assert listed["tasks"]["colour"]["metric"] == "colour_acc" and listed["models"]["colour_net"]["task"] == "colour"


def test_a_registered_task_exports_evaluates_runs_gates_and_reports(colour_task, colours, tmp_path, data_root, val_dir):
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--target", "onnx", "--arch", "colour_net", "--weights", "random",
                                   "--out", str(tmp_path / "art"), "--parity-data", str(colours), "--json"])
    assert exported.exit_code == 0, exported.output
    artifact = json.loads(exported.stdout)["path"]
    assert json.loads((tmp_path / "art" / "colour_net_32.onnx.manifest.json").read_text())["task"] == "colour"
    evaluated = runner.invoke(cli, ["eval", artifact, "--data", str(colours), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["colour_acc"] == 100.0
    wrong = runner.invoke(cli, ["eval", artifact, "--data", str(val_dir)])
    assert wrong.exit_code == 2 and "a classification data set" in wrong.stderr and "a colour model" in wrong.stderr

    recipe = tmp_path / "colour.yaml"
    recipe.write_text(f"name: colour\nmodel: {{arch: colour_net, weights: random}}\nevaluation: {{data: {colours}}}\n"
                      "bench: {runs: 5, warmup: 1, threads: 1}\nthresholds: {max_colour_acc_drop: 0.0, min_agreement: 100}\n"
                      "targets: {onnx: {}}\n")
    run = runner.invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "run"), "--json"])
    assert run.exit_code == 0, run.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    onnx = results["targets"]["onnx"]["accuracy"]
    assert results["task"] == "colour" and onnx["colour_acc"] == 100.0 and onnx["colour_acc_drop"] == 0.0
    assert onnx["paired"]["test"] == "McNemar" and onnx["agreement_interval"]["estimate"] == 100.0
    gate = runner.invoke(cli, ["gate", str(recipe), "--results", str(tmp_path / "run" / "results.json"), "--json"])
    assert gate.exit_code == 0, gate.output
    assert {c["name"] for c in json.loads(gate.stdout)["checks"]} == {"colour_acc_drop", "agreement"}
    assert "<th>colour accuracy %</th>" in (tmp_path / "run" / "report.html").read_text()
    # Another task's metric threshold is refused, with the line.
    recipe.write_text(recipe.read_text().replace("max_colour_acc_drop", "max_top1_drop"))
    refused = runner.invoke(cli, ["gate", str(recipe), "--results", str(tmp_path / "run" / "results.json")])
    assert refused.exit_code == 2 and "colour.yaml:5: thresholds.max_top1_drop: does not apply to colour_net" \
        in refused.stderr
