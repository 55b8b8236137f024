"""Every export option is declared once: a throw-away option registered in one place is in `export --help`,
accepted with its range on the command line, a field of the recipe schema, a keyword of edgedeploy.export(...)
and recorded in the manifest, with nothing else edited."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgedeploy.exporter.options import EXPORT_OPTIONS, ExportOption, check_values

PROBE = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from edgedeploy.exporter.options import ExportOption, register_option

    # The one declaration.
    register_option(ExportOption("toy_knob", "int", "A throw-away option for this test.", default=3,
                                 recipe="toy_knob", minimum=0, maximum=9))

    import torch
    from click.testing import CliRunner
    import edgedeploy
    from edgedeploy.cli.app import cli
    from edgedeploy.recipes.schema import RecipeError, TargetSpec, load_recipe

    out = Path(sys.argv[1])
    report = {"help": CliRunner().invoke(cli, ["export", "--help"]).output}
    refused = CliRunner().invoke(cli, ["export", "--target", "onnx", "--toy-knob", "12"])
    report["cli_range"] = [refused.exit_code, refused.output]
    report["schema"] = TargetSpec.model_json_schema()["properties"].get("toy_knob")
    recipe = out / "recipe.yaml"
    recipe.write_text("name: toy\\nevaluation: {data: val}\\ntargets:\\n  onnx:\\n    toy_knob: 5\\n")
    report["recipe_value"] = load_recipe(recipe).export_request("onnx", out, threads=1).toy_knob
    recipe.write_text("name: toy\\nevaluation: {data: val}\\ntargets:\\n  onnx:\\n    toy_knob: 12\\n")
    try:
        load_recipe(recipe)
    except RecipeError as exc:
        report["recipe_error"] = str(exc)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3))
    result = edgedeploy.export(net, "onnx", input_shape=(1, 3, 16, 16), out=out, parity_images=2, threads=1,
                               toy_knob=7)
    report["manifest"] = json.loads(Path(result.manifest).read_text())["export"]["options"]
    print(json.dumps(report))
''')


@pytest.mark.slow
def test_one_declaration_reaches_cli_recipes_api_and_manifest(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True,
                           timeout=600)
    assert probe.returncode == 0, probe.stderr[-3000:]
    report = json.loads(probe.stdout.splitlines()[-1])
    assert "--toy-knob INTEGER RANGE" in report["help"] and "A throw-away option for this test." in report["help"]
    assert report["cli_range"][0] == 2 and "12 is not in the range 0<=x<=9" in report["cli_range"][1]
    assert report["schema"]["default"] == 3 and report["schema"]["maximum"] == 9
    assert report["recipe_value"] == 5
    assert "targets.onnx.toy_knob" in report["recipe_error"]
    assert report["manifest"]["toy_knob"] == 7 and report["manifest"]["parity_images"] == 2
    # Registered in the probe's process only.
    assert "toy_knob" not in EXPORT_OPTIONS


def test_values_are_checked_against_their_declaration() -> None:
    values = check_values({"ptq": "cle,adaround", "calib_dir": "calib", "opset": 13})
    assert values["ptq"] == ("cle", "adaround") and values["calib_dir"] == Path("calib") and values["opset"] == 13
    assert values["calib_size"] == EXPORT_OPTIONS["calib_size"].default and values["keep_float"] == ()
    for wrong, message in [({"opset": 9}, r"opset must be in \[11, 20\], got 9"),
                           ({"calib_size": 1.5}, "calib_size must be an integer"),
                           ({"dynamic_batch": "yes"}, "dynamic_batch must be true or false"),
                           ({"parity_min_agreement": float("nan")}, "parity_min_agreement must be in")]:
        with pytest.raises(Exception, match=message):
            check_values(wrong)


def test_a_declaration_needs_a_new_name() -> None:
    from edgedeploy.core.errors import ConfigError
    from edgedeploy.exporter.options import register_option

    with pytest.raises(ConfigError, match="already declared"):
        register_option(ExportOption("opset", "int", "again"))
    assert isinstance(EXPORT_OPTIONS["opset"], ExportOption) and EXPORT_OPTIONS["opset"].help == "ONNX opset."
