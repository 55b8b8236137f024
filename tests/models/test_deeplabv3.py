"""Mobile DeepLabv3: the architecture Google's model has, its .tflite read into the family's state_dict (the
mapping checked tensor by tensor), and PyTorch reproducing the .tflite itself on the 14 VOC images."""

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.core.errors import WeightsError
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.deeplabv3_mobilenet_v2.config import DeepLabV3MobileNetV2Config
from edgedeploy.models.deeplabv3_mobilenet_v2.network import DeepLabV3MobileNetV2
from edgedeploy.models.deeplabv3_mobilenet_v2.sample import read_tflite_state_dict, tflite_layer_names
from edgedeploy.models.weights import build_model

SAMPLE = "segmentation/deeplabv3_257_mv_gpu.tflite"


def _depthwise(model):
    return [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]


def test_width_05_stride_8_is_googles_architecture():
    model = DeepLabV3MobileNetV2().eval()
    # Google's graph: stem 16, bottlenecks 8, 12, 16, 32, 48, 80, 160 (DeepLab rounds width 0.5 to no divisor).
    outs = [block.out_channels for block in list(model.backbone)[1:]]
    assert model.backbone[0][0].out_channels == 16
    assert sorted(set(outs), key=outs.index) == [8, 12, 16, 32, 48, 80, 160]
    # 17 depthwise convolutions: 7 at dilation 1, 7 at 2, 3 at 4 (the stride-2 block keeps the old rate).
    dilations = [m.dilation[0] for m in _depthwise(model)]
    assert dilations == [1] * 7 + [2] * 7 + [4] * 3
    assert [m.padding[0] for m in _depthwise(model)] == dilations
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 38 + 17 and model.logits.out_channels == 21
    with torch.inference_mode():
        features = model.backbone(torch.zeros(1, 3, 257, 257))
        assert features.shape == (1, 160, 33, 33)
        assert model(torch.zeros(1, 3, 257, 257)).shape == (1, 21, 257, 257)


@pytest.mark.parametrize("config, features, logits", [
    (DeepLabV3MobileNetV2Config(output_stride=16), (1, 160, 17, 17), (1, 21, 257, 257)),
    (DeepLabV3MobileNetV2Config(width=1.0, resolution=129, num_classes=5), (1, 320, 17, 17), (1, 5, 129, 129)),
])
def test_stride_16_width_class_count_and_input_size(config, features, logits):
    model = DeepLabV3MobileNetV2(config).eval()
    size = config.resolution
    with torch.inference_mode():
        assert model.backbone(torch.zeros(1, 3, size, size)).shape == features
        assert model(torch.zeros(1, 3, size, size)).shape == logits
    if config.output_stride == 16:
        assert [m.dilation[0] for m in _depthwise(model)] == [1] * 14 + [2] * 3


def test_the_tflite_mapping_copies_each_tensor_into_its_layer(data_root):
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    from ai_edge_litert.interpreter import Interpreter

    path = data_root / SAMPLE
    state = read_tflite_state_dict(path)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    tensors = {t["name"]: interpreter.get_tensor(t["index"]) for t in interpreter.get_tensor_details()
               if t["name"].endswith(("weights", "_bias"))}
    # Spot checks against the graph's own tensors, by name: the stem, a dilated depthwise, the classifier.
    stem = tensors["MobilenetV2/Conv/weights"]
    assert torch.equal(state["backbone.0.0.weight"], torch.from_numpy(stem.transpose(0, 3, 1, 2)))
    assert torch.equal(state["backbone.0.1.bias"], torch.from_numpy(tensors["MobilenetV2/Conv/Conv2D_bias"]))
    depthwise = tensors["MobilenetV2/expanded_conv_14/depthwise/depthwise_weights"]
    assert torch.equal(state["backbone.15.conv.1.0.weight"], torch.from_numpy(depthwise.transpose(3, 0, 1, 2)))
    assert torch.equal(state["logits.weight"], torch.from_numpy(tensors["logits/semantic/weights"].transpose(0, 3, 1, 2)))
    assert torch.equal(state["logits.bias"], torch.from_numpy(tensors["logits/semantic/Conv2D_bias"]))
    # Batch norm folded into the bias: identity statistics.
    assert torch.all(state["backbone.0.1.weight"] == 1) and torch.all(state["backbone.0.1.running_mean"] == 0)
    names = tflite_layer_names(DeepLabV3MobileNetV2())
    assert names["backbone.1.conv.0.0"] == "MobilenetV2/expanded_conv/depthwise/"
    assert names["backbone.17.conv.2"] == "MobilenetV2/expanded_conv_16/project/"
    assert names["concat_projection.0"] == "concat_projection/"


def test_google_weights_do_not_fit_another_architecture(data_root):
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    with pytest.raises(WeightsError, match=r"MobilenetV2/Conv/weights has shape \[16, 3, 3, 3\], backbone.0.0 needs "
                                           r"\[32, 3, 3, 3\]: not deeplabv3_mobilenet_v2_1.0_257_os8"):
        read_tflite_state_dict(data_root / SAMPLE, DeepLabV3MobileNetV2Config(width=1.0))
    # The architecture's own knobs that do not change a tensor load them (stride 16, another input size).
    model, loaded = build_model(DeepLabV3MobileNetV2Config(output_stride=16, resolution=513), "sample")
    assert loaded.sha256.startswith("68a539782c2c") and loaded.mean == (0.5, 0.5, 0.5)


def test_a_changed_tflite_is_refused_by_its_digest(data_root, tmp_path, monkeypatch):
    copy = tmp_path / "data"
    (copy / "segmentation").mkdir(parents=True)
    (copy / "mobilenet_v2_imagenet.pth").symlink_to(data_root / "mobilenet_v2_imagenet.pth")
    blob = bytearray((data_root / SAMPLE).read_bytes())
    blob[-1] ^= 0xFF
    (copy / SAMPLE).write_bytes(bytes(blob))
    monkeypatch.setenv("EDGEDEPLOY_DATA", str(copy))
    with pytest.raises(WeightsError, match="is not the deeplabv3_mobilenet_v2 sample weights'"):
        build_model(DeepLabV3MobileNetV2Config(), "sample")


def test_pytorch_reproduces_googles_tflite_on_the_voc_images(data_root):
    """The port equals Google's model: logits max |diff| <= 1e-3, >= 99.9% of pixels agree, and the same mIoU
    (within 0.001) under the same evaluation (the shared README's reference figures: 0.9551, 0.6707)."""
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    from ai_edge_litert.interpreter import Interpreter

    from edgedeploy.data.preprocess import preprocess
    from edgedeploy.runtimes import LoadOptions, load_runner
    from edgedeploy.tasks import get_task

    task = get_task("segmentation")
    dataset = task.open_dataset(data_root / "segmentation" / "voc-samples")
    torch_runner = load_runner("sample", LoadOptions(threads=2, architecture=Architecture(arch="deeplabv3_mobilenet_v2")))
    interpreter = Interpreter(model_path=str(data_root / SAMPLE), num_threads=2)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    ours, google = task.accumulator(), task.accumulator()
    worst, agree, pixels = 0.0, 0, 0
    for item in dataset:
        x = preprocess(item.image, torch_runner.io.preprocessing)[None]
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        reference = interpreter.get_tensor(out["index"])
        scores = torch_runner.predict(x)
        worst = max(worst, float(np.abs(scores - reference).max()))
        agree += int((scores.argmax(-1) == reference.argmax(-1)).sum())
        pixels += reference[..., 0].size
        ours.update(scores, [item])
        google.update(reference, [item])
    assert ours.n == 14 and worst <= 1e-3 and agree / pixels >= 0.999
    mine, theirs = ours.metrics(False), google.metrics(False)
    assert abs(mine["miou"] - theirs["miou"]) <= 0.1  # points: 0.001 as a fraction
    assert theirs["miou"] == pytest.approx(67.07, abs=0.005) and theirs["pixel_accuracy"] == pytest.approx(95.51, abs=0.005)
    assert theirs["classes"] == 12
