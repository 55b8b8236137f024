"""inspect and bench warn when an int8 ONNX model with 8-bit weights runs where ONNX Runtime's kernels saturate."""

from __future__ import annotations

import json
import logging
import shutil

from edgedeploy.runtimes import LoadOptions, inspect_model, load_runner
from edgedeploy.runtimes.onnxruntime import inspector, runner


def _saturating_cpu(monkeypatch):
    monkeypatch.setattr(runner, "int8_kernels_saturate", lambda: True)


def test_an_8_bit_int8_model_warns_on_a_cpu_without_vnni(onnx_int8, tmp_path, monkeypatch, caplog):
    """Without its manifest (a model from elsewhere) the weights' 8 bits decide; inspect says it too."""
    _saturating_cpu(monkeypatch)
    foreign = tmp_path / "foreign_int8.onnx"
    shutil.copy(onnx_int8.path, foreign)
    with caplog.at_level(logging.WARNING):
        loaded = load_runner(str(foreign), LoadOptions(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert "U8S8 kernels may saturate" in loaded.execution()["warning"]
    assert any("VPMADDUBSW" in r.getMessage() for r in caplog.records)
    assert "U8S8 kernels may saturate" in inspect_model(str(foreign), LoadOptions())["warning"]
    assert inspector.saturation_warning is runner.saturation_warning  # one rule for both commands


def test_edgedeploy_exports_and_float_models_do_not_warn(onnx_int8, onnx_artifact, monkeypatch):
    _saturating_cpu(monkeypatch)
    assert "weights_7bit" in json.loads(onnx_int8.manifest.read_text())["export"]
    assert "warning" not in load_runner(str(onnx_int8.path), LoadOptions()).execution()
    assert "warning" not in inspect_model(str(onnx_artifact.path), LoadOptions())
    assert runner.saturation_risk(onnx_artifact.path) is None


def test_nothing_is_said_on_a_cpu_whose_kernels_do_not_saturate(onnx_int8, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "int8_kernels_saturate", lambda: False)
    foreign = tmp_path / "foreign_int8.onnx"
    shutil.copy(onnx_int8.path, foreign)
    assert runner.saturation_risk(foreign) is not None  # 8-bit weights: the risk is there ...
    assert "warning" not in inspect_model(str(foreign), LoadOptions())  # ... but not on this CPU
