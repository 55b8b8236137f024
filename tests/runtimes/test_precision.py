"""The precision proof: every export's manifest says what the graph really computes in, and a
target that silently produced the wrong precision fails its export."""

import json

import pytest

from edgedeploy.core.errors import ValidationError
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.runtimes import prove_precision


def _precision(result) -> dict:
    return json.loads(result.manifest.read_text())["precision"]


def test_fp32_onnx_is_proven_fp32(onnx_artifact):
    p = _precision(onnx_artifact)
    assert p["verified"] and p["requested"] == "fp32" and p["weights"] == {"float32": 53} and p["problems"] == []


def test_tflite_int8_every_weighted_layer_int8_and_no_float_op(tflite_int8):
    p = _precision(tflite_int8)
    assert p["verified"] and p["weights"] == {"int8": 53}
    assert p["float_layers"] == [] and p["float_ops"] == []


def test_tflite_dynamic_leaves_only_tiny_weights_float(tmp_path, data_root):
    pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")
    p = _precision(export(ExportRequest(target="tflite-dynamic", out_dir=tmp_path, threads=2, parity_images=4)))
    # TFLite's converter keeps weights under 1024 elements float (the 3x3x3x32 stem, small depthwise filters).
    assert p["verified"] and p["weights"] == {"int8": 49, "float32": 4} and len(p["float_layers"]) == 4


@pytest.mark.parametrize("fixture, runtime, wrong", [
    ("onnx_artifact", "onnxruntime", "int8"),
    ("tflite_fp32", "litert", "int8"),
    ("tflite_fp32", "litert", "fp16"),
    ("openvino_fp32", "openvino", "int8"),
    ("openvino_fp32", "openvino", "fp16"),
])
def test_a_float_model_is_not_accepted_as_another_precision(request, fixture, runtime, wrong):
    verdict = prove_precision(runtime, request.getfixturevalue(fixture).path, wrong)
    assert not verdict.verified
    assert "53 of 53 weighted layers are not" in verdict.problems[0]


def test_int8_model_is_not_fp32(tflite_int8):
    verdict = prove_precision("litert", tflite_int8.path, "fp32")
    assert not verdict.verified and verdict.problems == ["53 of 53 weighted layers are not float32 (int8 53; first: "
                                                         "tf.nn.relu6/Relu6)"]


def test_a_silent_fallback_fails_the_export_and_leaves_nothing(tmp_path, data_root, monkeypatch):
    pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")
    import edgedeploy.exporter.converters.litert.tflite as tflite

    # A converter that quietly hands back the float32 model as "fp16".
    monkeypatch.setattr(tflite, "to_tflite_fp16", tflite.to_tflite_fp32)
    with pytest.raises(ValidationError, match=r"tflite-fp16 is not fp16: 53 of 53 weighted layers are not float16"):
        export(ExportRequest(target="tflite-fp16", out_dir=tmp_path, threads=2, parity_images=4))
    assert not list(tmp_path.glob("*.tflite")) and not list(tmp_path.glob("*.manifest.json"))
