"""Reliability: every bad input is one line and a documented exit code; interruption and
concurrency leave nothing half-written; the same inputs give the same bytes; memory stays flat.

The bad-input table here is the README's "Bad input" table (tests/test_readme.py checks they agree).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.hashing import sha256_file

pytestmark = pytest.mark.reliability


def _jpeg(tmp: Path, val_dir: Path, name: str) -> str:
    shutil.copyfile(next(val_dir.glob("*/*.JPEG")), tmp / name)
    return str(tmp / name)


def _nan_weights(tmp: Path, _val: Path) -> str:
    from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
    from edgedeploy.models.weights import build_model

    model, _ = build_model(MobileNetV2Config(), "random")
    state = model.state_dict()
    state["features.0.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp / "nan.pth")
    return str(tmp / "nan.pth")


def _payload(tmp: Path, _val: Path) -> str:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp / 'pwned'}",))

    torch.save({"x": Evil()}, tmp / "evil.pth")
    return str(tmp / "evil.pth")


def _file(name: str, data: bytes):
    def make(tmp: Path, _val: Path) -> str:
        (tmp / name).write_bytes(data)
        return str(tmp / name)
    return make


def _truncated(source_fixture: str, name: str, keep: int):
    def make(tmp: Path, _val: Path, artifacts: dict) -> str:
        (tmp / name).write_bytes(Path(artifacts[source_fixture]).read_bytes()[:keep])
        return str(tmp / name)
    make.needs_artifacts = True
    return make


def _images_all_corrupt(tmp: Path, _val: Path) -> str:
    folder = tmp / "imgs" / "n01440764"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.JPEG").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return str(tmp / "imgs")


# (case, command with {x} for the made file, exit code, what the user sees)
BAD_INPUTS = [
    ("zero-byte checkpoint", _file("empty.pth", b""), ["export", "--target", "onnx", "--weights", "{x}"], 3,
     "not a readable PyTorch checkpoint (EOFError)"),
    ("checkpoint with a pickled payload", _payload, ["export", "--target", "onnx", "--weights", "{x}"], 3,
     "refused"),
    ("NaN in the weights", _nan_weights, ["export", "--target", "onnx", "--weights", "{x}"], 3, "NaN"),
    ("zero-byte .onnx", _file("empty.onnx", b""), ["bench", "{x}", "--runs", "1"], 3, "ONNX Runtime cannot load it"),
    ("truncated .onnx", _truncated("onnx", "trunc.onnx", 1000), ["bench", "{x}", "--runs", "1"], 3,
     "Protobuf parsing failed"),
    ("zero-byte .tflite", _file("empty.tflite", b""), ["bench", "{x}", "--runs", "1"], 3, "LiteRT cannot load it"),
    ("truncated .tflite", _truncated("tflite", "trunc.tflite", 100_000), ["bench", "{x}", "--runs", "1"], 3,
     "not a valid Flatbuffer buffer"),
    ("a JPEG named .tflite", lambda t, v: _jpeg(t, v, "photo.tflite"), ["bench", "{x}", "--runs", "1"], 3,
     "not a valid Flatbuffer buffer"),
    ("zero-byte .xml", _file("empty.xml", b""), ["bench", "{x}", "--runs", "1"], 3, "empty.bin is missing beside it"),
    ("only undecodable images", _images_all_corrupt, ["eval", "random", "--data", "{x}"], 3,
     "none of the 3 image files could be decoded"),
    ("a recipe that builds Python objects", _file("r.yaml", b"!!python/object/apply:os.system ['echo hi']\n"),
     ["run", "{x}"], 2, "could not determine a constructor"),
    ("a results file that is not one", _file("results.json", b'{"targets": {}}'),
     ["report", "{x}"], 3, "not an edgedeploy results file"),
    ("absurd run count", lambda t, v: "", ["bench", "random", "--runs", "10000000"], 2,
     "Invalid value for '--runs': 10000000 is not in the range 1<=x<=100000."),
    ("absurd thread count", lambda t, v: "", ["bench", "sample", "--threads", "100000", "--runs", "3"], 2,
     "Invalid value for '--threads': 100000 is not in the range 1<=x<=256."),
    ("zero threads", lambda t, v: "", ["bench", "sample", "--threads", "0"], 2, "0 is not in the range 1<=x<=256."),
    ("no or negative calibration images", lambda t, v: "", ["export", "--target", "onnx", "--calib-size", "-5"], 2,
     "-5 is not in the range 1<=x<=10000000."),
    ("NaN or infinity for a number", lambda t, v: "", ["export", "--target", "onnx", "--mean", "nan", "0", "0"], 2,
     "'nan' is not a finite number"),
    ("a model factory that calls exit()", lambda t, v: "",
     ["export", "--target", "onnx", "--model", "builtins:exit", "--input-shape", "1,3,32,32"], 4,
     "builtins:exit: the factory called exit(None)"),
    ("an artifact name that is a path", lambda t, v: "", ["export", "--target", "onnx", "--name", "../../x"], 2,
     "a file name is expected"),
    ("an output folder in /proc", _file("r.yaml", b"name: r\ntargets:\n  onnx: {}\n"),
     ["run", "{x}", "--out", "/proc/x"], 3, "an output folder cannot be in /proc, /sys or /dev"),
    ("a YAML alias bomb", _file("r.yaml", ("name: bomb\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
        + "description: *i\n").encode()), ["run", "{x}"], 2, "aliases expand it to more than"),
    ("a device file as synsets", lambda t, v: str(v), ["eval", "random", "--data", "{x}", "--synsets", "/dev/zero"],
     3, "synsets file is a character device"),
]


@pytest.mark.parametrize("case, make, command, code, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_with_its_exit_code(tmp_path, val_dir, onnx_artifact, tflite_int8,
                                                  case, make, command, code, message):
    artifacts = {"onnx": onnx_artifact.path, "tflite": tflite_int8.path}
    made = make(tmp_path, val_dir, artifacts) if getattr(make, "needs_artifacts", False) else make(tmp_path, val_dir)
    args = [a.format(x=made) for a in command]
    if args[0] == "export":
        args += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _default_sigint() -> None:
    # A test run started from a background shell job (`pytest &`, CI wrappers) inherits SIGINT
    # as ignored, and so would the child: give it the disposition a terminal user's process has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str, sigint: object = _default_sigint, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgedeploy", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint, **kw)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".tmp"))


def _wait_for_staged_file(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    """Until a file sits in the export's staging folder; a fixed sleep raced fast machines, where
    the export could end (and Python restore default signal handlers) before the signal came."""
    deadline = time.monotonic() + timeout
    while not any(p.is_file() for p in out.glob(".tmp-stage-*/*")):
        assert proc.poll() is None and time.monotonic() < deadline, "export ended before it staged a file"
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "export ended before it could be interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_interrupted_export_leaves_nothing_and_a_rerun_succeeds(tmp_path, data_root, sig, code, word):
    out = tmp_path / "out"
    args = ["export", "--target", "onnx-int8", "--calib-size", "200", "--out", str(out), "--threads", "1"]
    proc = _cli(*args)
    _wait_for_staged_file(proc, out)  # the float ONNX is staged: calibration is under way
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert stderr.strip().endswith(f"error: {word}")
    assert not out.exists() or [p.name for p in out.iterdir() if not p.name.endswith(".log")] == []
    assert _leftovers(tmp_path) == []
    if sig == signal.SIGTERM:
        return  # the rerun after SIGINT (the same unwinding) shows a rerun succeeds: one full export is enough
    rerun = _cli(*args, "--threads", "2")  # the same export, its threads aside (the last --threads counts)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    artifact = out / "mobilenet_v2_1.0_224_int8.onnx"
    manifest = json.loads((out / f"{artifact.name}.manifest.json").read_text())
    assert manifest["sha256"] == sha256_file(artifact) and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_interrupted_eval_exits_130_quickly(tmp_path, val_dir):
    proc = _cli("eval", "sample", "--data", str(val_dir), "--threads", "1")
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip().endswith("error: interrupted")


@pytest.mark.slow
def test_inherited_ignored_sigint_is_kept_and_sigterm_still_stops(tmp_path, val_dir):
    """Started with SIGINT ignored (a background job, nohup), edgedeploy keeps ignoring it, as
    Python and Unix tools do: Ctrl-C at the terminal is not meant for it. SIGTERM still unwinds."""
    proc = _cli("eval", "sample", "--data", str(val_dir), "--threads", "1",
                sigint=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)
    assert proc.poll() is None, "an ignored SIGINT stopped the run"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and stderr.strip().endswith("error: terminated")


@pytest.mark.slow
def test_two_concurrent_exports_to_one_folder(tmp_path, data_root):
    out = tmp_path / "out"
    procs = [_cli("export", "--target", "onnx", "--out", str(out), "--threads", "1", "--parity-images", "8")
             for _ in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    artifact = out / "mobilenet_v2_1.0_224.onnx"
    manifest = json.loads((out / f"{artifact.name}.manifest.json").read_text())
    assert manifest["sha256"] == sha256_file(artifact) and manifest["size_bytes"] == artifact.stat().st_size
    assert _leftovers(out) == []


@pytest.mark.slow
def test_same_inputs_same_bytes_including_the_manifest(tmp_path, data_root, monkeypatch):
    from edgedeploy.exporter.pipeline import ExportRequest, export

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = export(ExportRequest(target="onnx", out_dir=tmp_path / "a", threads=1, parity_images=4))
    b = export(ExportRequest(target="onnx", out_dir=tmp_path / "b", threads=1, parity_images=4))
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.manifest.read_bytes() == b.manifest.read_bytes()
    assert json.loads(a.manifest.read_text())["created_utc"] == "2023-11-14T22:13:20+00:00"


@pytest.mark.slow
def test_eval_memory_is_flat_in_the_number_of_images(tmp_path, data_root):
    """Resident memory sampled after every batch over 800 images: as much at the end as after 100.

    (Peak RSS of whole processes was measured too, 584/616 MiB at 100/800 images, but it moves by
    +-70 MiB between identical runs with the allocator's arenas, so the test reads the steady level.)
    """
    import numpy as np

    from edgedeploy.data.datasets import ImageFolder
    from edgedeploy.measure.bench import rss_mb
    from edgedeploy.measure.evaluate import evaluate
    from edgedeploy.runtimes import LoadOptions, load_runner

    folder = tmp_path / "all"
    for split in ("calib", "val"):
        for image in (data_root / "imagenet-subset" / split).glob("*/*.JPEG"):
            (folder / image.parent.name).mkdir(parents=True, exist_ok=True)
            (folder / image.parent.name / image.name).symlink_to(image)
    shutil.copyfile(data_root / "imagenet-subset" / "synsets.txt", folder / "synsets.txt")
    seen, samples = [0], []

    def sample(n: int) -> None:
        seen[0] += n
        samples.append((seen[0], rss_mb()))

    result = evaluate(load_runner("sample", LoadOptions(threads=2)), ImageFolder.open(folder), on_progress=sample)
    assert result.n == 800
    early = np.median([mb for n, mb in samples if 100 <= n <= 200])
    late = np.median([mb for n, mb in samples if n >= 700])
    # Keeping the ~550 images between the two windows would add >= 320 MiB (224x224x3 float32 each,
    # 0.6 MiB); allocator growth in a long test process moves the level by up to ~30 MiB.
    assert late - early < 60, (early, late)


def test_readme_table_lists_every_bad_input_tried():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows - {"bad input"} == {case for case, *_ in BAD_INPUTS}
    for case, _make, _cmd, code, _msg in BAD_INPUTS:
        assert f"| {case} |" in section and section.split(f"| {case} |")[1].split("\n")[0].rstrip().endswith(f"| {code} |")
