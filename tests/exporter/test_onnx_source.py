"""ONNX in (`export --from model.onnx`): the ONNX-based routes with parity against ONNX Runtime, and the
files that must be refused before anything is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.exporter.onnx_source import onnx_fingerprint

pytestmark = [pytest.mark.data]

IMAGENET = ["--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225"]


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier from "elsewhere": its own input/output names, dynamic batch and spatial dims."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from user_modules import TinyCNN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "classifier.onnx"
    torch.onnx.export(TinyCNN().eval(), (torch.zeros(1, 3, 64, 64),), str(path), input_names=["images"],
                      output_names=["scores"], dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}}, dynamo=False)
    return path


@pytest.mark.parametrize("target", ["onnx", "openvino-int8", "tflite-int8"])
def test_onnx_in_exports_with_parity_against_onnx_runtime(foreign_onnx: Path, target: str, tmp_path: Path) -> None:
    result = invoke("export", "--from", foreign_onnx, "--target", target, "--input-shape", "1,3,64,64", *IMAGENET,
                    "--out", tmp_path, "--threads", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["parity"]["reference"] == "onnxruntime" and out["precision"]["verified"]
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["model"] == {"arch": "onnx", "file": "classifier.onnx", "resolution": 64, "num_classes": 10,
                                 "params": 24234, "macs": None}
    assert manifest["weights"]["sha256"] == __import__("hashlib").sha256(foreign_onnx.read_bytes()).hexdigest()
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    if target == "onnx":  # the normalized graph computes what the original does
        import onnxruntime as ort

        x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
        original = ort.InferenceSession(str(foreign_onnx)).run(None, {"images": x})[0]
        exported = ort.InferenceSession(out["path"]).run(None, {"input": x})[0]
        np.testing.assert_allclose(exported, original, atol=1e-5)


@pytest.mark.parametrize(("args", "code", "message"), [
    ([*IMAGENET], 2, "dynamic spatial dims: pass --input-shape"),
    (["--input-shape", "1,3,64,64"], 2, "records no normalization: pass --mean and --std"),
    (["--input-shape", "1,3,64,64", *IMAGENET, "--target", "litert-fp32"], 2, "converts from PyTorch, not ONNX"),
    (["--input-shape", "1,3,64,64", *IMAGENET, "--target", "onnx-int8", "--ptq", "cle"], 2, "--ptq works on a PyTorch"),
    (["--input-shape", "1,3,64,64", *IMAGENET, "--target", "tflite-int8", "--io-dtype", "uint8"], 2,
     "ONNX in cannot take it"),
])
def test_onnx_in_option_problems(foreign_onnx: Path, args: list[str], code: int, message: str, tmp_path: Path) -> None:
    if "--target" not in args:
        args = [*args, "--target", "onnx"]
    result = invoke("export", "--from", foreign_onnx, *args, "--out", tmp_path / "out")
    assert result.exit_code == code and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _with_external_data(src: Path, folder: Path, location: str) -> Path:
    """A copy of ``src`` whose largest initializer points at ``location`` (written nowhere)."""
    model = onnx.load(str(src))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    tensor.external_data.add(key="location", value=location)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


@pytest.mark.parametrize(("location", "message"), [
    ("../secret.bin", "outside the model's folder ('../secret.bin'); refused, not read"),
    ("/etc/passwd", "outside the model's folder ('/etc/passwd'); refused, not read"),
    ("weights.bin", "external data file not found"),
])
def test_external_data_outside_the_folder_or_missing_is_refused(foreign_onnx: Path, tmp_path: Path, location: str,
                                                                message: str) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)  # exists, so only the check can stop the read
    model = _with_external_data(foreign_onnx, tmp_path / "m", location)
    result = invoke("export", "--from", model, "--target", "onnx", "--input-shape", "1,3,64,64", *IMAGENET,
                    "--out", tmp_path / "out")
    assert result.exit_code == 3 and message in result.stderr, result.output
    assert "Traceback" not in result.output


def test_external_data_inside_the_folder_is_read_and_hashed(foreign_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(foreign_onnx))
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.data", size_threshold=0)
    key = onnx_fingerprint(folder / "model.onnx")
    result = invoke("export", "--from", folder / "model.onnx", "--target", "openvino-fp32", "--input-shape",
                    "1,3,64,64", *IMAGENET, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    data = bytearray((folder / "model.data").read_bytes())
    data[0] ^= 1
    (folder / "model.data").write_bytes(bytes(data))
    assert onnx_fingerprint(folder / "model.onnx") != key  # the build cache sees the weights change


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage, not protobuf" * 10)
    result = invoke("export", "--from", tmp_path / "model.onnx", "--target", "onnx", *IMAGENET, "--out", tmp_path / "o")
    assert result.exit_code == 3 and "not a readable ONNX model" in result.stderr, result.output
    missing = invoke("export", "--from", tmp_path / "none.onnx", "--target", "onnx", *IMAGENET, "--out", tmp_path / "o")
    assert missing.exit_code == 3 and "ONNX file not found" in missing.stderr
