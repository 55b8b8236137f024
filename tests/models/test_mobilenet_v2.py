import pytest
import torch

from edgedeploy.core.errors import ConfigError
from edgedeploy.models.complexity import measure_complexity
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.models.mobilenet_v2.network import InvertedResidual, MobileNetV2, make_divisible

# Shapes of torchvision.models.mobilenet_v2() (1.0, 1000 classes), read from its state_dict.
TORCHVISION_SHAPES = {
    "features.0.0.weight": (32, 3, 3, 3),
    "features.0.1.running_var": (32,),
    "features.1.conv.0.0.weight": (32, 1, 3, 3),
    "features.1.conv.1.weight": (16, 32, 1, 1),
    "features.1.conv.2.bias": (16,),
    "features.2.conv.0.0.weight": (96, 16, 1, 1),
    "features.2.conv.1.0.weight": (96, 1, 3, 3),
    "features.2.conv.2.weight": (24, 96, 1, 1),
    "features.2.conv.3.weight": (24,),
    "features.17.conv.2.weight": (320, 960, 1, 1),
    "features.18.0.weight": (1280, 320, 1, 1),
    "classifier.1.weight": (1000, 1280),
    "classifier.1.bias": (1000,),
}
TORCHVISION_KEY_COUNT = 314


def test_state_dict_matches_torchvision_layout():
    state = MobileNetV2().state_dict()
    assert len(state) == TORCHVISION_KEY_COUNT
    for key, shape in TORCHVISION_SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_state_dict_keys_equal_the_sample_checkpoint(sample_weights):
    checkpoint = torch.load(sample_weights, weights_only=True)
    ours = MobileNetV2().state_dict()
    assert list(checkpoint) == list(ours)
    assert all(checkpoint[k].shape == ours[k].shape for k in ours)


# (width, resolution) -> MMACs and M params from the MobileNetV2 paper / TF-slim table
# (params there include a 1001-way classifier and differ by < 1%).
PUBLISHED = [
    (1.0, 224, 300, 3.47),
    (1.4, 224, 582, 6.06),
    (1.3, 224, 509, 5.34),
    (0.75, 224, 209, 2.61),
    (0.5, 224, 97, 1.95),
    (0.35, 224, 59, 1.66),
    (1.0, 192, 221, 3.47),
    (1.0, 160, 154, 3.47),
    (1.0, 128, 99, 3.47),
    (1.0, 96, 56, 3.47),
    (0.75, 160, 107, 2.61),
    (0.5, 160, 50, 1.95),
    (0.35, 96, 11, 1.66),
]


@pytest.mark.parametrize("width,resolution,mmacs,mparams", PUBLISHED)
def test_macs_and_params_match_the_paper(width, resolution, mmacs, mparams):
    c = measure_complexity(MobileNetV2(MobileNetV2Config(width=width, resolution=resolution)), resolution)
    assert c.macs / 1e6 == pytest.approx(mmacs, abs=1.0)
    assert c.params / 1e6 == pytest.approx(mparams, rel=0.02)


def test_exact_counts_for_1_0_224():
    c = measure_complexity(MobileNetV2(), 224)
    assert c.params == 3_504_872  # torchvision's documented figure
    assert c.macs == 300_774_272


def test_residual_only_when_stride_one_and_channels_match():
    blocks = [m for m in MobileNetV2().modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    # Of 17 blocks, the first of each of the 7 stages changes shape: 10 residual connections.
    assert sum(b.use_residual for b in blocks) == 10


def test_make_divisible_rounds_like_the_reference():
    assert make_divisible(32 * 0.35) == 16
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(24 * 0.75) == 24  # 18 rounds up to 24: never lose more than 10%
    assert make_divisible(1280 * 1.4) == 1792


def test_output_shape_and_class_count():
    model = MobileNetV2(MobileNetV2Config(width=0.5, resolution=160, num_classes=10)).eval()
    assert model(torch.zeros(2, 3, 160, 160)).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"width": 0.3}, "width multiplier"),
        ({"width": 1.5}, "width multiplier"),
        ({"resolution": 100}, "multiple of 32"),
        ({"resolution": 544}, "multiple of 32"),
        ({"num_classes": 0}, "class count"),
    ],
)
def test_invalid_config_is_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MobileNetV2Config(**kwargs)
