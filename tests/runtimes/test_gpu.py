"""--device gpu on LiteRT's GPU accelerator and ONNX Runtime's WebGPU provider, run for real on SwiftShader (a
CPU-only Vulkan adapter: EDGEDEPLOY_SOFTWARE_GPU=1), the refusals with no usable adapter, and fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import edgedeploy
from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError, GpuFallbackError
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.runtimes.litert.gpu import parse_adapter, parse_cpu_ops
from tests.conftest import swiftshader_icd

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A random MobileNetV2 0.35 at 96 px: SwiftShader runs WebGPU's shaders on the CPU, slowly."""
    out = tmp_path_factory.mktemp("small-onnx")
    return Path(edgedeploy.export("mobilenet_v2", "onnx", weights="random", width=0.35, resolution=96, out=out,
                                  parity_images=2, threads=2).path)


@pytest.fixture(scope="module")
def round_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class 'classifier' ending in Round, an op the WebGPU provider has no kernel for."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]), helper.make_node("Round", ["flat"], ["scores"])]
    path = tmp_path_factory.mktemp("round") / "round.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]),
              path)
    return path


def _eval(model: Path, val_dir: Path, *extra: str) -> dict:
    result = CliRunner().invoke(cli, ["eval", str(model), "--data", str(val_dir), "--limit", "12", "--json", *extra])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_tflite_fp32_on_the_gpu_accelerator_agrees_with_the_cpu(tflite_fp32, val_dir, software_gpu):
    cpu = _eval(tflite_fp32.path, val_dir)
    gpu = _eval(tflite_fp32.path, val_dir, "--device", "gpu")
    assert gpu["device"] == "gpu" and gpu["reference"] == str(tflite_fp32.path) and gpu["reference_device"] == "cpu"
    assert gpu["top1"] == cpu["top1"] and gpu["agreement"] == 100.0
    assert gpu["max_abs_diff"] < 1e-3  # SwiftShader has no shader-f16: fp32 arithmetic in another order
    execution = gpu["execution"]
    assert execution["accelerator"] == "LiteRT GPU accelerator (WebGPU)" and execution["fully_accelerated"]
    assert execution["cpu_ops"] == [] and execution["software"] is True
    assert (execution["adapter"]["name"], execution["adapter"]["backend"]) == ("SwiftShader Device (Subzero)", "Vulkan")
    assert execution["precision"].startswith("fp16")
    fp32 = load_runner(str(tflite_fp32.path), LoadOptions(accelerator="gpu", gpu_precision="fp32"))
    assert fp32.execution()["precision"] == "fp32 (enforced)"


def test_tflite_int8_runs_on_the_gpu_accelerator(tflite_int8, val_dir, software_gpu):
    # The accelerator takes the int8 file whole and computes it in float (measured on SwiftShader: the dequantized
    # logits within 0.47 of XNNPACK's int8 kernels, top-1 agreement 100% on 24 images).
    gpu = _eval(tflite_int8.path, val_dir, "--device", "gpu")
    assert gpu["execution"]["fully_accelerated"] and gpu["agreement"] >= 90.0
    assert 0 < gpu["max_abs_diff"] < 2.0


def test_onnx_on_the_webgpu_provider_equals_the_cpu(small_onnx, software_gpu):
    gpu = load_runner(str(small_onnx), LoadOptions(accelerator="gpu"))
    cpu = load_runner(str(small_onnx), LoadOptions())
    images = np.random.default_rng(1).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(gpu.predict(images), cpu.predict(images), atol=1e-4)
    execution = gpu.execution()
    assert execution["accelerator"] == "ONNX Runtime WebGPU provider" and execution["fully_accelerated"]
    assert execution["adapter"]["name"] == "SwiftShader Device (Subzero)" and execution["software"] is True
    assert gpu.versions()["onnxruntime-ep-webgpu"]
    from_api = edgedeploy.load(small_onnx, accelerator="gpu")  # the Python API's way
    assert from_api.execution()["accelerator"] == "ONNX Runtime WebGPU provider"
    with pytest.raises(ConfigError, match="accelerator must be cpu or gpu, got 'tpu'"):
        edgedeploy.load(small_onnx, accelerator="tpu")
    result = CliRunner().invoke(cli, ["bench", str(small_onnx), "--device", "gpu", "--runs", "3", "--warmup", "1",
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["execution"]["accelerator"] == "ONNX Runtime WebGPU provider"


def test_an_op_without_a_webgpu_kernel_is_refused_or_listed(round_onnx, software_gpu):
    options = LoadOptions(accelerator="gpu", mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(GpuFallbackError, match="WebGPU provider has no GPU kernel for Round; --gpu-fallback"):
        load_runner(str(round_onnx), options)
    runner = load_runner(str(round_onnx), LoadOptions(**{**options.__dict__, "gpu_fallback": True}))
    assert runner.execution()["cpu_ops"] == ["Round"] and not runner.execution()["fully_accelerated"]


def test_no_usable_adapter_is_one_line_and_exit_5(tflite_fp32, small_onnx, monkeypatch):
    icd = swiftshader_icd()
    if icd is None:
        pytest.skip("no Vulkan loader (libvulkan1) or SwiftShader ICD (Debian's chromium)")
    monkeypatch.delenv("EDGEDEPLOY_SOFTWARE_GPU", raising=False)
    monkeypatch.setenv("VK_ICD_FILENAMES", icd)
    for model in (tflite_fp32.path, small_onnx):
        result = CliRunner().invoke(cli, ["bench", str(model), "--device", "gpu", "--runs", "1"])
        assert result.exit_code == 5 and result.stderr.count("\n") == 1, result.stderr
        assert "found only a CPU-only adapter (SwiftShader Device (Subzero), a software rasterizer)" in result.stderr
    # No driver at all: in a process of its own (Dawn keeps the Vulkan instance it made first for the process).
    env = {**os.environ, "VK_ICD_FILENAMES": "/nonexistent/icd.json"}
    for model in (tflite_fp32.path, small_onnx):
        done = subprocess.run([sys.executable, "-m", "edgedeploy", "bench", str(model), "--device", "gpu"], env=env,
                              check=False, capture_output=True, text=True, timeout=300)
        assert done.returncode == 5 and done.stderr.count("\n") == 1, done.stderr
        assert "no Vulkan adapter (the loader found no driver" in done.stderr


def test_devices_lists_each_gpu_accelerator(monkeypatch):
    icd = swiftshader_icd()
    if icd is None:
        pytest.skip("no Vulkan loader (libvulkan1) or SwiftShader ICD (Debian's chromium)")
    monkeypatch.setenv("VK_ICD_FILENAMES", icd)
    for software, usable in (("0", False), ("1", True)):
        monkeypatch.setenv("EDGEDEPLOY_SOFTWARE_GPU", software)
        result = CliRunner().invoke(cli, ["devices", "--json"])
        rows = {r["accelerator"]: r for r in json.loads(result.stdout)["gpu_accelerators"]}
        assert {"LiteRT GPU accelerator (WebGPU)", "ONNX Runtime WebGPU provider", "ONNX Runtime CUDA/TensorRT",
                "OpenVINO GPU plugin"} == set(rows)
        for name in ("LiteRT GPU accelerator (WebGPU)", "ONNX Runtime WebGPU provider"):
            assert rows[name]["usable"] is usable and "SwiftShader Device (Subzero)" in rows[name]["detail"]
    human = CliRunner().invoke(cli, ["devices"]).stdout
    assert "GPU accelerator" in human and "LiteRT GPU accelerator (WebGPU)" in human


def test_the_accelerator_log_is_read_for_adapter_and_fallback_ops():
    log = ("I0000 00:00:1 environment.cc:532] Selected adapter: NVIDIA H100 80GB HBM3, arch=hopper, vendor=nvidia, "
           "backend=Vulkan, adapterType=DiscreteGPU\nERROR: Following operations are not supported by GPU delegate:\n"
           "CUSTOM TFLite_Detection_PostProcess: TFLite_Detection_PostProcess\nGATHER_ND: Operation is not supported.\n"
           "63 operations will run on the GPU, and the remaining 2 operations will run on the CPU.\n")
    adapter = parse_adapter(log)
    assert (adapter.name, adapter.vendor, adapter.type, adapter.backend) == ("NVIDIA H100 80GB HBM3", "nvidia",
                                                                            "DiscreteGPU", "Vulkan")
    assert not adapter.software and parse_adapter(log.replace("DiscreteGPU", "CPU / Software")).software
    assert parse_cpu_ops(log) == ["CUSTOM TFLite_Detection_PostProcess", "GATHER_ND"]
    assert parse_adapter("") is None and parse_cpu_ops("") == []


def test_inspect_says_which_ops_would_run_on_the_cpu(round_onnx, small_onnx, software_gpu):
    result = CliRunner().invoke(cli, ["inspect", str(round_onnx), "--device", "gpu", "--mean", "0.5", "0.5", "0.5",
                                      "--std", "0.5", "0.5", "0.5", "--json"])
    assert result.exit_code == 0, result.stderr
    gpu = json.loads(result.stdout)["gpu"]
    assert gpu["cpu_ops"] == ["Round"] and gpu["fully_accelerated"] is False and gpu["adapter"]["software"]
    human = CliRunner().invoke(cli, ["inspect", str(small_onnx), "--device", "gpu"]).stdout
    assert "ONNX Runtime WebGPU provider on SwiftShader Device (Subzero)" in human and "fully on the GPU" in human
    refused = CliRunner().invoke(cli, ["inspect", str(small_onnx), "--device", "cpu"])
    assert refused.exit_code == 2 and "a GPU device only" in refused.stderr
