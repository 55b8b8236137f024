"""diagnose on a float-trained model: Mobile DeepLabv3's per-tensor int8 export loses mIoU (its weights are not on
any int8 grid); diagnose names the layers whose per-tensor weights lose the most, and keeping them in float
recovers most of the loss."""

import json

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.sample_data import CALIB_DIR

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_diagnose_then_keep_float_recovers_per_tensor_int8(segmentation_run, data_root, tmp_path):
    _, results, out = segmentation_run
    voc = data_root / "segmentation" / "voc-samples"
    fp32 = out / results["targets"]["tflite-fp32"]["artifact"]
    export = ["export", "--target", "tflite-int8", "--arch", "deeplabv3_mobilenet_v2", "--resolution", "129",
              "--weight-granularity", "per-tensor", "--calib", str(data_root / CALIB_DIR), "--calib-size", "16",
              "--parity-data", str(voc), "--parity-images", "4", "--parity-min-agreement", "0", "--threads", "2",
              "--json"]
    runner = CliRunner()
    plain = runner.invoke(cli, [*export, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    int8 = json.loads(plain.stdout)["path"]
    diagnosed = runner.invoke(cli, ["diagnose", int8, "--reference", str(fp32), "--data", str(voc),
                                    "--suggest", "6", "--plot", str(tmp_path / "layers.png"), "--json"])
    assert diagnosed.exit_code == 0, diagnosed.output
    report = json.loads(diagnosed.stdout)
    suggested = report["suggestions"]["layers"]
    assert report["output"]["agreement_of"] == "pixel agreement" and report["output"]["miou"] is not None
    assert len(suggested) >= 6 and "its int8 weights lose detail" in report["diagnosis"]
    keep = [arg for name in suggested for arg in ("--keep-float", name)]
    fixed = runner.invoke(cli, [*export, "--out", str(tmp_path / "fixed"), *keep])
    assert fixed.exit_code == 0, fixed.output
    drops = {}
    for name, path in (("plain", int8), ("fixed", json.loads(fixed.stdout)["path"])):
        evaluated = runner.invoke(cli, ["eval", path, "--data", str(voc), "--reference", str(fp32), "--json"])
        assert evaluated.exit_code == 0, evaluated.output
        drops[name] = results["reference"]["accuracy"]["miou"] - json.loads(evaluated.stdout)["miou"]
    assert drops["plain"] > 2.0 and drops["fixed"] < drops["plain"] / 2, drops
