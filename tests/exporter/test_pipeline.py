import json

import onnxruntime as ort
import pytest

from edgedeploy.core.errors import DependencyError, ParityError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.request import DEFAULT_PARITY_IMAGES
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config


def test_onnx_export_writes_artifact_and_complete_manifest(onnx_artifact, sample_weights):
    r = onnx_artifact
    assert r.path.name == "mobilenet_v2_1.0_224.onnx"
    m = json.loads(r.manifest.read_text())
    assert m["target"] == "onnx" and m["artifact"] == r.path.name
    assert m["sha256"] == sha256_file(r.path) == r.sha256
    assert m["size_bytes"] == r.path.stat().st_size == r.size_bytes
    assert 13_000_000 < r.size_bytes < 15_000_000  # 3.49M fp32 parameters after BN folding
    assert m["input"] == {"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32", "layout": "NCHW", "quantization": None}
    assert m["output"]["num_classes"] == 1000 and not m["output"]["background_class"]
    pre = m["preprocessing"]
    assert (pre["resize"], pre["crop"], pre["mean"], pre["std"], pre["channel_order"]) == (256, 224, [0.5] * 3, [0.5] * 3, "RGB")
    assert m["weights"]["sha256"] == sha256_file(sample_weights)
    assert m["model"]["params"] == 3_504_872 and m["model"]["macs"] == 300_774_272
    assert m["export"]["opset"] == 17
    assert m["export"]["onnx_nodes_after_simplify"] < m["export"]["onnx_nodes_before_simplify"]
    for tool in ("torch", "onnx", "onnxruntime", "onnxsim", "edgedeploy"):
        assert tool in m["tools"]
    parity = m["parity"]
    assert parity["images"] == DEFAULT_PARITY_IMAGES and "calib" in parity["inputs"]
    assert parity["max_abs_diff"] < 1e-4 and parity["agreement"] == 100.0
    # Nothing but the artifact and its manifest is left in the output folder.
    assert sorted(p.name for p in r.path.parent.iterdir()) == [r.path.name, r.manifest.name]


def test_parity_failure_leaves_no_artifact(tmp_path, data_root):
    req = ExportRequest(target="onnx", out_dir=tmp_path, parity_max_abs_diff=1e-12, parity_images=4, threads=2)
    with pytest.raises(ParityError, match=r"parity failed: max \|logit diff\| vs PyTorch .* > 1e-12 on 4 images"):
        export(req)
    assert list(tmp_path.iterdir()) == []


def test_reexport_replaces_artifact_and_manifest_together(tmp_path, data_root):
    req = ExportRequest(target="onnx", weights="random", out_dir=tmp_path, parity_images=2, threads=2,
                        config=MobileNetV2Config(width=0.35, resolution=96))
    first = export(req)
    second = export(req)
    assert first.sha256 == second.sha256  # deterministic export
    assert json.loads(second.manifest.read_text())["sha256"] == sha256_file(second.path)


def test_export_without_any_data_checks_parity_on_random_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_DATA", str(tmp_path / "no-data"))
    req = ExportRequest(target="onnx", weights="random", out_dir=tmp_path / "out", dynamic_batch=True,
                        config=MobileNetV2Config(width=0.5, resolution=160, num_classes=10), parity_images=4, threads=2)
    r = export(req)
    m = json.loads(r.manifest.read_text())
    assert m["parity"]["inputs"].startswith("random pixels") and m["parity"]["images"] == 4
    assert m["weights"] == {"source": "random", "sha256": None}
    assert m["input"]["shape"] == [-1, 3, 160, 160]
    assert m["preprocessing"]["resize"] == 182
    assert ort.InferenceSession(str(r.path)).get_inputs()[0].shape[0] == "batch"


# Targets whose default export a session fixture already builds (checked on 32 parity images, or
# on 8 as here): that export is the one checked here, instead of converting the same model twice.
SESSION_EXPORTS = {"tflite-fp32": "tflite_fp32", "tflite-int8": "tflite_int8", "litert-int8": "litert_int8",
                   "executorch-int8": "executorch_int8", "onnx-int8": "onnx_int8", "openvino-fp32": "openvino_fp32",
                   "openvino-fp16": "openvino_fp16", "openvino-int8": "openvino_int8"}


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_registered_target_exports_and_passes_its_parity(tmp_path, data_root, name, request):
    try:
        TARGETS[name].load_converter()
    except DependencyError as exc:
        pytest.skip(str(exc))
    if name in SESSION_EXPORTS:
        r = request.getfixturevalue(SESSION_EXPORTS[name])
    else:
        r = export(ExportRequest(target=name, out_dir=tmp_path, parity_images=8, threads=2))
    parity = json.loads(r.manifest.read_text())["parity"]
    tol = TARGETS[name].parity
    assert parity["agreement"] >= tol.min_agreement
    if tol.max_abs_diff is not None:
        assert parity["max_abs_diff"] <= tol.max_abs_diff
