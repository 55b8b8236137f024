"""Adding a model family is one registry row: a toy CNN, registered from a plugin module, is listed,
accepted by `--arch` and by a recipe's `model.arch`, and exports to ONNX with parity checked,
with no other module edited."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.models import MODELS, ModelFamily, get_model, list_models, register_model

PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

from torch import nn


@dataclass(frozen=True)
class TinyConfig:
    arch: ClassVar[str] = "tiny_cnn"
    width: float = 1.0
    resolution: int = 64
    num_classes: int = 1000

    @property
    def name(self) -> str:
        return f"tiny_cnn_{self.width}_{self.resolution}"


class TinyCNN(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        channels = int(16 * config.width)
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, 2, 1), nn.ReLU())
        self.classifier = nn.Linear(channels, config.num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))
'''


@pytest.fixture()
def tiny_cnn(tmp_path, monkeypatch):
    (tmp_path / "tiny_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    family = register_model(ModelFamily("tiny_cnn", "a two-layer toy CNN", "tiny_plugin:TinyConfig",
                                        "tiny_plugin:TinyCNN"))
    yield family
    del MODELS["tiny_cnn"]
    sys.modules.pop("tiny_plugin", None)


def test_registry_queries():
    assert list_models() == ["mobilenet_v2", "deeplabv3_mobilenet_v2", "ssd_mobilenet_v1", "ssdlite_mobilenet_v2",
                             "fcn_mobilenet_v2", "pspnet_mobilenet_v2", "deeplabv3_aspp_mobilenet_v2",
                             "deeplabv3plus_mobilenet_v2"]
    assert list_models("deeplab*") == ["deeplabv3_mobilenet_v2", "deeplabv3_aspp_mobilenet_v2",
                                       "deeplabv3plus_mobilenet_v2"]
    assert list_models("mobile*") == ["mobilenet_v2"] and list_models("ssd*") == ["ssd_mobilenet_v1", "ssdlite_mobilenet_v2"]
    assert list_models("x*") == []
    assert get_model("mobilenet_v2").make_config(width=0.5).name == "mobilenet_v2_0.5_224"
    assert get_model("deeplabv3_mobilenet_v2").make_config(output_stride=16).name == "deeplabv3_mobilenet_v2_0.5_257_os16"
    with pytest.raises(ConfigError, match="unknown model 'resnet'; known models: mobilenet_v2, deeplabv3_mobilenet_v2, "
                                          "ssd_mobilenet_v1, ssdlite_mobilenet_v2, fcn_mobilenet_v2"):
        get_model("resnet")


def test_family_options_are_checked_against_the_config():
    with pytest.raises(ConfigError, match="mobilenet_v2 has no option output_stride .its options: channels, dropout"):
        get_model("mobilenet_v2").make_config(output_stride=16)
    with pytest.raises(ConfigError, match="output stride 32 is not one of 8, 16"):
        get_model("deeplabv3_mobilenet_v2").make_config(output_stride=32)
    with pytest.raises(ConfigError, match="deeplabv3_mobilenet_v2 has no 'imagenet' weights .it has: sample, random"):
        get_model("deeplabv3_mobilenet_v2").named_weights("imagenet")


def test_a_registered_family_is_listed_and_exports(tiny_cnn, tmp_path, data_root):
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["list", "--json"]).stdout)
    assert listed["models"]["tiny_cnn"] == {"description": "a two-layer toy CNN", "task": "classification",
                                            "weights": []}
    result = runner.invoke(cli, ["export", "--target", "onnx", "--arch", "tiny_cnn", "--weights", "random",
                                 "--resolution", "64", "--out", str(tmp_path), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["path"].endswith("tiny_cnn_1.0_64.onnx") and out["parity"]["max_abs_diff"] < 1e-3
    manifest = json.loads((tmp_path / "tiny_cnn_1.0_64.onnx.manifest.json").read_text())
    assert manifest["model"]["arch"] == "tiny_cnn" and manifest["model"]["params"] == 3 * 16 * 9 + 16 + 16 * 1000 + 1000
    inspected = runner.invoke(cli, ["inspect", "random", "--arch", "tiny_cnn", "--resolution", "64", "--json"])
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["arch"] == "tiny_cnn", inspected.output


def test_a_registered_family_is_accepted_by_a_recipe(tiny_cnn, tmp_path):
    from edgedeploy.recipes.schema import load_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("name: tiny\nmodel: {arch: tiny_cnn, resolution: 64, weights: random}\n"
                      "evaluation: {data: val}\ntargets: {onnx: {}}\n")
    assert load_recipe(recipe).config.name == "tiny_cnn_1.0_64"
    recipe.write_text(recipe.read_text().replace("tiny_cnn", "resnet"))
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        load_recipe(recipe)
