"""Property-based fuzzing (hypothesis) of everything that parses outside input: recipes, images,
manifests, benchmark_model output. Each must answer with a result or one of edgedeploy's own
errors, never anything else. CI runs a bounded, derandomized number of examples; a longer run:

    EDGEDEPLOY_FUZZ_EXAMPLES=5000 python -m pytest -m fuzz -q
"""

import io
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.manifest import read_manifest
from edgedeploy.data.preprocess import load_image
from edgedeploy.devices.benchmark_model import parse_output
from edgedeploy.recipes.schema import load_recipe

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REPO = Path(__file__).resolve().parents[1]
CAPTURES = Path(__file__).parent / "devices" / "captures"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20))
trees = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                     st.dictionaries(st.text(max_size=12), kids, max_size=5)),
                     max_leaves=25)
RECIPE = yaml.safe_load((REPO / "recipes" / "mobilenet_v2.yaml").read_text())


def _mutate(tree, path, value):
    """``tree`` with the node at ``path`` (indices into sorted keys) replaced by ``value``."""
    if not path or not isinstance(tree, dict) or not tree:
        return value
    keys = sorted(tree, key=str)
    key = keys[path[0] % len(keys)]
    return {**tree, key: _mutate(tree[key], path[1:], value)}


def _loads_or_refuses(path: Path) -> None:
    try:
        load_recipe(path)
    except EdgeDeployError as exc:
        assert str(exc).strip()


@FUZZ
@given(text=st.text(max_size=400))
def test_recipe_loader_on_arbitrary_text(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_bytes(text.encode("utf-8", "replace"))
    _loads_or_refuses(path)


@FUZZ
@given(data=trees)
def test_recipe_loader_on_arbitrary_structures(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    _loads_or_refuses(path)


@FUZZ
@given(path=st.lists(st.integers(0, 50), max_size=4), value=trees)
def test_recipe_loader_on_mutated_real_recipes(tmp_path, path, value):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_mutate(RECIPE, path, value)))
    _loads_or_refuses(recipe)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


@FUZZ
@given(cut=st.integers(0, 800), flips=st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), max_size=8),
       noise=st.binary(max_size=200))
def test_image_loader_on_damaged_files(tmp_path, cut, flips, noise):
    data = bytearray(_jpeg()[:cut] + noise)
    for at, byte in flips:
        if data:
            data[at % len(data)] = byte
    path = tmp_path / "x.jpg"
    path.write_bytes(bytes(data))
    try:
        image = load_image(path)
    except EdgeDeployError:
        return
    assert image.mode == "RGB" and image.size[0] > 0


def _read_or_refuse(folder: Path, data: object) -> None:
    artifact = folder / "m.onnx"
    artifact.write_bytes(b"x")
    Path(f"{artifact}.manifest.json").write_text(json.dumps(data))
    try:
        read_manifest(artifact)
    except EdgeDeployError:
        pass


@FUZZ
@given(data=trees)
def test_manifest_reader_on_arbitrary_json(tmp_path, data):
    _read_or_refuse(tmp_path, data)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["input", "output", "preprocessing", "target"]), trees, min_size=1))
def test_manifest_reader_on_near_manifests(tmp_path, data):
    _read_or_refuse(tmp_path, data)


CAPTURE_LINES = [line for f in sorted(CAPTURES.glob("*.txt")) for line in f.read_text().splitlines()]


@FUZZ
@given(picks=st.lists(st.integers(0, len(CAPTURE_LINES) - 1), max_size=60),
       edits=st.lists(st.tuples(st.integers(0, 59), st.text(max_size=30)), max_size=10),
       requested=st.sampled_from([None, "xnnpack", "gpu", "nnapi", "cpu"]))
def test_benchmark_model_parser_never_fails(picks, edits, requested):
    lines = [CAPTURE_LINES[i] for i in picks]
    for at, text in edits:
        if lines:
            i = at % len(lines)
            lines[i] = lines[i][: len(text)] + text
    run = parse_output("\n".join(lines), requested)
    assert run.runs is None or run.runs >= 0
    for delegate in run.delegates:
        assert delegate.status in ("full", "partial", "none", "unknown")


@pytest.mark.parametrize("change", [
    lambda m: {("targeu" if k == "target" else k): v for k, v in m.items()},  # found by the long CLI fuzz run
    lambda m: {**m, "model": 5},
    lambda m: {**m, "files": [{"name": 1}]},
])
def test_manifest_sections_readers_use_are_checked_when_read(tmp_path, onnx_artifact, change):
    from edgedeploy.core.errors import InputFileError

    manifest = json.loads(Path(f"{onnx_artifact.path}.manifest.json").read_text())
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"x")
    Path(f"{artifact}.manifest.json").write_text(json.dumps(change(manifest)))
    with pytest.raises(InputFileError, match="corrupt manifest"):
        read_manifest(artifact)
