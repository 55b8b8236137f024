"""The fuzz harness over every command's file inputs (hypothesis), run through the command line as a user runs it.

Each input kind is a real file edgedeploy reads (an artifact of each runtime, a manifest, a signature, a recipe, a
results file, a synsets file, a segmentation mask, COCO annotations, a calibration-set definition), damaged the
ways files are damaged or crafted: random bytes, a truncation, bit flips and byte overwrites, or a special file in
its place (a FIFO, a folder, /dev/zero, an empty file). Every run must end with an exit code in the documented set
(docs/json-and-exit-codes.md; never 70, never a signal), at most one ``error:`` line and no traceback on stderr,
nothing written outside its output folder and no temporary file left behind.

CI runs a few derandomized examples per kind; the long run (its figures in docs/reliability.md):

    EDGEDEPLOY_FUZZ_EXAMPLES=5000 python -m pytest -m fuzz -q tests/test_fuzz_cli.py
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgedeploy.cli.app import cli

pytestmark = [pytest.mark.fuzz, pytest.mark.data]

EXAMPLES = int(os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# docs/json-and-exit-codes.md: 0 ok, 1 regression, 2 usage, 3 bad input, 4 check failed, 5 missing dependency,
# 6 incomplete. 70 (internal error) is a bug; a negative code is a crash.
DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 5, 6}
REPO = Path(__file__).resolve().parents[1]
# Examples run per input kind (printed with -s: the long run's figures).
EXAMPLES_RUN: dict[str, int] = {}


def counted(kind: str) -> None:
    EXAMPLES_RUN[kind] = EXAMPLES_RUN.get(kind, 0) + 1


@pytest.fixture(autouse=True)
def report_examples(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    yield
    kind = request.node.name
    print(f"\nfuzz {kind}: {EXAMPLES_RUN.pop(kind, 0)} examples")

# How a file is damaged: ("random", bytes), ("truncate", fraction), ("flip", [(position fraction, byte)]),
# ("special", kind).
damage = st.one_of(
    st.tuples(st.just("random"), st.binary(max_size=4096)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1,
                                        max_size=16)),
    st.tuples(st.just("special"), st.sampled_from(["fifo", "folder", "dev-zero", "empty"])),
)


def damaged(original: bytes, path: Path, how: tuple) -> None:
    """Write ``original`` damaged by ``how`` at ``path`` (replacing what is there)."""
    kind, what = how
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "random":
        path.write_bytes(what)
    elif kind == "truncate":
        path.write_bytes(original[:int(len(original) * what)])
    elif kind == "flip":
        data = bytearray(original)
        for at, byte in what:
            if data:
                data[min(int(at * len(data)), len(data) - 1)] ^= byte or 0xFF
        path.write_bytes(bytes(data))
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "folder":
        path.mkdir()
    elif what == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b"")


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def run_and_check(workdir: Path, args: list[str], allowed_new: Callable[[str], bool] = lambda _: False) -> int:
    """Run edgedeploy ``args`` in ``workdir``; assert the harness's invariants; return the exit code."""
    before = _tree(workdir)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        os.chdir(cwd)
    stderr = result.stderr
    assert result.exit_code in DOCUMENTED_EXITS, (args, result.exit_code, stderr, result.exception)
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, (args, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == (result.exit_code not in (0, 1)), (args, result.exit_code, stderr)
    new = _tree(workdir) - before
    assert not [n for n in new if ".tmp-" in n], (args, new)
    assert all(allowed_new(n) for n in new), (args, new)
    return result.exit_code


@dataclass(frozen=True)
class Kind:
    """One input kind: the real file (``source``, copied into the work folder as ``name``) and the command line
    that reads it (``{file}`` is the damaged copy; other ``{key}``s come from ``extra``)."""

    name: str
    args: tuple[str, ...]
    allowed_new: Callable[[str], bool] = lambda _: False


def _copy_export(result: object, into: Path) -> Path:
    """An export's files (artifact, companions, manifest) copied into ``into``; the artifact's new path."""
    artifact = Path(result.path)  # type: ignore[attr-defined]
    manifest = json.loads(Path(f"{artifact}.manifest.json").read_text())
    for entry in manifest["files"]:
        shutil.copy(artifact.with_name(entry["name"]), into / entry["name"])
    shutil.copy(f"{artifact}.manifest.json", into / f"{artifact.name}.manifest.json")
    return into / artifact.name


@pytest.fixture(scope="session")
def small_exports(onnx_artifact: object, tflite_fp32: object, openvino_fp32: object,
                  small_pte: object) -> dict[str, object]:
    """A real export for each runtime edgedeploy loads (the session's shared ones: no export of its own)."""
    return {"onnx": onnx_artifact, "tflite-fp32": tflite_fp32, "openvino-fp32": openvino_fp32,
            "executorch-fp32": small_pte}


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("keys")
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (folder / "pub.pem").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return folder / "key.pem", folder / "pub.pem"


ARTIFACT_KINDS = {"onnx": "onnx", "tflite": "tflite-fp32", "openvino": "openvino-fp32", "pte": "executorch-fp32"}


@pytest.mark.parametrize("kind", list(ARTIFACT_KINDS))
def test_artifacts_damaged(tmp_path_factory: pytest.TempPathFactory, small_exports: dict, kind: str) -> None:
    """A damaged model file, with and without its manifest: inspect, verify, bench."""
    work = tmp_path_factory.mktemp(f"fuzz-{kind}")
    artifact = _copy_export(small_exports[ARTIFACT_KINDS[kind]], work)
    original = artifact.read_bytes()

    @FUZZ
    @given(how=damage, command=st.sampled_from(["inspect", "verify", "bench"]), keep_manifest=st.booleans())
    def check(how: tuple, command: str, keep_manifest: bool) -> None:
        counted(f"test_artifacts_damaged[{kind}]")
        manifest = Path(f"{artifact}.manifest.json")
        saved = manifest.read_bytes()
        if not keep_manifest:
            manifest.unlink()
        damaged(original, artifact, how)
        try:
            args = {"inspect": ["inspect", artifact.name], "verify": ["verify", artifact.name],
                    "bench": ["bench", artifact.name, "--runs", "1", "--warmup", "0", "--threads", "1"]}[command]
            code = run_and_check(work, args)
            if how[0] == "special" or how == ("truncate", 0.0):
                assert code != 0, (how, command)
        finally:
            manifest.write_bytes(saved)

    check()
    damaged(original, artifact, ("truncate", 1.0))


@pytest.mark.parametrize("part", ["manifest", "signature"])
def test_manifest_and_signature_damaged(tmp_path_factory: pytest.TempPathFactory, small_exports: dict,
                                        signing_keys: tuple[Path, Path], part: str) -> None:
    pytest.importorskip("model_signing", reason="needs the [sign] extra")
    work = tmp_path_factory.mktemp(f"fuzz-{part}")
    artifact = _copy_export(small_exports["onnx"], work)
    key, public = signing_keys
    assert run_and_check(work, ["sign", artifact.name, "--key", str(key)], lambda n: n.endswith(".sig")) == 0
    target = Path(f"{artifact}.manifest.json") if part == "manifest" else Path(f"{artifact}.sig")
    original = target.read_bytes()

    @FUZZ
    @given(how=damage)
    def check(how: tuple) -> None:
        counted(f"test_manifest_and_signature_damaged[{part}]")
        damaged(original, target, how)
        code = run_and_check(work, ["verify", artifact.name, "--public-key", str(public)])
        if code == 0 and part == "manifest":  # only a change JSON does not see (whitespace) may still verify
            assert json.loads(target.read_bytes()) == json.loads(original), how

    check()


def _recipe_and_results(recipe_run: tuple) -> tuple[Path, Path]:
    recipe, _results, out = recipe_run
    return Path(recipe.path), out / "results.json"


@pytest.mark.parametrize("part", ["recipe", "results"])
def test_recipe_and_results_damaged(tmp_path_factory: pytest.TempPathFactory, recipe_run: tuple, part: str) -> None:
    """gate --results (reads both, runs nothing) and report/compare on a damaged recipe or results file."""
    work = tmp_path_factory.mktemp(f"fuzz-{part}")
    recipe_source, results_source = _recipe_and_results(recipe_run)
    shutil.copytree(results_source.parent, work / "run")
    shutil.copy(recipe_source, work / "recipe.yaml")
    target = work / ("recipe.yaml" if part == "recipe" else "run/results.json")
    original = target.read_bytes()

    @FUZZ
    @given(how=damage, command=st.sampled_from(["gate", "report", "compare"]))
    def check(how: tuple, command: str) -> None:
        counted(f"test_recipe_and_results_damaged[{part}]")
        damaged(original, target, how)
        args = {"gate": ["gate", "recipe.yaml", "--results", "run/results.json"],
                "report": ["report", "run/results.json", "--out", "report"],
                "compare": ["compare", "run/results.json", "run/results.json"]}[command]
        run_and_check(work, args, lambda n: n.startswith("report"))
        shutil.rmtree(work / "report", ignore_errors=True)

    check()


@pytest.fixture(scope="session")
def tiny_image_sets(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """Two val images with a synsets file; two segmentation pairs; two detection images with annotations."""
    root = tmp_path_factory.mktemp("sets")
    val = data_root / "imagenet-subset" / "val"
    classes = sorted(p for p in val.iterdir() if p.is_dir())[:2]
    for folder in classes:
        (root / "cls" / folder.name).mkdir(parents=True)
        shutil.copy(sorted(folder.iterdir())[0], root / "cls" / folder.name)
    shutil.copy(data_root / "imagenet-subset" / "synsets.txt", root / "synsets.txt")
    for sub in ("images", "masks"):
        (root / "seg" / sub).mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (i * 90, 40, 200)).save(root / "seg" / "images" / f"p{i}.jpg")
        mask = Image.new("L", (64, 64), 0)
        mask.paste(15, (8, 8, 40, 40))
        mask.save(root / "seg" / "masks" / f"p{i}.png")
    return root


def test_synsets_damaged(tmp_path_factory: pytest.TempPathFactory, small_exports: dict, tiny_image_sets: Path) -> None:
    work = tmp_path_factory.mktemp("fuzz-synsets")
    artifact = _copy_export(small_exports["onnx"], work)
    synsets = work / "synsets.txt"
    original = (tiny_image_sets / "synsets.txt").read_bytes()

    @FUZZ
    @given(how=damage)
    def check(how: tuple) -> None:
        counted("test_synsets_damaged")
        damaged(original, synsets, how)
        run_and_check(work, ["eval", artifact.name, "--data", str(tiny_image_sets / "cls"), "--synsets",
                             "synsets.txt", "--threads", "1"])

    check()


def fuzz_reader(kind: str, original: bytes, target: Path, read: Callable[[], object]) -> None:
    """Damage ``target`` (a copy of ``original``) each way and ``read`` it: a result or one of edgedeploy's own
    errors in one line, nothing else (the readers whose commands cost a model run per example)."""
    from edgedeploy.core.errors import EdgeDeployError

    @FUZZ
    @given(how=damage)
    def check(how: tuple) -> None:
        counted(kind)
        damaged(original, target, how)
        try:
            read()
        except EdgeDeployError as exc:
            assert "\n" not in str(exc).strip()

    check()


def test_masks_damaged(tmp_path_factory: pytest.TempPathFactory, tiny_image_sets: Path) -> None:
    """A damaged mask in a segmentation folder, opened and every image and mask decoded as eval does (a model run
    per example would be all the cost)."""
    from edgedeploy.tasks.segmentation.data import SegmentationSet

    work = tmp_path_factory.mktemp("fuzz-masks")
    shutil.copytree(tiny_image_sets / "seg", work / "seg")
    mask = work / "seg" / "masks" / "p0.png"

    def read() -> None:
        for item in SegmentationSet.open(work / "seg", ignore_index=255):
            assert item.label is None or item.label.labels.shape == (64, 64)

    fuzz_reader("test_masks_damaged", mask.read_bytes(), mask, read)


def test_annotations_damaged(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> None:
    from edgedeploy.tasks.detection.data import DetectionSet

    instances = data_root / "detection" / "coco-val2017" / "instances.json"
    if not instances.is_file():
        pytest.skip(f"no COCO annotations at {instances}")
    work = tmp_path_factory.mktemp("fuzz-annotations")
    document = json.loads(instances.read_text())
    keep = {image["id"] for image in document["images"][:2]}
    small = {**document, "images": [i for i in document["images"] if i["id"] in keep],
             "annotations": [a for a in document["annotations"] if a["image_id"] in keep]}
    (work / "images").mkdir()
    for image in small["images"]:
        shutil.copy(instances.parent / "images" / image["file_name"], work / "images")
    target = work / "instances.json"
    fuzz_reader("test_annotations_damaged", json.dumps(small).encode(), target, lambda: DetectionSet.open(work, target))


def test_calibration_definition_damaged(tmp_path_factory: pytest.TempPathFactory, tiny_image_sets: Path) -> None:
    from edgedeploy.data.calibration import open_calibration_source

    work = tmp_path_factory.mktemp("fuzz-calibration")
    assert run_and_check(work, ["calibration", str(tiny_image_sets / "cls"), "-o", "calib.json", "--size", "2"],
                         lambda n: n == "calib.json") == 0
    definition = work / "calib.json"
    fuzz_reader("test_calibration_definition_damaged", definition.read_bytes(), definition,
                lambda: open_calibration_source(definition))
