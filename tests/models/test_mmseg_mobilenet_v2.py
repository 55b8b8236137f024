"""mmsegmentation's M-V2-D8 heads: every parameter named and shaped as in an mmseg checkpoint (the names listed in
data/mmseg_m-v2-d8_keys.txt were read from mmseg's and mmcv's module definitions), such a checkpoint loading as it
is, the architecture's strides and dilations, and the pooling every converter takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgedeploy.cli.app import cli
from edgedeploy.models import get_model
from edgedeploy.models.mmseg_mobilenet_v2.config import HEADS
from edgedeploy.models.mmseg_mobilenet_v2.network import AdaptiveAvgPool
from edgedeploy.models.weights import build_model, checkpoint_num_classes

KEYS = Path(__file__).parent / "data" / "mmseg_m-v2-d8_keys.txt"
# The key file's section of each family's decode head.
SECTIONS = {"fcn_mobilenet_v2": "fcn", "pspnet_mobilenet_v2": "psp", "deeplabv3_aspp_mobilenet_v2": "aspp",
            "deeplabv3plus_mobilenet_v2": "sepaspp"}
# Parameters (torch's count: no batch norm statistics) of each model with 19 classes, its auxiliary head excluded.
PARAMS = {"fcn_mobilenet_v2": 9_492_243, "pspnet_mobilenet_v2": 13_393_683,
          "deeplabv3_aspp_mobilenet_v2": 18_375_443, "deeplabv3plus_mobilenet_v2": 15_017_795}


def mmseg_keys() -> dict[str, dict[str, tuple[int, ...]]]:
    """Section -> {key: shape} of the key file."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    for line in KEYS.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), {})
        elif line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            current[key] = tuple(json.loads(shape))
    return sections


def mmseg_checkpoint(arch: str, path: Path, classes: int = 19) -> dict[str, torch.Tensor]:
    """An mmseg checkpoint of ``arch`` as mmcv saves one (meta + state_dict, auxiliary head included), with
    trained-like random values; returns its state_dict."""
    sections = mmseg_keys()
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in {**sections["backbone"], **sections[SECTIONS[arch]], **sections["aux"]}.items():
        if "conv_seg" in key:
            shape = (classes, *shape[1:])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(80_000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    torch.save({"meta": {"mmseg_version": "0.8.0", "CLASSES": [str(i) for i in range(classes)]},
                "state_dict": state}, path)
    return state


@pytest.mark.parametrize("arch", sorted(HEADS))
def test_every_parameter_has_mmsegs_name_and_shape(arch):
    sections = mmseg_keys()
    expected = {**sections["backbone"], **sections[SECTIONS[arch]]}
    model = get_model(arch).build(get_model(arch).make_config())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]


@pytest.mark.parametrize("arch", sorted(HEADS))
def test_an_mmseg_checkpoint_loads_as_it_is(arch, tmp_path):
    path = tmp_path / f"{arch}.pth"
    state = mmseg_checkpoint(arch, path)
    model, loaded = build_model(get_model(arch).make_config(resolution=64), str(path))
    assert loaded.key_mapping == "from_mmseg"
    ours = model.state_dict()
    assert not any(k.startswith("auxiliary_head.") for k in ours)
    assert all(torch.equal(ours[k], state[k]) for k in ours)


def test_the_class_count_is_read_from_the_checkpoint_and_ade20k_loads(tmp_path):
    path = tmp_path / "psp_ade20k.pth"
    mmseg_checkpoint("pspnet_mobilenet_v2", path, classes=150)
    assert checkpoint_num_classes(str(path), "pspnet_mobilenet_v2") == 150
    result = CliRunner().invoke(cli, ["export", "--target", "onnx", "--arch", "pspnet_mobilenet_v2", "--weights",
                                      str(path), "--resolution", "64", "--parity-images", "2", "--out",
                                      str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    manifest = json.loads(Path(exported["manifest"]).read_text())
    assert manifest["model"]["num_classes"] == 150 and exported["parity"]["max_abs_diff"] < 1e-3


def test_another_heads_checkpoint_is_one_line_naming_the_keys(tmp_path):
    path = tmp_path / "fcn.pth"
    mmseg_checkpoint("fcn_mobilenet_v2", path)
    result = CliRunner().invoke(cli, ["export", "--target", "onnx", "--arch", "pspnet_mobilenet_v2", "--weights",
                                      str(path), "--resolution", "64", "--out", str(tmp_path / "out")])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and "missing keys: decode_head.psp_modules.0.1.conv.weight" in result.stderr
    assert not (tmp_path / "out").exists()


def test_dilated_output_stride_8_backbone():
    """mmseg's make_layer gives a stage's stride and dilation to its first block only: layer4.0 and layer5.0 at
    rate 2, layer6.0 and layer7.0 at rate 4, every other depthwise conv at 1; stride 8 from layer3 on."""
    model = get_model("fcn_mobilenet_v2").build(get_model("fcn_mobilenet_v2").make_config()).eval()
    depthwise = {name: m for name, m in model.backbone.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups > 1}
    dilated = {name.split(".conv.")[0]: m.dilation[0] for name, m in depthwise.items() if m.dilation[0] > 1}
    assert dilated == {"layer4.0": 2, "layer5.0": 2, "layer6.0": 4, "layer7.0": 4}
    assert all(m.padding == m.dilation for m in depthwise.values())
    with torch.inference_mode():
        maps = model.backbone(torch.zeros(1, 3, 512, 512))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 128, 128), (32, 64, 64), (96, 64, 64), (320, 64, 64)]


@pytest.mark.parametrize("arch", sorted(HEADS))
@pytest.mark.parametrize("width, classes", [(0.25, 150), (2.0, 19)])
def test_any_width_and_class_count_gives_logits_at_the_input_size(arch, width, classes):
    family = get_model(arch)
    model = family.build(family.make_config(width=width, num_classes=classes, resolution=72)).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 72, 72)).shape == (1, classes, 72, 72)


@pytest.mark.parametrize("size", [(8, 8), (12, 12), (16, 13), (64, 64), (65, 33)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_pooling_equals_adaptive_average_pooling(size, bins):
    x = torch.randn(2, 5, *size)
    assert torch.allclose(AdaptiveAvgPool(bins)(x), nn.AdaptiveAvgPool2d(bins)(x), atol=1e-6)


def test_pooling_that_does_not_divide_exports_without_adaptive_pooling(tmp_path):
    """ONNX's exporter refuses adaptive pooling whose bins do not divide the map (64 / 6): the graph holds
    slices and means instead, and ONNX Runtime computes what PyTorch does."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    path = tmp_path / "pool.onnx"
    x = torch.randn(1, 4, 64, 64)
    torch.onnx.export(AdaptiveAvgPool(6), (x,), str(path), dynamo=False)
    assert {n.op_type for n in onnx.load(str(path)).graph.node}.isdisjoint({"AdaptiveAvgPool", "GlobalAveragePool"})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(out, nn.AdaptiveAvgPool2d(6)(x).numpy(), atol=1e-6)


def _export(target: str, arch: str, out: Path, data_root: Path, *extra: str):
    return CliRunner().invoke(cli, [
        "export", "--target", target, "--arch", arch, "--resolution", "64", "--calib",
        str(data_root / "imagenet-subset" / "calib"), "--calib-size", "16", "--parity-data",
        str(data_root / "segmentation" / "voc-samples"), "--parity-images", "8", "--threads", "2", "--out", str(out),
        "--json", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "tflite-fp32", "openvino-fp32"])
def test_pspnet_takes_the_float_routes(target, tmp_path, data_root):
    """PSPNet has every operator the heads add but dilated 3x3s (pooling to 1, 2, 3 and 6 bins on an 8x8 map, bilinear
    resizes): the float routes compute what PyTorch does (litert-torch's and ExecuTorch's too: docs/variants.md)."""
    result = _export(target, "pspnet_mobilenet_v2", tmp_path, data_root)
    assert result.exit_code == 0, result.output
    parity = json.loads(result.stdout)["parity"]
    assert parity["max_abs_diff"] < 1e-3 and parity["agreement"] >= 99.9


@pytest.mark.slow
@pytest.mark.parametrize("arch, target", [("deeplabv3plus_mobilenet_v2", "tflite-int8"),
                                          ("pspnet_mobilenet_v2", "openvino-int8")])
def test_int8_heads_pass_parity(arch, target, tmp_path, data_root):
    """Separable ASPP at rates 12/24/36 with the stride-4 decoder, and the pyramid pooling, in int8: faithful to their
    quantization (fidelity checked against the host simulation) and agreeing with the float model on most pixels
    (the head is seeded, not trained: docs/variants.md has every route's figure)."""
    result = _export(target, arch, tmp_path, data_root)
    assert result.exit_code == 0, result.output
    parity = json.loads(result.stdout)["parity"]
    assert parity["fidelity"]["sqnr_db"] >= 10.0 and parity["agreement"] >= 85.0


@pytest.mark.slow
def test_litert_int8_of_pspnet_is_refused_with_ai_edge_quantizers_reason(tmp_path, data_root):
    """AI Edge Quantizer cannot quantize PSPNet: its error and the one it was raised from, in one line, no artifact."""
    refused = _export("litert-int8", "pspnet_mobilenet_v2", tmp_path / "litert", data_root)
    # (In-process, a first import of litert-torch may log torchao's own warning before it.)
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.exit_code == 4 and "Traceback" not in refused.stderr
    assert "AI Edge Quantizer failed" in error and "axis remapping" in error
    # Nothing but the converter's log, which the message names.
    assert [p.name for p in (tmp_path / "litert").iterdir()] == ["pspnet_mobilenet_v2_1.0_64_litert_int8.tflite.log"]
