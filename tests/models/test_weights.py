import socket

import pytest
import torch

from edgedeploy.core.errors import DependencyError, WeightsError
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.models.mobilenet_v2.network import MobileNetV2
from edgedeploy.models.weights import build_model, resolve_weights


def test_sample_weights_load_with_their_preprocessing(sample_weights):
    model, loaded = build_model(MobileNetV2Config(), "sample")
    assert loaded.mean == (0.5, 0.5, 0.5) and loaded.std == (0.5, 0.5, 0.5)
    assert loaded.sha256.startswith("56f77ad4")
    ref = torch.load(sample_weights, weights_only=True)
    assert torch.equal(model.state_dict()["classifier.1.weight"], ref["classifier.1.weight"])


def test_a_copy_of_the_sample_file_is_recognised_by_hash(sample_weights, tmp_path):
    copy = tmp_path / "mine.pth"
    copy.write_bytes(sample_weights.read_bytes())
    assert resolve_weights(str(copy)).mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", None])
def test_checkpoint_dicts_and_dataparallel_prefix(tmp_path, wrapper):
    state = MobileNetV2().state_dict()
    if wrapper is None:
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrapper: state, "epoch": torch.tensor(3)}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    model, loaded = build_model(MobileNetV2Config(), str(path))
    assert loaded.mean is None  # unknown checkpoint: no preprocessing claimed
    assert torch.equal(model.state_dict()["features.0.0.weight"], state["features.0.0.weight"])


def test_wrong_keys_are_named_and_nothing_is_loaded(tmp_path):
    state = MobileNetV2().state_dict()
    state["features.0.0.weights"] = state.pop("features.0.0.weight")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        build_model(MobileNetV2Config(), str(path))
    msg = str(err.value)
    assert "missing keys: features.0.0.weight" in msg and "unexpected keys: features.0.0.weights" in msg
    assert "\n" not in msg


def test_wrong_class_count_reports_shapes(sample_weights):
    with pytest.raises(WeightsError, match=r"wrong shapes: classifier.1.weight \(1000, 1280\) != \(10, 1280\)"):
        build_model(MobileNetV2Config(num_classes=10), str(sample_weights))


def test_wrong_width_reports_mismatch_count(sample_weights):
    with pytest.raises(WeightsError, match=r"wrong shapes: .*\(\+\d+ more\)"):
        build_model(MobileNetV2Config(width=0.5), str(sample_weights))


def test_nan_weights_are_refused(tmp_path):
    state = MobileNetV2().state_dict()
    state["classifier.1.bias"][3] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="NaN or Inf"):
        build_model(MobileNetV2Config(), str(path))


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _Payload()}, path)
    with pytest.raises(WeightsError, match="refused to load"):
        resolve_weights(str(path))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_corrupt_files_give_one_line_errors(tmp_path, content):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint") as err:
        resolve_weights(str(path))
    assert "\n" not in str(err.value)


def test_truncated_real_checkpoint(tmp_path, sample_weights):
    path = tmp_path / "truncated.pth"
    path.write_bytes(sample_weights.read_bytes()[: 5_000_000])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        resolve_weights(str(path))


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        resolve_weights(str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsError, match="unknown weights 'imagenet21k'"):
        resolve_weights("imagenet21k")


def test_random_weights_are_seeded():
    a, _ = build_model(MobileNetV2Config(width=0.35, resolution=96), "random")
    b, _ = build_model(MobileNetV2Config(width=0.35, resolution=96), "random")
    assert torch.equal(a.state_dict()["features.0.0.weight"], b.state_dict()["features.0.0.weight"])


def test_imagenet_download_offline_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache

    def no_network(*_args, **_kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DependencyError, match="cannot download the 'imagenet' weights.*offline, put mobilenet_v2-b0353104.pth"):
        resolve_weights("imagenet")
    assert list(tmp_path.rglob("*.pth*")) == []  # no partial download left behind


def test_imagenet_weights_from_the_hub_cache_are_hash_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    torch.save(MobileNetV2().state_dict(), cached)  # right format, wrong content
    with pytest.raises(WeightsError, match="does not match torchvision's"):
        resolve_weights("imagenet")
