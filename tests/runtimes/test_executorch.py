"""The ExecuTorch runtime: .pte files run in-process for eval, bench, inspect; bad files exit 3."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("executorch", reason="needs the [executorch] extra")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402


def test_runner_matches_pytorch_on_a_real_batch(small_pte, data_root):
    runner = load_runner(str(small_pte.path), LoadOptions(threads=2))
    reference = load_runner("random", LoadOptions(architecture=Architecture(width=0.35, resolution=96)))
    images = np.random.default_rng(0).uniform(-1, 1, (3, 96, 96, 3)).astype(np.float32)
    assert np.abs(runner.predict(images) - reference.predict(images)).max() < 1e-3
    assert runner.versions()["executorch"] and runner.execution() == {"delegates": {"XnnpackBackend": 2}}
    assert runner.verification.verified is True


def test_inspect_shows_delegated_and_portable_ops(small_pte):
    result = CliRunner().invoke(cli, ["inspect", str(small_pte.path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["runtime"] == "executorch" and info["inputs"][0]["shape"] == [1, 3, 96, 96]
    assert info["portable_ops"] == {"aten::mean": 1} and info["delegated_ops"]["DepthwiseConv2d"] == 17
    assert info["weight_dtypes"] == {"fp32": 53} and info["verified"] is True


def test_bench_runs_the_pte(small_pte):
    result = CliRunner().invoke(cli, ["bench", str(small_pte.path), "--threads", "1", "--runs", "5", "--warmup", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["latency_ms"]["p50"] > 0


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b[:5000], "File size is too small"),
    (lambda b: b[:4] + b"ET99" + b[8:], "Program identifier 'ET99' != expected"),
])
def test_corrupt_or_other_version_pte_is_one_line_exit_3(small_pte, tmp_path, damage, reason):
    bad = tmp_path / "model.pte"
    bad.write_bytes(damage(small_pte.path.read_bytes()))
    for command in (["eval", str(bad), "--data", str(tmp_path), "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5",
                     "0.5"], ["inspect", str(bad)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 3, result.output
        line = result.output.strip()
        assert "\n" not in line and "ExecuTorch" in line and reason in line


def test_diagnose_says_per_layer_outputs_are_not_offered(small_pte, val_dir):
    result = CliRunner().invoke(cli, ["diagnose", str(small_pte.path), "--reference", str(small_pte.path), "--data",
                                      str(val_dir)])
    assert result.exit_code == 2 and "not offered for executorch models" in result.output

def test_two_runners_keep_their_own_thread_counts(small_pte):
    from executorch.extension.pybindings import portable_lib

    one = load_runner(str(small_pte.path), LoadOptions(threads=1))
    two = load_runner(str(small_pte.path), LoadOptions(threads=2))
    tensor = one.io.input.feed(np.zeros((1, 96, 96, 3), np.float32))
    one.infer(tensor)
    assert portable_lib._threadpool_get_thread_count() == 1
    two.infer(tensor)
    assert portable_lib._threadpool_get_thread_count() == 2


def test_verify_re_proves_the_pte(small_pte, data_root):
    result = CliRunner().invoke(cli, ["verify", str(small_pte.path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runtime"] == "executorch" and report["passed"]
