"""A user's nn.Module through every route (`export --model package.module:factory`), with parity against that
module and the precision proof; and the factory's problems as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.exporter.request import DEFAULT_PARITY_IMAGES
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.models.weights import weights_fingerprint

pytestmark = [pytest.mark.data]

HERE = Path(__file__).resolve().parents[1] / "models"  # user_modules.py


@pytest.fixture(autouse=True)
def user_modules_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def _torchvision_or_skip() -> None:
    from user_modules import import_torchvision

    try:
        import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed (pip install -e '.[test]')")


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("target", list(TARGETS))
def test_small_cnn_exports_to_every_target(target: str, tmp_path: Path) -> None:
    result = invoke("export", "--target", target, "--model", "user_modules:tiny_cnn", "--input-shape", "1,3,64,64",
                    "--out", tmp_path, "--threads", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["precision"]["verified"] and out["parity"]["images"] == DEFAULT_PARITY_IMAGES
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["model"]["arch"] == "user_modules:tiny_cnn" and manifest["model"]["num_classes"] == 10
    assert manifest["weights"] == {"source": "module", "sha256": weights_fingerprint("module", "user_modules:tiny_cnn")}
    assert Path(out["path"]).name == f"tiny_cnn_64{TARGETS[target].file_suffix}"
    # The artifact evaluates like any other (the manifest says how to feed it), against the module itself.
    check = invoke("verify", out["path"], "--json")
    assert check.exit_code == 0, check.output


def test_a_fine_tuned_checkpoint_loads_into_the_module(tmp_path: Path) -> None:
    import torch
    from user_modules import TinyCNN

    torch.manual_seed(3)
    torch.save(TinyCNN().state_dict(), tmp_path / "tuned.pth")
    result = invoke("export", "--target", "onnx", "--model", "user_modules:tiny_cnn", "--input-shape", "1,3,32,32",
                    "--weights", tmp_path / "tuned.pth", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(Path(json.loads(result.stdout)["manifest"]).read_text())
    assert manifest["weights"]["source"] == str(tmp_path / "tuned.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    result = invoke("export", "--target", "onnx", "--model", "user_modules:tiny_cnn", "--input-shape", "1,3,32,32",
                    "--weights", tmp_path / "other.pth", "--out", tmp_path / "o")
    assert result.exit_code == 3 and "does not fit tiny_cnn_32" in result.stderr and "missing keys" in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--model", "user_modules:needs_arguments", "--input-shape", "1,3,32,32"], 2, "the factory needs arguments"),
    (["--model", "user_modules:raises", "--input-shape", "1,3,32,32"], 4, "the factory raised RuntimeError"),
    (["--model", "user_modules:not_a_module", "--input-shape", "1,3,32,32"], 2, "not a torch.nn.Module"),
    (["--model", "user_modules:tiny_cnn"], 2, "give the input size (--input-shape"),
    (["--model", "user_modules:tiny_cnn", "--input-shape", "3,32,32"], 2, "has rank 3"),
    (["--model", "user_modules:tiny_cnn", "--input-shape", "1,3,32,32", "--weights", "sample"], 2,
     "it has no 'sample' weights"),
    (["--model", "user_modules:tiny_cnn", "--input-shape", "1,3,32,32", "--resolution", "64"], 2, "disagrees"),
])
def test_factory_problems_exit_with_one_line(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    result = invoke("export", "--target", "onnx", *args, "--out", tmp_path / "out")
    assert result.exit_code == code, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_example_input_file_sets_the_size(tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((1, 3, 40, 40), np.float32))
    result = invoke("export", "--target", "onnx", "--model", "user_modules:tiny_cnn", "--example-input",
                    tmp_path / "x.npy", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"].endswith("tiny_cnn_40.onnx")


@pytest.mark.long
def test_mobilenet_v3_small_routes_say_what_they_cannot_convert(tmp_path: Path) -> None:
    """torchvision's MobileNetV3-Small (hardswish, squeeze-excitation): OpenVINO int8 takes it with the proof;
    the a16w8 TFLite route leaves hardswish in float, and says so (exit 4, no artifact)."""
    _torchvision_or_skip()
    args = ["--model", "user_modules:mobilenet_v3_small", "--input-shape", "1,3,96,96", "--threads", "2"]
    ok = invoke("export", "--target", "openvino-int8", *args, "--out", tmp_path, "--parity-min-agreement", "0",
                "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["precision"]["verified"]
    failed = invoke("export", "--target", "litert-a16w8", *args, "--out", tmp_path / "a16w8")
    assert failed.exit_code == 4, failed.output
    assert "litert-a16w8 is not a16w8" in failed.stderr and "ops compute in float" in failed.stderr
    assert not list((tmp_path / "a16w8").glob("*.tflite"))


@pytest.mark.parametrize("target", ["tflite-int8", "openvino-int8"])
def test_timm_checkpoint_exports_with_parity_and_the_precision_proof(target: str, tmp_path: Path) -> None:
    """A timm mobilenetv2_100 checkpoint (7 classes) through the int8 routes, with the sample weights' checks."""
    import torch

    _torchvision_or_skip()
    timm = pytest.importorskip("timm", reason="needs timm (pip install -e '.[test]')")
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv2_100", num_classes=7).eval()
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    result = invoke("export", "--target", target, "--weights", tmp_path / "timm.pth", "--resolution", "96",
                    "--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225", "--out", tmp_path,
                    "--threads", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["precision"]["verified"] and out["parity"]["agreement"] >= out["parity"]["min_agreement_allowed"] > 0
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["weights"]["key_mapping"] == "from_timm" and manifest["model"]["num_classes"] == 7


def test_eval_and_bench_take_a_module(val_dir: Path) -> None:
    model = ["module", "--model", "user_modules:tiny_cnn", "--input-shape", "1,3,64,64", "--threads", "2"]
    evaluated = invoke("eval", *model, "--data", val_dir, "--limit", "8", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    out = json.loads(evaluated.stdout)
    assert out["runtime"] == "torch" and out["n"] == 8
    benched = invoke("bench", *model, "--runs", "3", "--warmup", "1", "--json")
    assert benched.exit_code == 0, benched.output
    assert json.loads(benched.stdout)["latency_ms"]["p50"] > 0
