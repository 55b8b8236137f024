"""Every registered model family keeps one contract, so a new family is tested by registering it: its config
(defaults, validation, round trips through ``Architecture`` and the manifest), its row in ``edgedeploy list``,
a random-weight model whose output has its task's layout and the class count asked for, and an ONNX export
that passes parity and records the family.

The contract is a set of functions of a family name (``CONTRACT``): the tests below run them for every
registered family, and ``test_a_registered_family_keeps_the_contract`` for a throw-away one registered for
the test. Models are small (each family's smallest valid size, found from its config) with random weights."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.exporter.pipeline import export
from edgedeploy.exporter.request import ExportRequest
from edgedeploy.exporter.targets import get_target
from edgedeploy.models import (
    COMMON_FIELDS,
    MODELS,
    NAMED_WEIGHTS,
    ModelConfig,
    ModelFamily,
    config_options,
    get_model,
    list_models,
    register_model,
)
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.tasks import TASKS, get_task

# The class count the runner check asks for (not a default of either built-in family: it must flow through).
CLASSES = 7


def smallest_config(name: str) -> ModelConfig:
    """The family's smallest valid model: the MIN_WIDTH and MIN_RESOLUTION its config module declares (the
    first resolution from there up that its config accepts); the default for what it does not declare."""
    family = get_model(name)
    default = family.make_config()
    module = sys.modules[type(default).__module__]
    values = {}
    if getattr(module, "MIN_WIDTH", None) is not None:
        values["width"] = float(module.MIN_WIDTH)
    low = getattr(module, "MIN_RESOLUTION", None)
    for resolution in range(low, default.resolution + 1) if low is not None else ():
        try:
            return family.make_config(**values, resolution=resolution)
        except ConfigError:
            continue
    try:
        return family.make_config(**values)
    except ConfigError:
        return default


def architecture(config: ModelConfig, **changes) -> Architecture:
    return dataclasses.replace(Architecture.of(config), **changes)


def check_config(name: str, out_dir: Path | None = None) -> None:
    """Defaults, validation, options and weight rows; the config round-trips through its values and
    through Architecture (what LoadOptions carries)."""
    family = get_model(name)
    assert family.name == name and name in list_models()
    get_task(family.task)  # its task is registered
    default = family.make_config()
    assert dataclasses.is_dataclass(default) and default.arch == name
    fields = {f.name for f in dataclasses.fields(default)}
    assert set(COMMON_FIELDS) <= fields
    assert isinstance(default.width, float) and isinstance(default.resolution, int)
    assert isinstance(default.num_classes, int) and default.num_classes >= 1
    # Frozen: configs key caches and manifests, and travel to sweep workers.
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.resolution = default.resolution + 1  # type: ignore[misc]
    # The artifact stem: the family's name first, a file name, and different for another size.
    assert isinstance(default.name, str) and default.name.startswith(name) and "/" not in default.name

    small = smallest_config(name)
    for config in (default, small):
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        assert family.make_config(**values) == config
        assert Architecture.of(config).config() == config
        assert set(config_options(config)) == fields - set(COMMON_FIELDS)
    assert small.width <= default.width and small.resolution <= default.resolution
    if (small.width, small.resolution) != (default.width, default.resolution):
        assert small.name != default.name

    with pytest.raises(ConfigError, match=f"{name} has no option no_such_option"):
        family.make_config(no_such_option=1)
    with pytest.raises(ConfigError):
        family.make_config(num_classes=0)

    assert family.default_weights == (family.weights[0].name if family.weights else "random")
    for weights in family.weights:
        assert weights.name in NAMED_WEIGHTS and family.named_weights(weights.name) is weights
        assert len(weights.mean) == len(weights.std) == 3 and all(s > 0 for s in weights.std)
        assert (weights.data_file is None) != (weights.url is None), f"{weights.name}: a data file or a URL"
    with pytest.raises(ConfigError, match=f"{name} has no 'no-such' weights"):
        family.named_weights("no-such")


def check_listed(name: str, out_dir: Path | None = None) -> None:
    """``edgedeploy list --json`` lists the family with its task, weights and description."""
    family = get_model(name)
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["models"][name] == {"task": family.task, "weights": [w.name for w in family.weights],
                                      "description": family.description}
    assert family.task in listed["tasks"]


def check_runner(name: str, out_dir: Path | None = None) -> None:
    """A random-weight model through the torch runner: its IO is its task's, its output has the task's layout
    and the class count asked for, the task's accumulator reads it, and random weights are seeded."""
    family = get_model(name)
    task = get_task(family.task)
    small = smallest_config(name)
    r = small.resolution
    options = LoadOptions(architecture=architecture(small, num_classes=CLASSES))
    runner = load_runner("random", options, runtime="torch")
    assert runner.runtime == "torch" and runner.config == dataclasses.replace(small, num_classes=CLASSES)
    io = runner.io
    assert io.task == family.task and io.output.layout == task.output_layout
    assert tuple(io.input.shape) == (1, 3, r, r)

    images = np.random.default_rng(0).standard_normal((2, r, r, 3)).astype(np.float32)
    raw = runner.infer(io.input.feed(images))
    assert list(raw) == list(io.output_names)
    scores = runner.predict(images)
    for spec in io.outputs:
        values, read = raw[spec.name], (scores[spec.name] if io.more_outputs else scores)
        assert values.shape[0] == read.shape[0] == 2 and np.isfinite(read).all()
        if spec.layout is None:
            assert values.shape == (2, CLASSES) and read.ndim == 2
        elif spec.layout == "tensor":  # a detector's per-anchor rows, the background slot dropped on reading
            assert values.shape[-1] == spec.num_classes + spec.background_class == read.shape[-1] + spec.background_class
        else:
            assert values.ndim == read.ndim == 4 and values.shape[spec.layout.index("C")] == CLASSES, values.shape
        assert read.shape[-1] == spec.num_classes
    assert io.output.num_classes == (4 if io.more_outputs else CLASSES)

    acc = task.accumulator().bind(io)
    blank = Image.new("RGB", (r, r))
    reference = {k: v.copy() for k, v in scores.items()} if io.more_outputs else scores.copy()
    acc.update(scores, [LabeledImage(Path(f"{i}.png"), None, blank) for i in range(2)], reference=reference)
    # A random detector may find nothing confident to agree on (agreement None); nothing else may differ.
    assert acc.n == 2 and acc.result(0, 0.0, True).agreement in ((100.0, None) if io.more_outputs else (100.0,))
    assert acc.result(0, 0.0, True).max_abs_diff == 0.0

    again = load_runner("random", options, runtime="torch").predict(images)
    for name, values in (again.items() if io.more_outputs else [("", again)]):
        assert np.array_equal(values, scores[name] if io.more_outputs else scores), "random weights must be seeded"


def check_onnx_export(name: str, out_dir: Path) -> None:
    """An ONNX export of the smallest random model passes parity, its manifest records the family (the model
    record gives the config back), and it loads as users load it with PyTorch's output."""
    family = get_model(name)
    task = get_task(family.task)
    small = smallest_config(name)
    result = export(ExportRequest(target="onnx", config=small, weights="random", out_dir=out_dir, parity_images=2,
                                  threads=1))
    assert result.path == out_dir / get_target("onnx").artifact_name(small.name) and result.path.is_file()
    parity = result.parity
    # A pixel whose two best classes tie within float rounding may flip (1 of 8,192 for a seeded mmseg head at
    # 64 px): the logits' difference is what must be tiny.
    assert parity["images"] == 2 and parity["agreement"] >= 99.9
    assert parity["max_abs_diff"] <= parity["max_abs_diff_allowed"]

    manifest = json.loads(result.manifest.read_text())
    record = manifest["model"]
    assert record["arch"] == name and manifest["task"] == family.task
    assert (record["width"], record["resolution"], record["num_classes"]) == \
        (small.width, small.resolution, small.num_classes)
    assert manifest["output"]["layout"] == task.output_layout
    # A detector's first output is its box encodings; its class scores come last.
    classes = manifest.get("more_outputs", [manifest["output"]])[-1]
    assert classes["num_classes"] == small.num_classes
    own = config_options(small)
    assert {k: record[k] for k in own} == own
    recorded = Architecture(record["arch"], record["width"], record["resolution"], record["num_classes"],
                            tuple(sorted((k, record[k]) for k in own)))
    assert recorded.config() == small

    onnx = load_runner(str(result.path), LoadOptions())
    torch = load_runner("random", LoadOptions(architecture=Architecture.of(small)), runtime="torch")
    assert onnx.io.task == family.task and onnx.io.output.layout == task.output_layout
    images = np.random.default_rng(1).standard_normal((1, small.resolution, small.resolution, 3)).astype(np.float32)
    expected = torch.predict(images)
    got = onnx.predict(images)
    assert onnx.io.output_names == torch.io.output_names
    for name in onnx.io.output_names:  # every output by name (a detector's boxes and class scores)
        mine, theirs = (got[name], expected[name]) if onnx.io.more_outputs else (got, expected)
        assert mine.shape == theirs.shape
        # Relative to the output's scale: random-weight logits can be tiny, under any absolute tolerance.
        np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-3 * float(np.abs(theirs).max()))


CONTRACT = (check_config, check_listed, check_runner, check_onnx_export)


@pytest.mark.parametrize("name", list(MODELS))
def test_config_defaults_validation_and_round_trips(name):
    check_config(name)


@pytest.mark.parametrize("name", list(MODELS))
def test_listed_by_edgedeploy_list(name):
    check_listed(name)


@pytest.mark.parametrize("name", list(MODELS))
def test_random_model_output_has_the_task_layout_and_class_count(name):
    check_runner(name)


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_export_passes_parity_and_records_the_family(name, tmp_path):
    check_onnx_export(name, tmp_path)


def test_smallest_config_comes_from_the_family_config():
    """The sizes the contract runs at: each config module's own minimum (mobilenet_v2's, a multiple of 32)."""
    from edgedeploy.models.mobilenet_v2 import config as mobilenet

    small = smallest_config("mobilenet_v2")
    assert (small.width, small.resolution) == (mobilenet.MIN_WIDTH, mobilenet.MIN_RESOLUTION)


# A throw-away family, modelled on the built-in ones: a torch-free config module declaring its limits and
# validating them, and a network whose output is a score per class or, for a dense task, a score map per class.
PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from edgedeploy.core.errors import ConfigError

MIN_WIDTH, MAX_WIDTH = 0.25, 2.0
# Multiples of 8 only: the smallest valid size is 16, not MIN_RESOLUTION itself.
MIN_RESOLUTION, RESOLUTION_STEP = 12, 8
LAYOUT = {layout!r}


@dataclass(frozen=True)
class ThrowawayConfig:
    arch: ClassVar[str] = {name!r}
    width: float = 1.0
    resolution: int = 32
    num_classes: int = 5
    hidden: int = 4

    def __post_init__(self):
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ConfigError(f"width multiplier {{self.width}} is outside [{{MIN_WIDTH}}, {{MAX_WIDTH}}]")
        if self.resolution < MIN_RESOLUTION or self.resolution % RESOLUTION_STEP:
            raise ConfigError(f"input resolution {{self.resolution}} must be a multiple of {{RESOLUTION_STEP}}")
        if self.num_classes < 1:
            raise ConfigError(f"class count must be positive, got {{self.num_classes}}")

    @property
    def name(self):
        return f"{name}_{{self.width}}_{{self.resolution}}"


class ThrowawayNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        channels = max(1, int(config.hidden * config.width))
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, 2, 1), nn.ReLU())
        self.head = nn.Conv2d(channels, config.num_classes, 1)

    def forward(self, x):
        y = self.head(self.features(x))
        if LAYOUT is None:
            return y.mean((2, 3))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y if LAYOUT == "NCHW" else y.permute(0, 2, 3, 1)
'''


@pytest.fixture()
def register(tmp_path, monkeypatch):
    """``register(task)``: a throw-away family of that task, registered for one test and removed afterwards."""
    added: list[tuple[str, str]] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def add(task: str) -> ModelFamily:
        name = f"throwaway_{re.sub(r'[^a-z0-9]', '_', task.lower())}"
        module = f"{name}_plugin"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(
            name=name, layout=get_task(task).output_layout)))
        family = register_model(ModelFamily(name, f"throw-away {task} family", f"{module}:ThrowawayConfig",
                                            f"{module}:ThrowawayNet", task=task))
        added.append((name, module))
        return family

    yield add
    for name, module in added:
        del MODELS[name]
        sys.modules.pop(module, None)


# The throw-away network has one output; a detector's several outputs are covered by ssd_mobilenet_v1 above.
@pytest.mark.parametrize("task", [t for t in TASKS if get_task(t).output_layout != "tensor"])
def test_a_registered_family_keeps_the_contract(register, task, tmp_path):
    family = register(task)
    # What the parametrised tests above read at collection: a family registered by then is tested by them.
    assert family.name in list(MODELS) and get_model(family.name) is family
    assert smallest_config(family.name).resolution == 16 and smallest_config(family.name).width == 0.25
    for check in CONTRACT:
        check(family.name, tmp_path / check.__name__)


def test_a_removed_family_is_gone():
    assert not [name for name in MODELS if name.startswith("throwaway_")]
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert not [name for name in json.loads(result.stdout)["models"] if name.startswith("throwaway_")]
