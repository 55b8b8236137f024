"""SSDLite-MobileNetV2: the architecture of the TF Object Detection API's ``ssdlite_mobilenet_v2_coco_2018_05_09``
proven variable for variable against the release's ``model.ckpt.index`` (names and shapes, no weight data), a TF
checkpoint written with those names read into the network and reproduced by a TF graph built from the same
variables, its anchors, its size against the paper's Table 6, and its ONNX export."""

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.core.errors import ConfigError, DependencyError, WeightsError
from edgedeploy.models.complexity import measure_complexity
from edgedeploy.models.mobilenet_v2.network import INVERTED_RESIDUAL_SETTINGS
from edgedeploy.models.ssdlite_mobilenet_v2.checkpoint import (
    checkpoint_variable_names,
    ignored_variable,
    read_tf_checkpoint,
)
from edgedeploy.models.ssdlite_mobilenet_v2.config import (
    ANCHORS_PER_LOCATION,
    BLOCKS,
    BN_EPS,
    FEATURE_BLOCK,
    SSDLiteMobileNetV2Config,
)
from edgedeploy.models.ssdlite_mobilenet_v2.network import SSDLiteMobileNetV2
from edgedeploy.tasks.detection.anchors import AnchorSpec
from edgedeploy.tasks.detection.postprocess import DetectionHead

RELEASE = "detection/ssdlite_mobilenet_v2_coco_2018_05_09/model.ckpt"
BACKBONE = "FeatureExtractor/MobilenetV2/"


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("tensorflow", reason="needs tensorflow (the [tflite] extra)")


@pytest.fixture(scope="module")
def model() -> SSDLiteMobileNetV2:
    return SSDLiteMobileNetV2().eval()


@pytest.fixture(scope="module")
def release_shapes(tf, data_root: Path) -> dict[str, list[int]]:
    index = data_root / (RELEASE + ".index")
    if not index.is_file():
        pytest.skip(f"the release's model.ckpt.index not found at {index}")
    return tf.train.load_checkpoint(str(data_root / RELEASE)).get_variable_to_shape_map()


def test_width_1_is_googles_architecture(model):
    config = model.config
    assert config.name == "ssdlite_mobilenet_v2_1.0_300"
    # slim's V2_DEF is the paper's Table 2, block by block.
    assert BLOCKS == tuple((t, c, s if i == 0 else 1) for t, c, n, s in INVERTED_RESIDUAL_SETTINGS for i in range(n))
    assert config.feature_map_sizes() == (19, 10, 5, 3, 2, 1) and config.num_anchors == 1917
    assert config.feature_channels() == (576, 1280, 512, 256, 256, 128)
    assert config.extra_channels() == ((256, 512), (128, 256), (128, 256), (64, 128))
    assert config.blocks()[FEATURE_BLOCK] == (96, 576, 160, 2) and model.blocks[0].expand is None
    # TF "SAME": 300 -> 150 pads 0 before, 1 after; expanded_conv_13's stride-2 depthwise on 19 pads 1 and 1.
    assert model.stem.pad == (0, 1, 0, 1) and model.blocks[FEATURE_BLOCK].depthwise.conv.padding == (1, 1)
    assert model.extras[0].depthwise.pad == (0, 1, 0, 1) and model.extras[1].depthwise.conv.padding == (1, 1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 52 + 12 + 12 and all(m.eps == BN_EPS for m in norms)
    with torch.inference_mode():  # the heads' shapes: test_onnx_export_matches_pytorch
        maps = model.features(torch.zeros(1, 3, 300, 300))
    assert [tuple(m.shape[1:3]) for m in maps] == list(zip(config.feature_channels(), config.feature_map_sizes()))


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0.2}, "width multiplier"), ({"resolution": 32}, "input resolution"), ({"num_classes": 0}, "class count"),
])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SSDLiteMobileNetV2Config(**kwargs)


def test_the_mapping_is_a_bijection_with_the_release(model, release_shapes, data_root):
    """404 of the release's 405 variables are the 404 tensors of the state_dict (its 76 num_batches_tracked aside),
    each with the same elements in the transposed shape; the 405th is global_step."""
    names = checkpoint_variable_names(model)
    state = model.state_dict()
    assert set(state) - set(names) == {k for k in state if k.endswith("num_batches_tracked")}
    assert len(names) == len(set(names.values())) == 404
    assert set(release_shapes) - set(names.values()) == {"global_step"} and ignored_variable("global_step")
    for key, variable in names.items():
        shape = release_shapes[variable]
        if len(shape) == 4:  # HWIO -> OIHW; depthwise H W C 1 -> C 1 H W
            shape = [shape[i] for i in ((2, 3, 0, 1) if variable.endswith("depthwise_weights") else (3, 2, 0, 1))]
        assert list(state[key].shape) == shape, (key, variable)
    assert names["blocks.13.expand.conv.weight"] == BACKBONE + "expanded_conv_13/expand/weights"
    assert names["extras.0.depthwise.bn.running_var"] == \
        BACKBONE + "layer_19_2_Conv2d_2_3x3_s2_512_depthwise/BatchNorm/moving_variance"
    assert names["predictors.1.class_prediction.bias"] == "BoxPredictor_1/ClassPredictor/biases"
    assert not any(ignored_variable(v) for v in names.values())
    assert ignored_variable("BoxPredictor_0/ClassPredictor/biases/ExponentialMovingAverage")
    # The reader finds every name and shape of the release right (its .index path taken for the prefix); only the
    # weight data, which the shared folder lacks, stops it.
    prefix = str(data_root / RELEASE)
    with pytest.raises(WeightsError, match=rf"^{re.escape(prefix)}: cannot read variable {BACKBONE}Conv/weights "
                                           r"\([^\n]*data-00000-of-00001[^\n]*\)$"):
        read_tf_checkpoint(prefix + ".index")


def _random_variables(model: SSDLiteMobileNetV2, seed: int = 0) -> dict[str, np.ndarray]:
    """Every checkpoint variable of ``model``, random in TF's layout, at scales that keep activations alive."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    values = {}
    for key, variable in checkpoint_variable_names(model).items():
        shape = list(state[key].shape)
        if len(shape) == 4:
            o, i, h, w = shape
            depthwise = variable.endswith("depthwise_weights")
            value = rng.normal(0, (2 / (h * w * (1 if depthwise else i))) ** 0.5, (h, w, o, i) if depthwise else
                               (h, w, i, o))
        elif variable.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.1, shape)
        values[variable] = value.astype(np.float32)
    return values


def _save(tf, prefix: Path, values: dict[str, np.ndarray]) -> str:
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    return str(prefix)


def _tf_reference(tf, v: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The API's SSDLite forward pass written with TF ops on the variables by name (NHWC, "SAME" padding)."""
    def layer(x, scope, stride=1, relu6=True):
        if scope + "/depthwise_weights" in v:
            x = tf.nn.depthwise_conv2d(x, v[scope + "/depthwise_weights"], [1, stride, stride, 1], "SAME")
        else:
            x = tf.nn.conv2d(x, v[scope + "/weights"], stride, "SAME")
        bn = scope + "/BatchNorm/"
        x = tf.nn.batch_normalization(x, v[bn + "moving_mean"], v[bn + "moving_variance"], v[bn + "beta"],
                                      v[bn + "gamma"], 1e-3)
        return tf.nn.relu6(x) if relu6 else x

    x, maps = layer(tf.constant(x), BACKBONE + "Conv", 2), []
    for index, (_, _, stride) in enumerate(BLOCKS):
        scope, inputs = BACKBONE + "expanded_conv" + (f"_{index}" if index else ""), x
        if scope + "/expand/weights" in v:
            x = layer(x, scope + "/expand")
            if index == 13:  # layer_15/expansion_output
                maps.append(x)
        x = layer(layer(x, scope + "/depthwise", stride), scope + "/project", relu6=False)
        if stride == 1 and inputs.shape[-1] == x.shape[-1]:
            x = x + inputs
    maps.append(x := layer(x, BACKBONE + "Conv_1"))
    for index in range(2, 6):
        [reduce] = {m.group(1) for n in v if (m := re.match(rf"(.*layer_19_1_Conv2d_{index}_1x1_\d+)/", n))}
        [down] = {m.group(1) for n in v if (m := re.match(rf"(.*layer_19_2_Conv2d_{index}_3x3_s2_\d+)/weights", n))}
        maps.append(x := layer(layer(layer(x, reduce), down + "_depthwise", 2), down))
    boxes, scores = [], []
    for index, feature in enumerate(maps):
        for outputs, head, size in ((boxes, "BoxEncodingPredictor", 4), (scores, "ClassPredictor", 91)):
            scope = f"BoxPredictor_{index}/{head}"
            y = tf.nn.conv2d(layer(feature, scope + "_depthwise"), v[scope + "/weights"], 1, "SAME")
            outputs.append(tf.reshape(y + v[scope + "/biases"], [feature.shape[0], -1, size]))
    return tf.concat(boxes, 1).numpy(), tf.concat(scores, 1).numpy()


def test_a_tf_checkpoint_is_read_transposed_and_runs_as_tf_would(tf, model, tmp_path):
    values = _random_variables(model)
    state = read_tf_checkpoint(_save(tf, tmp_path / "model.ckpt", values))
    loaded = SSDLiteMobileNetV2().eval()
    loaded.load_state_dict(state, strict=True)
    # One element each way round: torch (o, i, h, w) is TF (h, w, i, o); depthwise (c, 0, h, w) is (h, w, c, 0).
    assert state["blocks.13.expand.conv.weight"][500, 7, 0, 0] == values[BACKBONE + "expanded_conv_13/expand/weights"][0, 0, 7, 500]
    assert state["stem.conv.weight"][5, 2, 0, 1] == values[BACKBONE + "Conv/weights"][0, 1, 2, 5]
    dw = values[BACKBONE + "layer_19_2_Conv2d_2_3x3_s2_512_depthwise/depthwise_weights"]
    assert torch.equal(state["extras.0.depthwise.conv.weight"], torch.from_numpy(dw.transpose(2, 3, 0, 1).copy()))
    assert state["extras.0.depthwise.conv.weight"][200, 0, 2, 1] == dw[2, 1, 200, 0]
    assert torch.equal(state["predictors.2.class_depthwise.bn.running_var"],
                       torch.from_numpy(values["BoxPredictor_2/ClassPredictor_depthwise/BatchNorm/moving_variance"]))
    assert torch.equal(state["predictors.5.box_encoding.bias"],
                       torch.from_numpy(values["BoxPredictor_5/BoxEncodingPredictor/biases"]))
    # The network on those weights is the API's graph on them: padding, layouts and the anchors' order.
    x = np.random.default_rng(1).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    with torch.inference_mode():
        boxes, logits = loaded(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    tf_boxes, tf_logits = _tf_reference(tf, values, x)
    assert boxes.shape == tf_boxes.shape == (1, 1917, 4) and logits.shape == tf_logits.shape == (1, 1917, 91)
    scale = max(np.abs(tf_boxes).max(), np.abs(tf_logits).max())
    assert scale > 0.1 and np.isfinite(scale)
    assert np.abs(boxes.numpy() - tf_boxes).max() <= 1e-4 * scale
    assert np.abs(logits.numpy() - tf_logits).max() <= 1e-4 * scale

    # What a user does with the full release: --weights <prefix> (or its .index) loads it by those names, with
    # the API's preprocessing, and evaluates like any detector.
    from edgedeploy.models.architecture import Architecture
    from edgedeploy.runtimes import LoadOptions, load_runner

    for given in (tmp_path / "model.ckpt", tmp_path / "model.ckpt.index"):
        runner = load_runner(str(given), LoadOptions(architecture=Architecture("ssdlite_mobilenet_v2")),
                             runtime="torch")
        assert runner.io.preprocessing.mean == (0.5, 0.5, 0.5) and runner.weights.key_mapping == "tf-checkpoint"
        outputs = runner.predict(x)  # already normalized, NHWC: what predict() takes
        np.testing.assert_allclose(outputs["box_encodings"], tf_boxes, atol=1e-4 * scale)


def test_bad_checkpoints_are_refused_in_one_line(tf, model, tmp_path, monkeypatch):
    values = _random_variables(model)
    gone = "BoxPredictor_3/ClassPredictor/weights"
    prefix = _save(tf, tmp_path / "missing", {k: v for k, v in values.items() if k != gone})
    with pytest.raises(WeightsError, match=rf"^{re.escape(prefix)}: no variable {gone} \(predictors.3.class_prediction"
                                           r".weight of ssdlite_mobilenet_v2_1.0_300\)[^\n]*$"):
        read_tf_checkpoint(prefix)
    wrong = BACKBONE + "expanded_conv_4/depthwise/depthwise_weights"
    prefix = _save(tf, tmp_path / "wrong", {**values, wrong: np.zeros((3, 3, 191, 1), np.float32)})
    with pytest.raises(WeightsError, match=rf"^{re.escape(prefix)}: variable {wrong} has shape \[3, 3, 191, 1\], "
                                           r"blocks.4.depthwise.conv.weight of [^\n]* needs \[192, 1, 3, 3\][^\n]*$"):
        read_tf_checkpoint(prefix)
    prefix = _save(tf, tmp_path / "extra", {**values, "global_step": np.zeros((), np.float32),
                                            "Other/weights": np.zeros(3, np.float32)})
    with pytest.raises(WeightsError, match=r"1 variable\(s\) ssdlite_mobilenet_v2_1.0_300 does not have \(e.g. Other"):
        read_tf_checkpoint(prefix)
    with pytest.raises(WeightsError, match=r"nowhere/model.ckpt: not a readable TF checkpoint \([^\n]*\)$"):
        read_tf_checkpoint(tmp_path / "nowhere" / "model.ckpt")
    # A narrower network asks for narrower tensors: the first one's shape is refused.
    with pytest.raises(WeightsError, match=r"Conv/weights has shape \[3, 3, 3, 32\], stem.conv.weight of "
                                           r"ssdlite_mobilenet_v2_0.5_300 needs \[16, 3, 3, 3\]"):
        read_tf_checkpoint(_save(tf, tmp_path / "full", values), SSDLiteMobileNetV2Config(width=0.5))
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(DependencyError, match=r"pip install 'edgedeploy\[tflite\]'"):
        read_tf_checkpoint(prefix)


def test_anchors_and_detection_head():
    config = SSDLiteMobileNetV2Config()
    spec = AnchorSpec.from_dict(config.anchor_parameters())
    assert spec.feature_map_sizes == config.feature_map_sizes() == (19, 10, 5, 3, 2, 1)
    assert spec.per_location() == ANCHORS_PER_LOCATION and spec.num_anchors == len(spec.anchors()) == 1917
    head = DetectionHead.from_dict(config.detection_parameters())
    assert head.box_scales == (10.0, 10.0, 5.0, 5.0) and head.labels == "coco90" and head.anchors == spec
    assert (head.nms.score_threshold, head.nms.iou_threshold, head.nms.max_detections, head.nms.mode) == \
        (0.3, 0.6, 100, "per-class")
    small = SSDLiteMobileNetV2Config(width=0.5, resolution=320, num_classes=3)
    assert small.detection_parameters()["labels"] == "contiguous" and small.feature_map_sizes() == (20, 10, 5, 3, 2, 1)


def test_size_against_the_papers_table_6(model):
    """Table 6 gives SSDLite 4.3M parameters and 0.8B MAdds. Measured (conv multiply-adds by forward hooks, BatchNorm
    gamma/beta counted as parameters): 4,500,543 and 749.5M with the release's 91 class slots; 4,337,013 and 734.6M
    with COCO's 80 classes + background (the paper's count: 0.9% over 4.3M). 0.75B is 6% under 0.8B, i.e. within
    the paper's one-decimal rounding."""
    ours = measure_complexity(model, 300)
    assert ours.params == 4_500_543 and ours.macs == 749_503_856
    coco80 = measure_complexity(SSDLiteMobileNetV2(SSDLiteMobileNetV2Config(num_classes=80)), 300)
    assert abs(coco80.params / 4.3e6 - 1) < 0.02 and abs(coco80.macs / 1e9 - 0.8) <= 0.07


def test_onnx_export_matches_pytorch(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    path = tmp_path / "ssdlite.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 300, 300),), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["boxes", "logits"],
                      dynamic_axes={"x": {0: "n"}, "boxes": {0: "n"}, "logits": {0: "n"}})
    # Static shapes: the TF "SAME" pads are constants, no shape arithmetic reaches the graph.
    assert not {"Shape", "Gather", "NonZero"} & {n.op_type for n in onnx.load(str(path)).graph.node}
    x = torch.rand(2, 3, 300, 300, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        boxes, logits = model(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_boxes, ort_logits = session.run(None, {"x": x.numpy()})
    assert ort_boxes.shape == (2, 1917, 4) and ort_logits.shape == (2, 1917, 91)
    assert np.abs(ort_boxes - boxes.numpy()).max() <= 1e-4 and np.abs(ort_logits - logits.numpy()).max() <= 1e-4


def test_sample_weights_are_the_imagenet_classifier_as_backbone(data_root):
    """``--weights sample``: the classifier's sample weights in the feature extractor, batch norm folded across
    the two epsilons: at an odd input size (where TF's "SAME" padding is PyTorch's) the backbone's last map is
    the classifier's features, exactly; the head is seeded."""
    from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
    from edgedeploy.models.mobilenet_v2.network import MobileNetV2
    from edgedeploy.models.ssdlite_mobilenet_v2.backbone import read_backbone_state_dict

    path = data_root / "mobilenet_v2_imagenet.pth"
    if not path.is_file():
        pytest.skip(f"the MobileNetV2 sample weights are not at {path}")
    config = SSDLiteMobileNetV2Config(resolution=225)
    state = read_backbone_state_dict(path, config)
    detector = SSDLiteMobileNetV2(config).eval()
    detector.load_state_dict(state)
    classifier = MobileNetV2(MobileNetV2Config()).eval()
    classifier.load_state_dict(torch.load(path, weights_only=True))
    x = torch.rand(1, 3, 225, 225, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        expected, y = classifier.features(x), detector.stem(x)
        for block in detector.blocks:
            y = block(y)
        assert torch.allclose(detector.head(y), expected, atol=1e-4)
    again = read_backbone_state_dict(path, config)
    assert all(torch.equal(state[k], again[k]) for k in state)
    with pytest.raises(WeightsError, match="width 1.0"):
        read_backbone_state_dict(path, SSDLiteMobileNetV2Config(width=0.5))
