"""ExecuTorch targets: torch.export -> XNNPACK partitioner -> .pte, int8 through PT2E."""

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

pytest.importorskip("executorch", reason="needs the [executorch] extra")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.exporter.pipeline import ExportRequest, export  # noqa: E402
from edgedeploy.models import MODELS, ModelFamily, register_model  # noqa: E402
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config  # noqa: E402
from edgedeploy.runtimes.executorch.precision import weight_dtypes  # noqa: E402

# A network ONNX's tracer exports (it records one branch) but torch.export refuses: the branch
# depends on the input's values.
BRANCHY = '''
from dataclasses import dataclass
from typing import ClassVar

from torch import nn


@dataclass(frozen=True)
class BranchyConfig:
    arch: ClassVar[str] = "branchy"
    width: float = 1.0
    resolution: int = 32
    num_classes: int = 10

    @property
    def name(self) -> str:
        return f"branchy_{self.resolution}"


class Branchy(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.head = nn.Linear(3, config.num_classes)

    def forward(self, x):
        pooled = x.mean((2, 3))
        if pooled.sum() > 0:
            return self.head(pooled)
        return -self.head(pooled)
'''


@pytest.fixture(scope="module")
def val_results(val_against_torch, executorch_int8):
    return {"torch": val_against_torch.torch, "int8": val_against_torch(executorch_int8.path)}


@pytest.fixture()
def branchy(tmp_path, monkeypatch):
    (tmp_path / "branchy_plugin.py").write_text(textwrap.dedent(BRANCHY))
    monkeypatch.syspath_prepend(str(tmp_path))
    register_model(ModelFamily("branchy", "data-dependent control flow", "branchy_plugin:BranchyConfig",
                               "branchy_plugin:Branchy"))
    yield
    del MODELS["branchy"]
    sys.modules.pop("branchy_plugin", None)


def test_fp32_pte_matches_pytorch_offline(small_pte):
    r = small_pte  # converted with the network blocked
    assert r.parity["max_abs_diff"] < 1e-3 and r.parity["agreement"] == 100.0
    m = json.loads(r.manifest.read_text())
    assert m["input"]["layout"] == "NCHW" and m["input"]["shape"] == [1, 3, 96, 96]
    assert m["export"]["exporter"] == "torch.export" and "executorch" in m["tools"] and "onnx" not in m["tools"]
    assert m["precision"]["verified"] and m["precision"]["weights"] == {"float32": 53}
    delegation = m["export"]["delegation"]
    # Every conv, add and the classifier run inside XNNPACK; torch's mean((2, 3)) (keepdim=False)
    # is the one op XNNPACK's partitioner leaves to ExecuTorch's portable kernels.
    assert delegation["delegates"] == {"XnnpackBackend": 2} and delegation["portable_ops"] == {"aten::mean": 1}
    assert delegation["delegated_ops"]["Conv2d"] == 35 and delegation["delegated_ops"]["FullyConnected"] == 1


def test_int8_accuracy_and_agreement_on_val(val_results):
    drop = val_results["torch"].top1 - val_results["int8"].top1
    assert drop <= 0.5, f"int8 top-1 {val_results['int8'].top1} vs float {val_results['torch'].top1}"
    assert val_results["int8"].agreement >= 95.0


def test_int8_weights_and_activations_are_quantized_per_channel(executorch_int8):
    m = json.loads(executorch_int8.manifest.read_text())
    assert m["precision"]["verified"] and m["precision"]["weights"] == {"int8": 53}
    assert m["precision"]["float_layers"] == [] and m["precision"]["float_ops"] == ["aten::mean"]
    assert {w for _, w, _ in weight_dtypes(executorch_int8.path)} == {"qcint8"}  # one scale per channel
    assert {x for _, _, x in weight_dtypes(executorch_int8.path)} == {"qint8"}
    assert executorch_int8.size_bytes <= 4.0e6


def test_per_tensor_weights(tmp_path, data_root):
    # The weights' storage is what is checked: 16 calibration images, parity (not enforced) on 8.
    r = export(ExportRequest(target="executorch-int8", config=MobileNetV2Config(resolution=96), out_dir=tmp_path,
                             threads=2, weight_granularity="per-tensor", calib_size=16, parity_min_agreement=0,
                             parity_images=8))
    assert {w for _, w, _ in weight_dtypes(r.path)} == {"qint8"}
    assert json.loads(r.manifest.read_text())["export"]["weights"] == "int8 per-tensor"


@pytest.mark.parametrize("target", ["executorch-fp32", "litert-fp32"])
def test_torch_export_failure_is_one_line_exit_4_with_the_log_kept(target, branchy, tmp_path, data_root):
    if target.startswith("litert"):
        pytest.importorskip("litert_torch", reason="needs the [litert-torch] extra")
    result = CliRunner().invoke(cli, ["export", "--target", target, "--arch", "branchy", "--weights", "random",
                                      "--resolution", "32", "--num-classes", "10", "--out", str(tmp_path)])
    assert result.exit_code == 4, result.output
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "torch.export" in message and "log:" in message
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not any(n.endswith((".pte", ".tflite", ".manifest.json")) for n in names)
    assert any(n.endswith(".log") for n in names)
