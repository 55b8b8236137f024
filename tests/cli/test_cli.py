"""The CLI as users and CI scripts meet it: exit codes, one-line errors, the --json contract."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgedeploy.cli.app import cli


def run(*args: str) -> "click.testing.Result":  # noqa: F821
    return CliRunner().invoke(cli, list(args))


def run_json(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_json_contract(tmp_path, data_root):
    out = run_json("export", "--target", "onnx", "--out", str(tmp_path), "--parity-images", "4", "--threads", "2")
    for key in ("target", "path", "manifest", "size_bytes", "sha256", "parity", "seconds"):
        assert key in out
    assert out["target"] == "onnx" and Path(out["path"]).is_file() and Path(out["manifest"]).is_file()
    assert out["parity"]["agreement"] == 100.0


def test_eval_json_contract_with_reference(onnx_artifact, val_dir):
    out = run_json("eval", str(onnx_artifact.path), "--data", str(val_dir), "--limit", "32", "--reference", "sample",
                   "--threads", "2")
    assert out["model"] == str(onnx_artifact.path) and out["runtime"] == "onnxruntime" and out["n"] == 32
    assert 50 <= out["top1"] <= 100 and out["top1"] <= out["top5"] <= 100
    assert out["agreement"] == 100.0 and out["reference"] == "sample"


def test_bench_json_contract(onnx_artifact):
    out = run_json("bench", str(onnx_artifact.path), "--device", "cpu", "--threads", "1", "--runs", "5", "--warmup", "1")
    assert (out["runtime"], out["device"], out["threads"]) == ("onnxruntime", "cpu", 1)
    assert set(out["latency_ms"]) == {"p50", "p90", "p99", "mean", "std", "min", "max"}
    assert out["model_size_bytes"] == onnx_artifact.size_bytes


def test_inspect_torch_and_onnx(onnx_artifact):
    t = run_json("inspect", "random", "--width", "0.5", "--resolution", "160")
    assert round(t["macs"] / 1e6) == 50
    o = run_json("inspect", str(onnx_artifact.path))
    assert o["ops"]["Conv"] == 52 and o["inputs"][0]["shape"] == [1, 3, 224, 224]
    assert o["manifest"]["target"] == "onnx"


def test_human_output_is_a_table(onnx_artifact):
    result = run("bench", str(onnx_artifact.path), "--runs", "3", "--warmup", "0", "--threads", "1")
    assert result.exit_code == 0
    assert "p50" in result.stdout and "throughput" in result.stdout


def test_list_shows_the_registries():
    out = run_json("list")
    assert "onnx" in out["targets"] and "onnxruntime" in out["runtimes"] and "cpu" in out["devices"]


def _corrupt(tmp_path: Path) -> str:
    p = tmp_path / "corrupt.pth"
    p.write_bytes(b"garbage")
    return str(p)


def _wrong_keys(tmp_path: Path) -> str:
    p = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, p)
    return str(p)


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["export", "--target", "tflite-int9"], 2, "Invalid value for '--target'"),
        (["export", "--target", "onnx", "--weights", "{tmp}/missing.pth"], 3, "weights file not found"),
        (["export", "--target", "onnx", "--weights", "{corrupt}"], 3, "not a readable PyTorch checkpoint"),
        (["export", "--target", "onnx", "--weights", "{wrong}"], 3, "missing keys: features.0.0.weight"),
        (["export", "--target", "onnx", "--weights", "random", "--resolution", "100"], 2, "multiple of 32"),
        (["export", "--target", "onnx", "--weights", "random", "--opset", "5"], 2,
         "Invalid value for '--opset': 5 is not in the range 11<=x<=20."),
        (["eval", "random", "--data", "{tmp}/nothing"], 3, "image folder not found"),
        (["eval", "random", "--data", "{tmp}"], 3, "no image files found"),
        (["eval", "{tmp}/model.caffemodel", "--data", "{tmp}"], 2, "unknown model format"),
        (["bench", "random", "--device", "pixel9"], 2, "unknown device 'pixel9'; known devices: cpu"),
        (["bench", "random", "--runs", "100000000"], 2,
         "Invalid value for '--runs': 100000000 is not in the range 1<=x<=100000."),
        (["bench", "{tmp}/missing.onnx"], 3, "model file not found"),
        (["bench", "random", "--mean", "0.5", "0.5", "0.5"], 2, "must be given together"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_code(tmp_path, args, code, message):
    (tmp_path / "notes.txt").write_text("no images here")
    fill = {"tmp": str(tmp_path), "corrupt": _corrupt(tmp_path), "wrong": _wrong_keys(tmp_path)}
    args = [a.format(**fill) for a in args]
    result = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "out")] if args[0] == "export" else args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    if args[0] == "export":
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_json_errors_are_json_too(tmp_path):
    result = run("eval", "random", "--data", str(tmp_path / "none"), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {"error": f"{tmp_path / 'none'}: image folder not found", "exit_code": 3}


def test_console_script_as_subprocess_keeps_stdout_pure_json(onnx_artifact, tmp_path):
    exe = Path(sys.executable).with_name("edgedeploy")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgedeploy"]
    proc = subprocess.run([*cmd, "-v", "bench", str(onnx_artifact.path), "--runs", "3", "--threads", "1", "--json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runtime"] == "onnxruntime"
    bad = subprocess.run([*cmd, "export", "--target", "onnx", "--weights", str(tmp_path / "x.pth")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 3
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")


def test_run_with_a_bad_recipe_is_one_line_exit_2(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nevaluation: {data: v}\ntargets:\n  onnx: {bogus: 1}\n")
    for command in ("run", "gate"):
        result = run(command, str(recipe))
        assert result.exit_code == 2
        assert result.stderr == f"error: {recipe}:4: targets.onnx.bogus: unknown key\n"


def test_gate_refuses_run_options_with_results(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nevaluation: {data: v}\ntargets: {onnx: }\n")
    result = run("gate", str(recipe), "--results", str(tmp_path / "results.json"), "--force")
    assert result.exit_code == 2 and "--force and --out apply only" in result.output


def test_run_human_output_is_a_table_with_every_target(recipe_run, tmp_path):
    recipe, _, _ = recipe_run
    result = run("run", str(recipe.path), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name in ("pytorch (reference)", "onnx", "tflite-fp32", "tflite-int8", "speed-up vs float"):
        assert name in result.stdout
    assert "[3/3] tflite-int8: done (ok)" in result.stderr
