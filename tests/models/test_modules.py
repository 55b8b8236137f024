"""A user's nn.Module as a model family: the probe, the factory errors, the weights it brings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from edgedeploy.core.errors import ConfigError, UserCodeError, WeightsError
from edgedeploy.models import get_model, model_task
from edgedeploy.models.modules import INSTANCE_FAMILIES, input_resolution, module_family
from edgedeploy.models.weights import build_model, weights_fingerprint

HERE = Path(__file__).parent
REAL_EXIT = os._exit


@pytest.fixture(autouse=True)
def user_modules_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def test_factory_becomes_a_family_with_the_probed_task_and_classes() -> None:
    family = get_model("user_modules:tiny_cnn")
    config = family.make_config(resolution=48)
    assert (config.arch, config.resolution, config.num_classes, config.task) == ("user_modules:tiny_cnn", 48, 10,
                                                                                 "classification")
    assert model_task(config) == "classification" and config.name == "tiny_cnn_48"
    model, loaded = build_model(config, "module")
    assert loaded is not None and loaded.source == "module" and loaded.path is None
    # The manifest's sha256 is the parameters' digest: the same factory gives the same digest.
    assert loaded.sha256 == weights_fingerprint("module", config.arch)
    assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 10)


def test_dense_output_at_input_size_is_segmentation() -> None:
    class Dense(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, torch.ones(5, 3, 1, 1))

    config = INSTANCE_FAMILIES.family_of(Dense()).make_config(resolution=32)
    assert (config.task, config.num_classes) == ("segmentation", 5)


@pytest.mark.parametrize(("entry", "error", "message"), [
    ("user_modules:needs_arguments", ConfigError, "the factory needs arguments"),
    # The user's own code failing is exit 4 (UserCodeError), naming their callable.
    ("user_modules:raises", UserCodeError,
     "user_modules:raises: the factory raised RuntimeError: checkpoint server unreachable"),
    ("user_modules:exits", UserCodeError, "user_modules:exits: the factory called exit(0)"),
    ("user_modules:hard_exit", UserCodeError, "user_modules:hard_exit: the factory called os._exit(0)"),
    ("user_modules:exits_in_forward", UserCodeError,
     "user_modules:exits_in_forward: forward on a 1x3x32x32 input called exit('bye')"),
    ("user_modules:not_a_module", ConfigError, "the factory returned a dict, not a torch.nn.Module"),
    ("user_modules:two_outputs", ConfigError, "forward returned 2 outputs; a model with several outputs is read by "
                                              "the detection task, which needs the module's detection_parameters"),
    ("user_modules:missing", ConfigError, "user_modules has no 'missing'"),
    ("no_such_package.models:net", ConfigError, "cannot import no_such_package.models (ModuleNotFoundError"),
])
def test_factory_problems_are_one_line_errors(entry: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        module_family(entry).make_config(resolution=32)
    assert "\n" not in str(info.value)
    assert os._exit is REAL_EXIT  # the guard is lifted after the contained call


def test_module_options_are_checked() -> None:
    family = module_family("user_modules:tiny_cnn")
    with pytest.raises(ConfigError, match="give the input size"):
        family.make_config()
    with pytest.raises(ConfigError, match="--width does not apply"):
        family.make_config(resolution=32, width=0.5)
    with pytest.raises(ConfigError, match="outputs 10 classes, not 3"):
        family.make_config(resolution=32, num_classes=3)
    with pytest.raises(ConfigError, match="expected package.module:callable"):
        get_model("not a:valid entry")
    with pytest.raises(WeightsError, match="registered family"):
        build_model(get_model("mobilenet_v2").make_config(), "module")


@pytest.mark.parametrize(("shape", "message"), [
    ((3, 224, 224), "rank 3"), ((1, 1, 32, 32), "batch 1 and 3 channels"), ((1, 3, 32, 48), "square image"),
])
def test_example_input_shape_problems(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        input_resolution(shape)


def test_instance_family_copies_the_module_and_names_it_by_its_parameters() -> None:
    from user_modules import TinyCNN

    torch.manual_seed(0)
    net = TinyCNN()
    family = INSTANCE_FAMILIES.family_of(net)
    built = family.build()
    assert built is not net and family.name.startswith("module:TinyCNN@")
    with torch.no_grad():
        built.head.bias.add_(1.0)  # a change to the copy ...
        assert not torch.equal(built.head.bias, net.head.bias)  # ... never reaches the caller's module
        net.head.bias.add_(1.0)
    assert INSTANCE_FAMILIES.family_of(net).name != family.name  # other parameters, another family


def test_a_users_detector_with_two_heads_exports_to_onnx_and_tflite(tmp_path: Path) -> None:
    """A module whose forward returns a dict of tensors, with its post-processing declared: probed as a detector,
    exported with both outputs named, parity per output, and evaluated through its own declared head."""
    from edgedeploy.api import export
    from edgedeploy.runtimes import LoadOptions, load_runner

    family = get_model("user_modules:tiny_detector")
    config = family.make_config(resolution=64)
    assert (config.task, config.num_classes) == ("detection", 3)
    for target in ("onnx", "tflite-fp32"):
        result = export("user_modules:tiny_detector", target, input_shape=(1, 3, 64, 64), out=tmp_path,
                        parity_images=4)
        assert set(result.parity["outputs"]) == {"box_encodings", "class_logits"}
        assert all(d["max_abs_diff"] <= result.parity["max_abs_diff_allowed"] for d in result.parity["outputs"].values())
        runner = load_runner(str(result.path), LoadOptions())
        assert runner.io.output_names == ("box_encodings", "class_logits")
        assert runner.io.extra["detection"]["labels"] == "contiguous"
        outputs = runner.predict(torch.rand(2, 64, 64, 3).numpy())
        assert outputs["box_encodings"].shape[0] == 2 and outputs["class_logits"].shape[-1] == 3
