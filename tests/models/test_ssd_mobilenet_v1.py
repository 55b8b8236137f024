"""SSD-MobileNetV1: the architecture Google's quantized COCO detector has, its .tflite read into the family's
state_dict (every tensor checked by name and shape), its anchors rebuilt by the Object Detection API's rule,
and PyTorch reproducing the .tflite's own raw heads on real COCO images (within the uint8 graph's noise)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.core.errors import ConfigError, WeightsError
from edgedeploy.models.ssd_mobilenet_v1.config import ANCHORS_PER_LOCATION, SSDMobileNetV1Config
from edgedeploy.models.ssd_mobilenet_v1.network import SSDMobileNetV1, same_padding
from edgedeploy.models.ssd_mobilenet_v1.sample import (
    read_postprocess_options,
    read_tflite_anchors,
    read_tflite_state_dict,
    tflite_layer_names,
)
from edgedeploy.tasks.detection.anchors import AnchorSpec, ssd_anchors

SAMPLE = "detection/ssd_mobilenet_v1_coco_quant.tflite"
COCO_IMAGES = "detection/coco-val2017/images"


@pytest.fixture(scope="module")
def tflite(data_root: Path) -> Path:
    path = data_root / SAMPLE
    if not path.is_file():
        pytest.skip(f"Google's SSD-MobileNetV1 .tflite not found at {path}")
    return path


@pytest.fixture(scope="module")
def state(tflite: Path) -> dict[str, torch.Tensor]:
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    return read_tflite_state_dict(tflite)


def test_width_075_is_googles_architecture():
    config = SSDMobileNetV1Config()
    model = SSDMobileNetV1(config).eval()
    assert config.name == "ssd_mobilenet_v1_0.75_300"
    assert config.backbone_channels() == (24, 48, 96, 96, 192, 192) + (384,) * 6 + (768, 768)
    assert config.extra_channels() == ((192, 384), (96, 192), (96, 192), (48, 96))
    assert config.feature_map_sizes() == (19, 10, 5, 3, 2, 1) and config.num_anchors == 1917
    # TF "SAME": the odd pixel of an even input goes after (300 -> 150 pads 0 before, 1 after).
    assert same_padding(300, 3, 2) == (0, 1) and same_padding(75, 3, 2) == (1, 1) and same_padding(19, 3, 1) == (1, 1)
    assert model.backbone[0].pad == (0, 1, 0, 1) and model.backbone[7].pad == (0, 0, 0, 0)
    assert model.backbone[7].conv.padding == (1, 1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 27 + 8 + 12 and sum(m.groups > 1 for m in convs) == 13
    with torch.inference_mode():
        maps = model.features(torch.zeros(1, 3, 300, 300))
        boxes, logits = model(torch.zeros(1, 3, 300, 300))
    assert [tuple(m.shape[1:]) for m in maps] == [(384, 19, 19), (768, 10, 10), (384, 5, 5), (192, 3, 3),
                                                  (192, 2, 2), (96, 1, 1)]
    assert boxes.shape == (1, 1917, 4) and logits.shape == (1, 1917, 91)


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0.1}, "width multiplier"), ({"resolution": 16}, "input resolution"), ({"num_classes": 0}, "class count"),
])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SSDMobileNetV1Config(**kwargs)


def test_other_sizes_and_onnx_export_with_a_free_batch(tmp_path):
    """Another input size and class count build their own static graph; it exports (TorchScript, opset 17) with
    no shape arithmetic, and ONNX Runtime runs it at another batch size with PyTorch's numbers."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    config = SSDMobileNetV1Config(width=0.5, resolution=160, num_classes=3)
    assert config.feature_map_sizes() == (10, 5, 3, 2, 1, 1) and config.num_anchors == 3 * 100 + 6 * 40
    model = SSDMobileNetV1(config).eval()
    path = tmp_path / "ssd.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 160, 160),), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["boxes", "logits"],
                      dynamic_axes={"x": {0: "n"}, "boxes": {0: "n"}, "logits": {0: "n"}})
    assert not {"Shape", "Gather", "NonZero"} & {n.op_type for n in onnx.load(str(path)).graph.node}
    x = torch.randn(3, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        boxes, logits = model(x)
    ort_boxes, ort_logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    assert ort_boxes.shape == (3, config.num_anchors, 4) and ort_logits.shape == (3, config.num_anchors, 4)
    assert np.abs(ort_boxes - boxes.numpy()).max() <= 1e-4 and np.abs(ort_logits - logits.numpy()).max() <= 1e-4


def test_the_reader_writes_every_tensor_of_the_network(tflite, state):
    from ai_edge_litert.interpreter import Interpreter

    model = SSDMobileNetV1()
    own = model.state_dict()
    assert list(state) == list(own) and all(state[k].shape == own[k].shape for k in own)
    model.load_state_dict(state, strict=True)
    # Each filter is a uint8 tensor dequantized: at most 256 values on its grid (a fresh init has thousands).
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            assert torch.unique(state[f"{name}.weight"]).numel() <= 256, name
    # Batch norm folded into the bias: identity statistics, the graph's bias as the BatchNorm's.
    assert torch.all(state["backbone.0.bn.weight"] == 1) and torch.all(state["backbone.0.bn.running_mean"] == 0)
    assert torch.count_nonzero(state["extras.3.1.bn.bias"]) > 0 and torch.count_nonzero(state["predictors.5.class_prediction.bias"]) > 0
    # Spot checks against the graph's own tensors, dequantized by LiteRT's reported scale and zero point.
    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}

    def weights(prefix: str) -> np.ndarray:
        d = details[prefix + "weights_quant/FakeQuantWithMinMaxVars"]
        scale, zero_point = d["quantization"]
        return (interpreter.get_tensor(d["index"]).astype(np.float32) - zero_point) * np.float32(scale)

    names = tflite_layer_names(model)
    assert names["backbone.25.conv"] == "FeatureExtractor/MobilenetV1/MobilenetV1/Conv2d_13_depthwise/"
    assert names["extras.1.1.conv"] == "FeatureExtractor/MobilenetV1/Conv2d_13_pointwise_2_Conv2d_3_3x3_s2_192/"
    for layer, depthwise in (("backbone.0.conv", False), ("backbone.25.conv", True), ("extras.1.1.conv", False),
                             ("predictors.3.class_prediction", False)):
        expected = weights(names[layer]).transpose((3, 0, 1, 2) if depthwise else (0, 3, 1, 2))
        assert torch.equal(state[f"{layer}.weight"], torch.from_numpy(np.ascontiguousarray(expected))), layer


def test_the_reader_refuses_other_files_and_other_architectures(tflite, data_root, tmp_path):
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    deeplab = data_root / "segmentation" / "deeplabv3_257_mv_gpu.tflite"
    if deeplab.is_file():
        with pytest.raises(WeightsError, match="is not uint8: not Google's quantized model"):
            read_tflite_state_dict(deeplab)
        with pytest.raises(WeightsError, match="no TFLite_Detection_PostProcess op"):
            read_tflite_anchors(deeplab)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tflite.read_bytes()[:100_000])
    for read in (read_tflite_state_dict, read_tflite_anchors, read_postprocess_options):
        with pytest.raises(WeightsError, match=r"truncated.tflite: not a readable .tflite"):
            read(truncated)
    with pytest.raises(WeightsError, match=r"has shape \[24, 3, 3, 3\], backbone.0.conv needs \[32, 3, 3, 3\]: "
                                           r"not ssd_mobilenet_v1_1.0_300"):
        read_tflite_state_dict(tflite, SSDMobileNetV1Config(width=1.0))
    with pytest.raises(WeightsError, match=r"ClassPredictor.* has shape \[273, 384, 1, 1\]"):
        read_tflite_state_dict(tflite, SSDMobileNetV1Config(num_classes=80))


def test_the_anchors_are_the_graphs(tflite):
    """The Object Detection API's rule on the config's maps gives the .tflite's uint8 anchors: within half a
    quantization step (measured 0.00320 of 0.00323), and requantized they are the very bytes the graph holds."""
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    config = SSDMobileNetV1Config()
    google = read_tflite_anchors(tflite)
    ours = ssd_anchors(config.feature_map_sizes())
    assert google.shape == ours.shape == (1917, 4) and ours.dtype == np.float32
    step = float(google.max()) / 255  # the anchors' scale: zero point 0, range [0, max]
    assert np.abs(ours - google).max() <= 0.5 * step <= 0.0033
    assert np.array_equal(np.round(ours / step), np.round(google / step))
    # Layer 0's reduced boxes: (0.1, 1), (0.2, 2), (0.2, 0.5) at centre (0.5 / 19, 0.5 / 19).
    np.testing.assert_allclose(ours[:3], [[1 / 38, 1 / 38, 0.1, 0.1], [1 / 38, 1 / 38, 0.2 / 2 ** 0.5, 0.2 * 2 ** 0.5],
                                          [1 / 38, 1 / 38, 0.2 * 2 ** 0.5, 0.2 / 2 ** 0.5]], rtol=1e-6)
    spec = AnchorSpec.from_dict(json.loads(json.dumps(config.anchor_parameters())))
    assert spec.per_location() == ANCHORS_PER_LOCATION and spec.num_anchors == config.num_anchors
    assert np.array_equal(spec.anchors(), ours) and AnchorSpec.from_dict(spec.to_dict()) == spec


def test_the_postprocess_options_are_googles(tflite):
    pytest.importorskip("ai_edge_litert", reason="needs the [tflite] extra")
    options = read_postprocess_options(tflite)
    assert options == {"max_detections": 10, "max_classes_per_detection": 1, "detections_per_class": 100,
                       "nms_score_threshold": pytest.approx(1e-8), "nms_iou_threshold": pytest.approx(0.6),
                       "num_classes": 90, "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0,
                       "use_regular_nms": False}


def test_pytorch_reproduces_the_tflites_raw_heads_on_coco_images(tflite, state, data_root):
    """The float port against the uint8 graph's own heads (``Squeeze``: box encodings, ``convert_scores``: the
    sigmoid scores) on 4 COCO images. Measured on these 4: box encodings max |diff| 1.64, mean 0.039 (the
    graph's box step is 0.079); scores max 0.020, mean 0.0011; best real class the same on all 119 anchors
    the graph scores >= 0.5 (all 159 images: box max 2.13, mean 0.039; scores mean 0.0011; 3176 of 3176)."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    model = SSDMobileNetV1().eval()
    model.load_state_dict(state)
    interpreter = Interpreter(model_path=str(tflite), num_threads=2, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}

    def tensor(name: str) -> np.ndarray:
        scale, zero_point = details[name]["quantization"]
        return (interpreter.get_tensor(details[name]["index"]).astype(np.float32) - zero_point) * np.float32(scale)

    images = sorted((data_root / COCO_IMAGES).glob("*.jpg"))[:4]
    assert len(images) == 4
    box_max = box_mean = score_max = score_mean = 0.0
    confident = agree = 0
    for path in images:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((300, 300), Image.BILINEAR), dtype=np.uint8)[None]
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
        interpreter.invoke()
        google_boxes, google_scores = tensor("Squeeze")[0], tensor("convert_scores")[0]
        x = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
        with torch.inference_mode():
            boxes, logits = model(x)
        boxes, scores = boxes[0].numpy(), torch.sigmoid(logits[0]).numpy()
        box_max = max(box_max, float(np.abs(boxes - google_boxes).max()))
        box_mean += float(np.abs(boxes - google_boxes).mean()) / 4
        score_max = max(score_max, float(np.abs(scores - google_scores).max()))
        score_mean += float(np.abs(scores - google_scores).mean()) / 4
        sure = google_scores[:, 1:].max(1) >= 0.5
        confident += int(sure.sum())
        agree += int((google_scores[sure, 1:].argmax(1) == scores[sure, 1:].argmax(1)).sum())
    assert box_max <= 2.5 and box_mean <= 0.06
    assert score_max <= 0.05 and score_mean <= 0.002
    assert confident >= 100 and agree / confident >= 0.98
