"""arm64-emu for real: LiteRT's aarch64 wheel in Debian's arm64 CPython under qemu-user.

Needs qemu-aarch64-static (Debian qemu-user-static; .ci/run installs it when it can) and,
once per test session, the Debian mirror and PyPI for the set-up; skips with the reason otherwise.
"""

import shutil

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import DependencyError
from edgedeploy.recipes.schema import RecipeError, load_recipe

needs_qemu = pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None,
                                reason="qemu-aarch64-static not installed (Debian package qemu-user-static)")


@pytest.fixture(scope="session")
def emulator():
    pytest.importorskip("debian", reason="needs the [emu] extra (python-debian)")
    from edgedeploy.devices.qemu.rootfs import build_rootfs

    try:
        return build_rootfs()
    except DependencyError as exc:
        if "cannot download" in str(exc) or "pip could not download" in str(exc):
            pytest.skip(f"arm64-emu set-up needs the network once: {exc}")
        raise


@needs_qemu
def test_status_before_setup_says_what_to_run(tmp_path, monkeypatch, tflite_int8):
    from edgedeploy.devices.qemu.guest import emulator_status

    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path))
    state = emulator_status()
    assert not state.reachable and "run `edgedeploy devices setup arm64-emu`" in state.detail
    result = CliRunner().invoke(cli, ["bench", str(tflite_int8.path), "--device", "arm64-emu", "--runs", "1"])
    assert result.exit_code == 5
    assert result.stderr == "error: arm64-emu is not set up: run `edgedeploy devices setup arm64-emu`\n"


@needs_qemu
@pytest.mark.slow
def test_setup_builds_an_aarch64_python_with_litert(emulator):
    assert emulator["packages"] == 13 and emulator["cpu"] == "cortex-a76"
    assert any(w.startswith("ai_edge_litert-") and "aarch64" in w for w in emulator["wheels"])
    from edgedeploy.devices.qemu.guest import emulator_status

    assert emulator_status().reachable


@needs_qemu
@pytest.mark.slow
def test_int8_model_on_arm_kernels_matches_x86_exactly(emulator, tflite_int8, val_dir):
    result = CliRunner().invoke(cli, ["eval", str(tflite_int8.path), "--data", str(val_dir), "--limit", "24",
                                      "--device", "arm64-emu", "--reference", str(tflite_int8.path), "--json"])
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.stdout)
    assert out["device"] == "arm64-emu" and out["execution"]["emulated"] and out["n"] == 24
    # XNNPACK's int8 kernels on (emulated) Cortex-A76 give the x86 outputs bit for bit.
    assert out["agreement"] == 100.0 and out["max_abs_diff"] == 0.0
    assert out["top1"] >= 70


@needs_qemu
@pytest.mark.slow
def test_litert_torch_model_on_arm_kernels_agrees_with_x86(emulator, litert_int8, val_dir):
    """The direct route's .tflite (AI Edge Quantizer int8) on the same aarch64 LiteRT."""
    import json

    result = CliRunner().invoke(cli, ["eval", str(litert_int8.path), "--data", str(val_dir), "--limit", "24",
                                      "--device", "arm64-emu", "--reference", str(litert_int8.path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["device"] == "arm64-emu" and out["n"] == 24
    assert out["agreement"] == 100.0 and out["max_abs_diff"] <= 0.1
    assert out["top1"] >= 70


@needs_qemu
@pytest.mark.slow
def test_emulated_latency_is_flagged(emulator, tflite_int8):
    result = CliRunner().invoke(cli, ["bench", str(tflite_int8.path), "--device", "arm64-emu", "--runs", "2",
                                      "--warmup", "0", "--json"])
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.stdout)
    assert out["emulated"] and out["note"] == "emulated: not device latency" and out["machine"] == "aarch64"
    assert out["latency_ms"]["p50"] > 0
    human = CliRunner().invoke(cli, ["bench", str(tflite_int8.path), "--device", "arm64-emu", "--runs", "1",
                                     "--warmup", "0"])
    assert "EMULATED latency ms (not device latency)" in human.stdout


def test_recipes_keep_emulated_latency_out(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nevaluation: {data: v}\ndevices: [cpu, arm64-emu]\ntargets: {onnx: }\n")
    with pytest.raises(RecipeError, match=r"r.yaml:3: devices.1: arm64-emu is emulated"):
        load_recipe(path)


def test_eval_on_a_remote_device_is_refused(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["eval", str(model), "--data", str(tmp_path), "--device", "pixel"])
    assert result.exit_code == 2 and "on pixel only latency is measured (bench)" in result.stderr
