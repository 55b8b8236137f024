"""Device profiles as data, user profiles, reachability, and the GPU device's clear refusals."""

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError, DependencyError
from edgedeploy.devices import driver_for, load_devices
from edgedeploy.devices.local import gpu_status
from edgedeploy.devices.transports import _tool_error, list_adb_devices
from edgedeploy.runtimes import LoadOptions, load_runner


def test_builtin_profiles():
    devices = load_devices()
    assert {"cpu", "gpu", "pixel", "pixel-8-pro", "pixel-7", "rpi5", "jetson-orin"} <= set(devices)
    assert devices["pixel"].transport == "adb" and devices["pixel"].abi == "arm64-v8a"
    assert set(devices["pixel"].delegates) == {"xnnpack", "cpu", "gpu", "nnapi"}
    assert devices["rpi5"].transport == "ssh" and devices["rpi5"].host == "raspberrypi.local"
    assert devices["pixel"].default_threads() == 4


def test_user_profiles_add_and_override(tmp_path, monkeypatch):
    extra = tmp_path / "devices.yaml"
    extra.write_text("- name: rpi5\n  description: my Pi\n  transport: ssh\n  host: pi@10.0.0.7\n"
                     "  abi: aarch64\n  runtimes: [litert]\n  delegates: [xnnpack]\n"
                     "- name: s24\n  description: Galaxy S24\n  transport: adb\n  model: SM-S921B\n"
                     "  abi: arm64-v8a\n  runtimes: [litert]\n  delegates: [xnnpack, gpu]\n")
    devices = load_devices(str(extra))
    assert devices["rpi5"].host == "pi@10.0.0.7" and devices["s24"].model == "SM-S921B"
    monkeypatch.setenv("EDGEDEPLOY_DEVICES", str(extra))
    assert "s24" in load_devices()


@pytest.mark.parametrize("text, message", [
    ("- name: x\n  description: d\n  transport: serial\n  runtimes: [litert]\n",
     r"devices.yaml:3: 0.transport: Input should be 'local', 'adb', 'qemu' or 'ssh'"),
    ("- name: x\n  description: d\n  transport: adb\n  runtimes: [litert]\n  colour: red\n",
     r"devices.yaml:5: 0.colour: unknown key"),
    ("name: x\n", r"devices.yaml: a device profile file is a YAML list"),
])
def test_bad_profile_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_devices(str(path))


def test_devices_command_lists_reachability(monkeypatch, tmp_path):
    # No adb, ssh or qemu on PATH: every remote probe must answer at once, saying what is missing.
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(cli, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["devices"]}
    assert rows["cpu"]["reachable"] and "logical CPUs" in rows["cpu"]["detail"]
    assert "int8 features: " in rows["cpu"]["detail"]  # int8 speed-ups depend on them (VNNI, dotprod)
    assert not rows["pixel"]["reachable"] and rows["pixel"]["detail"].startswith("adb not found")
    assert rows["rpi5"]["detail"] == "ssh not found: install an OpenSSH client"
    assert rows["arm64-emu"]["detail"].startswith("qemu-aarch64-static not found")


def test_setup_of_an_in_process_device_is_refused():
    result = CliRunner().invoke(cli, ["devices", "setup", "cpu"])
    assert result.exit_code == 2 and "nothing to set up" in result.output


@pytest.mark.parametrize("stderr, message", [
    ("adb: no devices/emulators found\n", "no devices/emulators found"),
    ("error: no devices/emulators found\n", "no devices/emulators found"),  # older clients (Debian's 29.0.6)
    ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\nadb: device offline\n",
     "device offline"),
    ("adb: error: failed to get feature set: no devices/emulators found\n",
     "failed to get feature set: no devices/emulators found"),
])
def test_tool_error_lines(stderr, message):
    assert _tool_error(stderr) == message


@pytest.mark.skipif(shutil.which("adb") is None, reason="the real adb client (Debian package adb) is not installed")
def test_real_adb_client_with_no_phone(monkeypatch):
    monkeypatch.delenv("ADB", raising=False)
    try:
        assert [d for d in list_adb_devices(timeout=30) if d.state == "device"] == []
        assert not driver_for(load_devices()["pixel"]).probe().reachable
    finally:
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)


gpu_present = gpu_status().reachable


@pytest.mark.skipif(gpu_present, reason="this host has a GPU: the refusals below do not apply")
def test_gpu_device_without_a_gpu_refuses_clearly(onnx_artifact, openvino_fp32, monkeypatch):
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")  # no Vulkan driver (the probe runs in a child)
    assert gpu_status().detail.startswith("no GPU: ONNX Runtime CUDA/TensorRT: this onnxruntime build has no CUDA/")
    with pytest.raises(DependencyError, match="ONNX Runtime WebGPU provider: no Vulkan (loader|adapter)"):
        load_runner(str(onnx_artifact.path), LoadOptions(accelerator="gpu"))
    with pytest.raises(DependencyError, match="OpenVINO sees no GPU"):
        load_runner(str(openvino_fp32.path), LoadOptions(accelerator="gpu"))
    result = CliRunner().invoke(cli, ["bench", str(onnx_artifact.path), "--device", "gpu"])
    assert result.exit_code == 5 and result.stderr.count("\n") == 1


@pytest.mark.skipif(not gpu_present, reason="no GPU on this host (CI never has one)")
def test_gpu_device_runs_on_the_gpu(onnx_artifact):
    runner = load_runner(str(onnx_artifact.path), LoadOptions(accelerator="gpu"))
    execution = runner.execution()
    assert execution.get("provider") in ("CUDAExecutionProvider", "TensorrtExecutionProvider") or (
        execution["accelerator"] == "ONNX Runtime WebGPU provider" and not execution["software"])
