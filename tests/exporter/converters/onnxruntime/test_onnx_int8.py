"""onnx-int8: ONNX Runtime static quantization (QDQ, per-channel) on the real weights."""

import json
from collections import Counter

import onnx
import pytest

from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.runtimes import LoadOptions, load_runner

# onnx_int8: the session fixture (tests/conftest.py), also the one test_pipeline checks.


def test_quantization_parameters_cost_at_most_0_7_points(onnx_int8, val_against_torch):
    """The QDQ model's own numbers, executed as simulated quantization (no int8 kernel fusion).

    This isolates what the quantizer decided (scales, zero points, per-channel weights)
    from the CPU's int8 kernels; see the next test and export/converters/onnx_int8.py.
    """
    import onnxruntime as ort

    from edgedeploy.runtimes.onnxruntime.runner import OnnxRuntimeRunner

    runner = load_runner(str(onnx_int8.path), LoadOptions(threads=2))
    assert isinstance(runner, OnnxRuntimeRunner)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    runner.session = ort.InferenceSession(str(onnx_int8.path), so, providers=["CPUExecutionProvider"])
    res = val_against_torch(runner=runner)
    assert val_against_torch.torch.top1 - res.top1 <= 0.7
    assert res.agreement >= 90.0


def test_int8_kernels_on_this_cpu_stay_within_4_points(onnx_int8, val_against_torch):
    """ORT's fused int8 kernels as deployed. On AVX2 without VNNI, U8S8 saturates: 73.50 measured."""
    res = val_against_torch(onnx_int8.path)
    assert val_against_torch.torch.top1 - res.top1 <= 4.0


def test_qdq_graph_with_per_channel_int8_weights(onnx_int8):
    model = onnx.load(str(onnx_int8.path))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 52 and ops["QuantizeLinear"] >= 52 and ops["DequantizeLinear"] >= 104
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4]
    assert len(weight_dq) == 52
    # Per-channel: one scale per output channel.
    assert all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in weight_dq)
    m = json.loads(onnx_int8.manifest.read_text())
    assert m["export"]["format"] == "QDQ" and m["export"]["calib_method"] == "minmax"
    assert onnx_int8.size_bytes < 4.5e6


def test_percentile_calibration_is_selectable(tmp_path, data_root):
    r = export(ExportRequest(target="onnx-int8", calib_method="percentile", calib_size=16, out_dir=tmp_path,
                             threads=2, parity_images=8))
    assert json.loads(r.manifest.read_text())["export"]["calib_method"] == "percentile"
    assert r.parity["agreement"] >= 85.0


def test_calib_method_only_where_offered(tmp_path):
    with pytest.raises(ConfigError, match="calibration method entropy does not apply to tflite-int8"):
        export(ExportRequest(target="tflite-int8", calib_method="entropy", out_dir=tmp_path))


_RUN_ORT = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
if sys.argv[4] == "simulated":
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
batch = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([session.run(None, {"input": x[None]})[0] for x in batch]))
"""


def _outputs_on(cpu: str | None, model, batch, tmp_path, mode: str = "deployed"):
    """The model's outputs from ONNX Runtime in a fresh process: natively, or under qemu as ``cpu`` (a CPU model
    without VNNI: the emulated CPUID makes ONNX Runtime pick its AVX2 U8S8 kernels, whose VPMADDUBSW qemu
    computes with the real saturation); ``simulated``: graph optimizations off, the QDQ model computed in float
    (no int8 kernel, the same on every CPU)."""
    import shutil
    import subprocess
    import sys

    import numpy as np

    script, inputs, out = tmp_path / "run.py", tmp_path / "batch.npy", tmp_path / f"{cpu or 'native'}-{mode}.npy"
    script.write_text(_RUN_ORT)
    np.save(inputs, batch)
    prefix = [shutil.which("qemu-x86_64-static") or "qemu-x86_64", "-cpu", cpu] if cpu else []
    subprocess.run([*prefix, sys.executable, str(script), str(model), str(inputs), str(out), mode], check=True,
                   capture_output=True, timeout=600)
    return np.load(out)


@pytest.mark.slow
def test_default_onnx_int8_computes_the_same_on_avx2_without_vnni(tmp_path, data_root, monkeypatch):
    """The same artifact on an emulated Haswell (AVX2, no VNNI) against simulated quantization (the QDQ numbers
    computed in float: what every CPU should compute): with the channels that would saturate given 7-bit weights
    (the default) the emulated AVX2 CPU stays far closer to it than with 8-bit weights everywhere (MobileNetV2's
    first convolution alone overflows 2% of its pair sums). Compared with the CPU-independent simulation, so it
    holds on an AVX2-only host and on a VNNI one."""
    import platform
    import shutil

    import numpy as np

    from edgedeploy.core.cpu import int8_kernels_saturate
    from edgedeploy.data.datasets import ImageFolder
    from edgedeploy.data.preprocess import preprocess
    from edgedeploy.exporter.converters.onnxruntime import onnx_int8 as converter

    if platform.machine() != "x86_64" or not (shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")):
        pytest.skip("needs x86_64 and qemu-user (Debian's qemu-user-static) to emulate a CPU without VNNI")
    request = ExportRequest(target="onnx-int8", weights="sample-offgrid", config=MobileNetV2Config(resolution=128),
                            calib_size=32, parity_images=8, threads=2, out_dir=tmp_path / "default")
    default = export(request)
    details = json.loads(default.manifest.read_text())["export"]["weights_7bit"]
    assert details["layers"] and 0 < details["channels"] < 9000
    monkeypatch.setattr(converter, "SATURATION_FRACTION", 1.0)  # nothing is 7-bit: ONNX Runtime's plain U8S8
    plain = export(request.replace(out_dir=tmp_path / "plain"))
    assert json.loads(plain.manifest.read_text())["export"]["weights_7bit"]["layers"] == []
    runner = load_runner(str(default.path), LoadOptions(threads=2))
    val = ImageFolder.open(data_root / "imagenet-subset" / "val").subset(24)
    batch = np.stack([preprocess(item.image, runner.io.preprocessing) for item in val]).transpose(0, 3, 1, 2)
    batch = np.ascontiguousarray(batch, dtype=np.float32)

    def against_simulation(path, name):
        folder = tmp_path / name
        folder.mkdir()
        simulated = _outputs_on(None, path, batch, folder, "simulated")
        runs = {cpu: _outputs_on(cpu, path, batch, folder) for cpu in ("Haswell", None)}
        return {cpu or "host": (float(np.sqrt(np.mean(np.square(out - simulated)))),
                                float((out.argmax(1) == simulated.argmax(1)).mean())) for cpu, out in runs.items()}

    fixed, saturating = against_simulation(default.path, "fixed"), against_simulation(plain.path, "saturating")
    if saturating["Haswell"][0] < 1.5 * min(fixed["host"][0], saturating["host"][0]) and not int8_kernels_saturate():
        pytest.skip("this qemu's Haswell does not saturate (no AVX2 emulation before qemu 7.2): nothing to compare")
    print(f"rms |diff| and agreement with the simulated quantization: default {fixed}, 8-bit everywhere {saturating}")
    # Measured at 128 px on 24 images: rms 0.41 (default) vs 0.97 (8-bit) on the emulated Haswell, 0.18 on a VNNI
    # host: the channels left at 8 bits (below 1e-4 overflow) still saturate a little.
    assert fixed["Haswell"][0] < 0.6 * saturating["Haswell"][0]
    assert fixed["host"][0] <= fixed["Haswell"][0] * 1.05
