"""`edgedeploy eval` on segmentation models and data: the task's figures, masks written only when the whole
evaluation succeeded, and data of the wrong task refused in one line (exit 2)."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgedeploy.cli.app import cli

pytestmark = [pytest.mark.data]

DEEPLAB = ["--arch", "deeplabv3_mobilenet_v2", "--resolution", "129", "--threads", "2"]


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def one_line(result, code):
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    return result.stderr


def test_a_segmentation_model_on_a_classification_folder_and_the_reverse(val_dir, data_root):
    voc = data_root / "segmentation" / "voc-samples"
    error = one_line(invoke("eval", "sample", "--data", val_dir, *DEEPLAB), 2)
    assert "a classification data set" in error and "the model is a segmentation model" in error
    error = one_line(invoke("eval", "sample", "--data", voc, "--threads", "2"), 2)
    assert "a segmentation data set (images/ + masks/" in error and "a classification model" in error
    error = one_line(invoke("eval", "sample", "--data", val_dir, "--ignore-index", "0"), 2)
    assert "ignore_index does not apply to classification data" in error
    error = one_line(invoke("eval", "sample", "--data", val_dir, "--limit", "2", "--save-masks", "m"), 2)
    assert "--save-masks applies to models whose predictions are masks, not to classification models" in error


def test_masks_are_written_whole_or_not_at_all(data_root, tmp_path):
    voc = data_root / "segmentation" / "voc-samples"
    result = invoke("eval", "sample", "--data", voc, "--limit", "3", "--save-masks", tmp_path / "masks", "--json",
                    *DEEPLAB)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["task"] == "segmentation" and out["n"] == 3 and out["classes"] >= 2 and 0 < out["miou"] <= 100
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["voc_val_0000.png", "voc_val_0001.png",
                                                                      "voc_val_0008.png"]
    # A mask with a class value the model does not have: exit 3 naming it, and no masks folder.
    bad = tmp_path / "bad"
    for folder in ("images", "masks"):
        (bad / folder).mkdir(parents=True)
        for name in ("voc_val_0000.png", "voc_val_0001.png"):
            shutil.copy(voc / folder / name, bad / folder / name)
    mask = Image.open(bad / "masks" / "voc_val_0001.png")
    values = np.asarray(mask).copy()
    values[5, 5] = 30
    damaged = Image.fromarray(values, mode="P")
    damaged.putpalette(mask.getpalette())
    damaged.save(bad / "masks" / "voc_val_0001.png")
    error = one_line(invoke("eval", "sample", "--data", bad, "--save-masks", tmp_path / "none", *DEEPLAB), 3)
    assert "voc_val_0001.png: class value 30 is outside the model's 21 classes" in error
    assert not (tmp_path / "none").exists() and not list(tmp_path.glob(".tmp-*"))
