"""`bench --device pixel` through a stand-in adb (tests/devices/fakes/adb) that answers like the
real client and replays real benchmark_model output. Nothing here ran against a real phone.
"""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.devices import get_device
from edgedeploy.devices.transports import AdbTransport, DeviceUnavailable, list_adb_devices

FAKES = Path(__file__).with_name("fakes")
CAPTURES = Path(__file__).with_name("captures")
PIXEL_8_PRO = {"serial": "8ABX0B1X2", "state": "device", "model": "Pixel 8 Pro", "product": "husky",
               "device": "husky", "props": {"ro.product.model": "Pixel 8 Pro", "ro.product.cpu.abi": "arm64-v8a",
                                            "ro.soc.model": "Tensor G3", "ro.build.version.release": "15"}}
PIXEL_7 = {**PIXEL_8_PRO, "serial": "29KX0Q1", "model": "Pixel 7", "product": "panther", "device": "panther",
           "props": {**PIXEL_8_PRO["props"], "ro.product.model": "Pixel 7", "ro.soc.model": "Tensor G2"}}


@pytest.fixture()
def phone(tmp_path, monkeypatch):
    """The stand-in adb on PATH, one attached Pixel 8 Pro, a device filesystem, a log of adb calls."""
    root = tmp_path / "device"
    (root / "data/local/tmp").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", json.dumps([PIXEL_8_PRO]))
    monkeypatch.setenv("FAKE_BENCHMARK_OUTPUT", str(CAPTURES / "android_cpu_xnnpack.txt"))

    class Phone:
        device_root = root
        log = tmp_path / "adb.log"
        binary = tmp_path / "benchmark_model"
        model = tmp_path / "m_int8.tflite"

        @staticmethod
        def attach(*devices):
            monkeypatch.setenv("FAKE_ADB_DEVICES", json.dumps(list(devices)))

        @staticmethod
        def replay(capture):
            monkeypatch.setenv("FAKE_BENCHMARK_OUTPUT", str(CAPTURES / capture))

        def calls(self):
            return [json.loads(line) for line in self.log.read_text().splitlines()]

    Phone.binary.write_bytes(b"\x7fELF stand-in")
    Phone.model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # a flatbuffer's header
    return Phone()


def bench(phone, *extra):
    return CliRunner().invoke(cli, ["bench", str(phone.model), "--device", "pixel", "--benchmark-binary",
                                    str(phone.binary), "--json", *extra])


def test_devices_are_listed_from_adb(phone):
    phone.attach(PIXEL_8_PRO, {**PIXEL_7, "state": "unauthorized"})
    found = list_adb_devices()
    assert [(d.serial, d.state, d.model) for d in found] == [("8ABX0B1X2", "device", "Pixel 8 Pro"),
                                                             ("29KX0Q1", "unauthorized", None)]


@pytest.mark.parametrize("devices, model, message", [
    ([], None, "no Android device attached: `adb devices` lists none"),
    ([{**PIXEL_8_PRO, "state": "unauthorized"}], None, "Android device 8ABX0B1X2 is unauthorized: accept the"),
    ([{**PIXEL_8_PRO, "state": "offline"}], None, "Android device 8ABX0B1X2 is offline: reconnect"),
    ([PIXEL_8_PRO, PIXEL_7], None, "2 Android devices attached (8ABX0B1X2, 29KX0Q1): set ANDROID_SERIAL"),
    ([PIXEL_7], "Pixel 8 Pro", "no attached Android device is a Pixel 8 Pro; attached: Pixel 7 (29KX0Q1)"),
])
def test_device_selection_errors_are_clear(phone, devices, model, message):
    phone.attach(*devices)
    with pytest.raises(DeviceUnavailable, match=message.replace("(", r"\(").replace(")", r"\)")):
        AdbTransport.connect(model)


def test_android_serial_picks_one_of_several(phone, monkeypatch):
    phone.attach(PIXEL_8_PRO, PIXEL_7)
    monkeypatch.setenv("ANDROID_SERIAL", "29KX0Q1")
    transport = AdbTransport.connect()
    assert transport.describe() == {"serial": "29KX0Q1", "model": "Pixel 7", "abi": "arm64-v8a",
                                    "soc": "Tensor G2", "android": "15"}


def test_no_adb_on_path_is_one_line_exit_5(phone, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = bench(phone)
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"].startswith("adb not found: install Android platform-tools")


def test_no_phone_is_one_line_exit_5_without_hanging(phone):
    phone.attach()
    result = bench(phone)
    assert result.exit_code == 5
    assert result.stderr == ("error: no Android device attached: `adb devices` lists none "
                             "(connect the phone by USB with USB debugging on)\n")


def test_bench_pushes_runs_parses_and_cleans_up(phone):
    result = bench(phone, "--threads", "4")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["device"] == "pixel" and out["runtime"] == "litert" and out["tool"] == "benchmark_model"
    assert out["latency_ms"]["mean"] == pytest.approx(699.438) and out["latency_ms"]["median"] == pytest.approx(576.856)
    assert out["runs"] == 50 and out["init_ms"] == pytest.approx(102.32)
    assert out["memory_mb"]["overall"] == pytest.approx(99.2031)
    assert out["delegate"]["requested"] == "xnnpack" and out["delegate"]["status"] == "full"
    assert out["device_info"]["model"] == "Pixel 8 Pro" and out["device_info"]["soc"] == "Tensor G3"
    calls = phone.calls()
    run = next(c for c in calls if c[2:3] == ["shell"] and c[3].endswith("/benchmark_model"))
    assert run[:3] == ["-s", "8ABX0B1X2", "shell"]
    assert "--num_threads=4" in run and "--use_xnnpack=true" in run
    assert any(a.startswith("--graph=/data/local/tmp/edgedeploy-") and a.endswith("/m_int8.tflite") for a in run)
    assert [c[3:5] for c in calls if c[3:5] == ["rm", "-rf"]]
    assert list((phone.device_root / "data/local/tmp").iterdir()) == []  # nothing left on the phone


def test_gpu_delegate_that_took_the_whole_graph(phone):
    phone.replay("android_gpu_full_nnapi_none.txt")
    out = json.loads(bench(phone, "--delegate", "gpu").stdout)
    assert out["delegate"]["status"] == "full" and out["delegate"]["nodes_delegated"] == 49
    assert out["latency_ms"]["mean"] == pytest.approx(309.35)


def test_delegate_that_fell_back_entirely_is_an_error_not_a_cpu_figure(phone):
    phone.replay("android_cpu_xnnpack.txt")  # asked for GPU, got a plain CPU run
    result = bench(phone, "--delegate", "gpu")
    assert result.exit_code == 4
    assert "the gpu delegate was requested on pixel but took none of the graph" in result.stderr
    assert list((phone.device_root / "data/local/tmp").iterdir()) == []


def test_partial_delegation_is_loud(phone):
    phone.replay("android_nnapi_partial_logcat.txt")
    result = CliRunner().invoke(cli, ["bench", str(phone.model), "--device", "pixel", "--benchmark-binary",
                                      str(phone.binary), "--delegate", "nnapi"])
    assert result.exit_code == 0, result.output
    assert "WARNING: the nnapi delegate took only 44 delegate kernels; the rest ran on the CPU" in result.stderr


def test_benchmark_model_failure_is_one_line_and_cleans_up(phone):
    phone.model.write_bytes(b"not a flatbuffer")
    result = bench(phone)
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"].startswith("benchmark_model failed on pixel (exit 1): Failed to load model "
                                                         "/data/local/tmp/edgedeploy-")
    assert list((phone.device_root / "data/local/tmp").iterdir()) == []


def test_wrong_runtime_or_delegate_for_the_device(phone, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["bench", str(onnx), "--device", "pixel"])
    assert result.exit_code == 2 and "device pixel does not run onnxruntime models; it runs litert" in result.stderr
    result = CliRunner().invoke(cli, ["bench", str(phone.model), "--device", "cpu", "--delegate", "nnapi"])
    assert result.exit_code == 2 and "device cpu does not offer the nnapi delegate (it offers: xnnpack, cpu)" in result.stderr


def test_missing_benchmark_binary_says_how_to_get_one(phone, private_cache):
    result = CliRunner().invoke(cli, ["bench", str(phone.model), "--device", "pixel-8-pro"])
    assert result.exit_code == 5
    assert "no benchmark_model for arm64-v8a: pass --benchmark-binary PATH, or run `edgedeploy devices setup " \
           "pixel-8-pro`" in result.stderr


def test_named_pixel_profile_requires_that_model(phone):
    phone.attach(PIXEL_7)
    result = CliRunner().invoke(cli, ["bench", str(phone.model), "--device", "pixel-8-pro", "--benchmark-binary",
                                      str(phone.binary)])
    assert result.exit_code == 5 and "no attached Android device is a Pixel 8 Pro" in result.stderr
    assert get_device("pixel-8-pro").soc == "Tensor G3"


def test_remote_latency_is_typed_and_its_json_reads_back(phone):
    from edgedeploy.devices import LatencyResult
    from edgedeploy.measure.on_device import bench_on_device
    from edgedeploy.runtimes import LoadOptions

    phone.replay("android_gpu_full_nnapi_none.txt")
    result = bench_on_device(str(phone.model), get_device("pixel"), LoadOptions(threads=4), 50, 5, "gpu",
                             phone.binary)
    remote = result.benchmark_model
    assert remote is not None and result.in_process is None and not result.emulated
    assert remote.delegate.status == "full" and remote.delegate.nodes_delegated == 49
    assert result.latency_ms.mean == pytest.approx(309.35) and remote.device_info["soc"] == "Tensor G3"
    cli_json = {k: v for k, v in json.loads(bench(phone, "--delegate", "gpu").stdout).items()
                if k not in ("model", "runtime", "device", "host", "verified")}
    assert cli_json == result.to_dict() and LatencyResult.from_dict(cli_json) == result


def test_failed_runs_are_remote_run_errors(phone):
    from edgedeploy.core.errors import RemoteRunError
    from edgedeploy.measure.on_device import bench_on_device
    from edgedeploy.runtimes import LoadOptions

    phone.replay("android_cpu_xnnpack.txt")
    with pytest.raises(RemoteRunError, match="the gpu delegate was requested on pixel but took none of the graph"):
        bench_on_device(str(phone.model), get_device("pixel"), LoadOptions(threads=4), 5, 0, "gpu", phone.binary)
    phone.model.write_bytes(b"not a flatbuffer")
    with pytest.raises(RemoteRunError, match=r"benchmark_model failed on pixel \(exit 1\)"):
        bench_on_device(str(phone.model), get_device("pixel"), LoadOptions(threads=4), 5, 0, None, phone.binary)


def test_probe_describes_the_attached_phone(phone):
    from edgedeploy.devices import driver_for

    assert driver_for(get_device("pixel-8-pro")).probe().detail == "Pixel 8 Pro (8ABX0B1X2), arm64-v8a, Android 15"
    phone.attach(PIXEL_7)
    state = driver_for(get_device("pixel-8-pro")).probe()
    assert not state.reachable and state.detail.startswith("no attached Android device is a Pixel 8 Pro")
