"""The PTQ methods on a small real MobileNetV2: BN folding and equalization keep the function exactly (ReLU6
kept as a per-channel clamp), equalization evens the channel ranges, learned rounding lands on the converters'
grid with each channel's largest weight at 127 steps, bias correction removes the rounding's mean shift, and
the prepared model is cached by content."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.choices import PtqMethod
from edgedeploy.exporter.ptq import check_calibration, prepare, resolve_methods
from edgedeploy.exporter.ptq.adaround import adaround
from edgedeploy.exporter.ptq.bias_correction import correct_biases
from edgedeploy.exporter.ptq.cle import ChannelClamp, equalize
from edgedeploy.exporter.ptq.graph import fold_batch_norms, run_to, weighted_layers
from edgedeploy.exporter.ptq.grid import QMAX, fake_quantize, scales
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.models.weights import build_model


@pytest.fixture(scope="module")
def model():
    """A small MobileNetV2 with random weights and BatchNorm statistics that are not the identity."""
    net, _ = build_model(MobileNetV2Config(width=0.35, resolution=96, num_classes=10), "random")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(24, 96, 96, 3)).astype(np.float32)


def outputs(net, images):
    with torch.inference_mode():
        return net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))


def test_folding_and_equalization_keep_the_function(model, images):
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    reference = outputs(model, images)
    assert torch.allclose(outputs(folded, images), reference, atol=1e-4)
    equalized = copy.deepcopy(folded)
    details = equalize(equalized)
    assert details["pairs"] == 36 and details["relu6_clamped"] == 34
    assert sum(isinstance(m, ChannelClamp) for m in equalized.modules()) == 34
    assert torch.allclose(outputs(equalized, images), reference, atol=1e-3)


def test_equalization_evens_the_depthwise_channel_ranges(model):
    folded = fold_batch_norms(model)
    equalized = copy.deepcopy(folded)
    equalize(equalized)

    def spread(net):
        dw = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        ranges = [m.weight.detach().abs().amax(dim=(1, 2, 3)) for m in dw]
        return float(np.median([float(r.max() / r.min()) for r in ranges]))

    assert spread(equalized) < spread(folded) / 2


def test_grid_is_max_over_127_and_idempotent():
    w = torch.tensor([[0.5, -1.27, 0.3], [0.02, 0.01, -0.04]])
    s = scales(w, per_channel=True)
    assert torch.allclose(s.flatten(), torch.tensor([0.01, 0.04 / 127]))
    q = fake_quantize(w, per_channel=True)
    assert torch.equal(fake_quantize(q, per_channel=True), q)


def test_learned_rounding_lands_on_the_grid_and_beats_nearest(model, images):
    folded = fold_batch_norms(model)
    rounded = copy.deepcopy(folded)
    details = adaround(rounded, images, per_channel=True)
    assert details["layers"] == len(weighted_layers(folded)) == 53
    nearest = copy.deepcopy(folded)
    with torch.no_grad():
        for (_, layer), (_, source) in zip(weighted_layers(nearest), weighted_layers(folded)):
            layer.weight.copy_(fake_quantize(source.weight, per_channel=True))
    flips = 0
    for (name, layer), (_, source) in zip(weighted_layers(rounded), weighted_layers(folded)):
        scale = scales(source.weight.detach(), per_channel=True)
        steps = layer.weight.detach() / scale
        assert torch.allclose(steps, steps.round(), atol=1e-3), name
        largest = steps.abs().amax(dim=tuple(range(1, steps.dim())))
        assert torch.all((largest.round() == QMAX) | (largest == 0)), name
        # Every weight rounds up or down from where it was: never further.
        assert torch.all((steps - source.weight.detach() / scale).abs() < 1 + 1e-3), name
        flips += int((steps.round() != (source.weight.detach() / scale).round()).sum())
    assert flips > 0
    float_out = outputs(folded, images)
    assert ((outputs(rounded, images) - float_out) ** 2).mean() < ((outputs(nearest, images) - float_out) ** 2).mean()


def test_bias_correction_removes_the_rounding_mean_shift(model, images):
    folded = fold_batch_norms(model)
    corrected = copy.deepcopy(folded)
    correct_biases(corrected, images, per_channel=False)
    batch = torch.from_numpy(images[:16].transpose(0, 3, 1, 2).copy())
    name = weighted_layers(folded)[-1][0]  # the classifier: the shift every rounded layer before it added up
    float_mean = run_to(folded, name, batch)[1].mean(dim=0)
    with torch.no_grad():
        for (_, layer), (_, source) in zip(weighted_layers(corrected), weighted_layers(folded)):
            layer.weight.copy_(fake_quantize(source.weight, per_channel=False))
    fixed = run_to(corrected, name, batch)[1].mean(dim=0)
    plain = copy.deepcopy(folded)
    with torch.no_grad():
        for (_, layer), (_, source) in zip(weighted_layers(plain), weighted_layers(folded)):
            layer.weight.copy_(fake_quantize(source.weight, per_channel=False))
    shifted = run_to(plain, name, batch)[1].mean(dim=0)
    assert (fixed - float_mean).abs().max() < (shifted - float_mean).abs().max() / 3


def test_prepare_runs_in_order_and_is_cached(model, images):
    methods = resolve_methods(("bias-correction", "cle"), "tflite-int8", tuple(PtqMethod), ["tflite-int8"])
    assert methods == (PtqMethod.CLE, PtqMethod.BIAS_CORRECTION)
    first, details = prepare(model, methods, images, per_channel=False)
    assert details["methods"] == ["cle", "bias-correction"] and details["cached"] is False
    again, cached = prepare(model, methods, images, per_channel=False)
    assert cached["cached"] is True and cached["cle"] == details["cle"]
    assert torch.equal(outputs(first, images), outputs(again, images))


def test_bad_method_requests_are_one_line_usage_errors():
    with pytest.raises(ConfigError, match="unknown --ptq method 'gptq'; methods: cle, bias-correction, adaround"):
        resolve_methods(("gptq",), "tflite-int8", tuple(PtqMethod), ["tflite-int8"])
    with pytest.raises(ConfigError, match="--ptq does not apply to onnx .it quantizes nothing; it applies to tflite-int8"):
        resolve_methods(("cle",), "onnx", (), ["tflite-int8"])
    with pytest.raises(ConfigError, match="--ptq adaround needs at least 16 calibration images, got 8"):
        check_calibration((PtqMethod.ADAROUND,), 8)
    check_calibration((PtqMethod.CLE,), 0)  # data-free
