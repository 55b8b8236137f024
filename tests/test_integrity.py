"""Artifact integrity (issue 17): every loading command checks an artifact's files against its
manifest before use; `verify` re-proves an export; NaN results, directories as weights and
unwritable output folders fail with one line and the documented exit code."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ArtifactMismatchError
from edgedeploy.core.hashing import sha256_file, with_digest
from edgedeploy.core.integrity import cached_sha256, check_integrity
from edgedeploy.core.manifest import DIGEST_KEY, manifest_path
from edgedeploy.recipes.results import DIGEST_KEY as RESULTS_DIGEST


def _copy(artifact: Path, dest: Path) -> Path:
    """The artifact with its manifest and companion files, in a folder of its own."""
    dest.mkdir(parents=True, exist_ok=True)
    names = [f["name"] for f in json.loads(manifest_path(artifact).read_text())["files"]]
    for name in [*names, manifest_path(artifact).name]:
        shutil.copy(artifact.with_name(name), dest / name)
    return dest / artifact.name


def _flip(path: Path, where: float = 0.5) -> None:
    """Change one bit of one byte (the middle of the file: weights, so the file still loads)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 1
    path.write_bytes(data)


def _run(*args: str):
    return CliRunner().invoke(cli, [*args])


def _one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert all(w in result.stderr for w in words), result.stderr
    assert "Traceback" not in result.output


@pytest.fixture()
def onnx_copy(onnx_artifact, tmp_path) -> Path:
    return _copy(Path(onnx_artifact.path), tmp_path / "onnx")


def test_a_fresh_export_verifies_and_an_unchanged_file_is_hashed_once(onnx_copy, monkeypatch):
    from edgedeploy.core import integrity

    hashed = []
    monkeypatch.setattr(integrity, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    checked = check_integrity(onnx_copy)
    assert checked.verified is True and [f["name"] for f in checked.files] == [onnx_copy.name]
    assert check_integrity(onnx_copy).verified is True and len(hashed) == 1  # the second check is a cache hit
    _flip(onnx_copy)
    stat = onnx_copy.stat()  # a later modification time, whatever the filesystem's clock granularity
    os.utime(onnx_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ArtifactMismatchError):
        check_integrity(onnx_copy)
    assert len(hashed) == 2


@pytest.mark.parametrize("command", ["eval", "bench", "inspect"])
def test_every_loading_command_refuses_a_changed_onnx(onnx_copy, val_dir, command):
    _flip(onnx_copy)
    extra = {"eval": ["--data", str(val_dir), "--limit", "2"], "bench": ["--runs", "2"], "inspect": []}[command]
    result = _run(command, str(onnx_copy), *extra)
    _one_line_error(result, 3, onnx_copy.name, "does not match the manifest's", "--no-verify")


def test_no_verify_runs_and_says_so(onnx_copy, val_dir):
    _flip(onnx_copy)
    evaluated = _run("eval", str(onnx_copy), "--data", str(val_dir), "--limit", "2", "--no-verify", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["verified"] is False
    benched = _run("bench", str(onnx_copy), "--runs", "2", "--no-verify")
    assert benched.exit_code == 0 and "NO (--no-verify" in benched.stdout, benched.output
    inspected = _run("inspect", str(onnx_copy), "--no-verify", "--json")
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["verified"] is False


def test_outputs_say_verified(onnx_copy, val_dir):
    evaluated = json.loads(_run("eval", str(onnx_copy), "--data", str(val_dir), "--limit", "2", "--json").stdout)
    benched = json.loads(_run("bench", str(onnx_copy), "--runs", "2", "--json").stdout)
    weights = json.loads(_run("eval", "sample", "--data", str(val_dir), "--limit", "2", "--json").stdout)
    assert evaluated["verified"] is True and benched["verified"] is True and weights["verified"] is None


def test_a_missing_listed_file_is_refused(openvino_fp32, tmp_path):
    copy = _copy(Path(openvino_fp32.path), tmp_path / "ov")
    copy.with_suffix(".bin").unlink()
    _one_line_error(_run("inspect", str(copy)), 3, ".bin")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "tflite", "ir-bin", "ir-xml"])
def test_verify_passes_fresh_and_fails_each_tampered_kind(kind, onnx_artifact, tflite_int8, openvino_fp32, tmp_path,
                                                         calib_dir):
    source = {"onnx": onnx_artifact, "tflite": tflite_int8, "ir-bin": openvino_fp32, "ir-xml": openvino_fp32}[kind]
    copy = _copy(Path(source.path), tmp_path / kind)
    fresh = _run("verify", str(copy), "--data", str(calib_dir), "--images", "8", "--json")
    assert fresh.exit_code == 0, fresh.output
    report = json.loads(fresh.stdout)
    assert report["passed"] and [c["status"] for c in report["checks"]] == ["pass"] * 4, report
    tampered = copy.with_suffix(".bin") if kind == "ir-bin" else copy
    # The IR's XML is text: change a character of a layer name (still well-formed XML).
    if kind == "ir-xml":
        text = tampered.read_text()
        tampered.write_text(text.replace('name="input"', 'name="inpuT"', 1))
    else:
        _flip(tampered)
    failed = _run("verify", str(copy), "--json")
    assert failed.exit_code == 3, failed.output
    checks = {c["name"]: c for c in json.loads(failed.stdout)["checks"]}
    assert checks["hashes"]["status"] == "fail" and tampered.name in checks["hashes"]["detail"]
    assert {checks[n]["status"] for n in ("precision", "io", "parity")} == {"skip"}
    for command in (["eval", str(copy), "--data", str(calib_dir), "--limit", "2"], ["bench", str(copy), "--runs", "2"],
                    ["inspect", str(copy)]):
        _one_line_error(_run(*command), 3, tampered.name, "does not match")


@pytest.mark.slow
def test_diagnose_refuses_a_changed_model(tflite_int8, tflite_fp32, tmp_path, calib_dir):
    copy = _copy(Path(tflite_int8.path), tmp_path / "int8")
    _flip(copy)
    result = _run("diagnose", str(copy), "--reference", str(tflite_fp32.path), "--data", str(calib_dir),
                  "--images", "2", "--plot", str(tmp_path / "p.png"))
    _one_line_error(result, 3, copy.name, "does not match")


def test_verify_fails_a_wrong_precision_claim(onnx_copy):
    """A manifest that claims int8 for a float graph: the precision proof, re-read from the graph, says no."""
    path = manifest_path(onnx_copy)
    manifest = json.loads(path.read_text())
    manifest["precision"]["requested"] = "int8"
    path.write_text(json.dumps(with_digest(manifest, DIGEST_KEY)))  # consistent, as a buggy exporter's would be
    result = _run("verify", str(onnx_copy), "--json")
    assert result.exit_code == 4, result.output
    checks = {c["name"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert checks == {"hashes": "pass", "precision": "fail", "io": "pass", "parity": "skip"}


def test_verify_fails_an_io_spec_that_is_not_the_models(onnx_copy):
    path = manifest_path(onnx_copy)
    manifest = json.loads(path.read_text())
    manifest["input"]["shape"] = [1, 3, 160, 160]
    path.write_text(json.dumps(with_digest(manifest, DIGEST_KEY)))
    result = _run("verify", str(onnx_copy), "--json")
    assert result.exit_code == 4 and "input shape [1, 3, 224, 224] != manifest [1, 3, 160, 160]" in result.stdout


def test_gate_checks_artifacts_beside_the_results(tmp_path, onnx_copy):
    """A results file's artifacts, where they are still beside it, must be the ones it measured."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mobilenet_v2.yaml"
    baseline = json.loads((recipe.parent / "baselines" / "mobilenet_v2.json").read_text())
    folder = onnx_copy.parent
    entry = baseline["targets"]["onnx"]
    artifact = folder / entry["artifact"]
    artifact.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(onnx_copy, artifact)
    shutil.move(manifest_path(onnx_copy), manifest_path(artifact))
    entry["sha256"] = cached_sha256(artifact)
    results = folder / "results.json"
    results.write_text(json.dumps(with_digest(baseline, RESULTS_DIGEST)))
    args = ["gate", str(recipe), "--results", str(results), "--json"]
    passed = _run(*args)
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["artifacts_verified"]["onnx"] is True
    assert json.loads(passed.stdout)["artifacts_verified"]["tflite-int8"] is None  # not beside the results
    _flip(artifact)
    _one_line_error(_run(*args), 3, "does not match")
    assert _run(*args, "--no-verify").exit_code == 0


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_results_file_with_nan_fails_closed(tmp_path, value):
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mobilenet_v2.yaml"
    text = (recipe.parent / "baselines" / "mobilenet_v2.json").read_text()
    data = json.loads(text)
    data["targets"]["tflite-int8"]["accuracy"]["top1"] = math.nan if value == "NaN" else math.inf
    results = tmp_path / "results.json"
    results.write_text(json.dumps(with_digest(data, RESULTS_DIGEST)))  # as a run that measured it would write
    gated = _run("gate", str(recipe), "--results", str(results))
    _one_line_error(gated, 6, "tflite-int8", "accuracy.top1", value.lower()[:3])
    _one_line_error(_run("report", str(results), "--out", str(tmp_path / "r")), 6, "accuracy.top1")


def test_weights_given_as_a_directory(tmp_path):
    result = _run("export", "--target", "onnx", "--weights", str(tmp_path), "--out", str(tmp_path / "out"))
    _one_line_error(result, 3, str(tmp_path), "is a directory")


@pytest.mark.parametrize("out", ["/proc/x", "/proc/version/x"])
def test_an_output_folder_that_cannot_be_created(tmp_path, out):
    result = _run("export", "--target", "onnx", "--weights", "random", "--width", "0.35", "--resolution", "96",
                  "--out", out)
    _one_line_error(result, 3, out, "cannot be in /proc, /sys or /dev")
    assert not Path(out).exists()


def test_a_full_disk_mid_export_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """ENOSPC while the artifact is written: exit 3 naming the file, nothing partial in the folder."""
    import errno

    from edgedeploy.exporter.converters import onnx as onnx_converter

    def full(src: Path, dst: Path, *_args):
        with dst.open("wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name

    monkeypatch.setattr(onnx_converter.shutil, "copyfile", full)
    out = tmp_path / "out"
    result = _run("export", "--target", "onnx", "--weights", "random", "--width", "0.35", "--resolution", "96",
                  "--out", str(out))
    _one_line_error(result, 3, "cannot write (No space left on device)")
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["eval", "bench", "inspect"])
def test_an_edited_manifest_is_refused_by_every_loading_command(onnx_copy, val_dir, command):
    """The manifest decides how inputs are fed: mean 0 beside an untouched artifact is refused, not measured."""
    path = manifest_path(onnx_copy)
    manifest = json.loads(path.read_text())
    manifest["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    path.write_text(json.dumps(manifest, indent=2))
    extra = {"eval": ["--data", str(val_dir), "--limit", "2"], "bench": ["--runs", "2"], "inspect": []}[command]
    _one_line_error(_run(command, str(onnx_copy), *extra), 3, path.name, "its content changed after it was written",
                    "--no-verify")
    assert _run(command, str(onnx_copy), *extra, "--no-verify").exit_code == 0


def test_a_manifest_without_its_digest_is_refused(onnx_copy):
    path = manifest_path(onnx_copy)
    manifest = json.loads(path.read_text())
    del manifest[DIGEST_KEY]
    path.write_text(json.dumps(manifest))
    _one_line_error(_run("inspect", str(onnx_copy)), 3, "records no content digest (manifest_sha256")
    verified = _run("verify", str(onnx_copy), "--json")
    assert verified.exit_code == 3 and "records no content digest" in verified.stdout


def test_a_reformatted_manifest_still_verifies(onnx_copy):
    """The digest is of the content, not the bytes: re-indenting (an editor, jq) changes nothing."""
    path = manifest_path(onnx_copy)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=None, sort_keys=True))
    assert check_integrity(onnx_copy).verified is True


def test_an_edited_results_file_is_refused(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mobilenet_v2.yaml"
    baseline = json.loads((recipe.parent / "baselines" / "mobilenet_v2.json").read_text())
    baseline["targets"]["tflite-int8"]["accuracy"]["top1"] = 99.0
    results = tmp_path / "results.json"
    results.write_text(json.dumps(baseline))
    for args in (["gate", str(recipe), "--results", str(results)], ["report", str(results), "--out", str(tmp_path)],
                 ["compare", str(results), str(recipe.parent / "baselines" / "mobilenet_v2.json")]):
        _one_line_error(_run(*args), 3, "results.json", "its content changed after it was written")
