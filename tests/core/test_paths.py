"""Every path a user names, checked in one place (edgedeploy.core.paths): names are file names, outputs stay in
their folder, special files are refused on read and write, text inputs are bounded before parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core import paths
from edgedeploy.core.artifacts import atomic_write_text, staging_dir
from edgedeploy.core.errors import ConfigError, InputFileError, OutputDirError
from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.yamlfile import ConfigFileError, load_yaml
from edgedeploy.tasks.classification import cosine_similarity


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a\\b", " x", "x\0y", "é" * 101])
def test_a_name_is_a_file_name(name: str) -> None:
    with pytest.raises(ConfigError, match="a file name is expected"):
        paths.file_name(name, "--name")


def test_outputs_stay_inside_their_folder(tmp_path: Path) -> None:
    assert paths.inside(tmp_path, "m.onnx", "the artifact") == (tmp_path / "m.onnx").resolve()
    (tmp_path / "escape").symlink_to("/tmp")
    for name in ("../m.onnx", "/etc/m.onnx", "escape/m.onnx"):
        with pytest.raises(OutputDirError, match="would be written outside"):
            paths.inside(tmp_path, name, "the artifact")


@pytest.fixture()
def specials(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    return {"fifo": (tmp_path / "fifo", "is a FIFO"), "folder": (tmp_path / "folder", "is a folder"),
            "device": (Path("/dev/zero"), "is a character device"),
            "proc": (Path("/proc/self/status"), "is a kernel file"),
            "missing": (tmp_path / "nothing", "not found")}


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "proc", "missing"])
def test_special_files_are_refused_on_read(specials: dict, kind: str) -> None:
    path, said = specials[kind]
    with pytest.raises(InputFileError, match=said) as info:
        paths.read_text(path, "recipe")
    assert "\n" not in str(info.value)


def test_text_inputs_are_bounded_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 2049)
    with pytest.raises(InputFileError, match="more than the 0 MiB a synsets file may have"):
        paths.read_text(big, "synsets file", max_bytes=2048)
    assert paths.read_text(big, "synsets file", max_bytes=4096) == "a" * 2049
    big.write_bytes(b"\xff\xfe")
    with pytest.raises(InputFileError, match="not UTF-8 text"):
        paths.read_text(big, "synsets file")


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_special_files_are_refused_on_write(specials: dict, kind: str) -> None:
    path, _ = specials[kind]
    with pytest.raises(OutputDirError):
        atomic_write_text(path, "x")
    assert not list(path.parent.glob(".tmp-*"))


@pytest.mark.parametrize("folder", ["/proc/edgedeploy", "/sys/x", "/dev/shm/x"])
def test_output_folders_in_kernel_filesystems_are_refused(folder: str) -> None:
    with pytest.raises(OutputDirError, match="cannot be in /proc, /sys or /dev"):
        paths.check_output_folder(Path(folder))


def test_a_failed_run_leaves_no_folder_it_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with staging_dir(out):
            raise RuntimeError("conversion failed")
    assert not (tmp_path / "a").exists()
    with staging_dir(out) as stage:
        (stage.parent / "m.onnx").write_text("x")
    assert (out / "m.onnx").is_file()


BOMB = "name: bomb\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")) + "description: *i\n"


def test_yaml_alias_bombs_are_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(BOMB)
    with pytest.raises(ConfigFileError, match="aliases expand it to more than 200,000 values"):
        load_yaml(path, "recipe")
    path.write_text("name: ok\nbase: &base {runs: 3}\nbench: *base\nother: *base\n")
    assert load_yaml(path, "recipe")[0]["other"] == {"runs": 3}  # ordinary aliases still work
    path.write_text("a: &x [*x]\n")  # a cycle expands without end
    with pytest.raises(ConfigFileError, match="aliases expand"):
        load_yaml(path, "recipe")


def test_no_nan_reaches_json() -> None:
    import numpy as np

    text = json_text({"sqnr": float("nan"), "rows": [float("inf"), 1.5], "np": np.float32("nan")}, default=float)
    assert text.replace(" ", "").replace("\n", "") == '{"sqnr":null,"rows":[null,1.5],"np":null}'


def test_cosine_of_tiny_outputs() -> None:
    import numpy as np

    a = np.array([[3e-8, 4e-8], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
    b = np.array([[6e-8, 8e-8], [0.0, 2.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    # The same direction at any scale is 1 (a fixed 1e-12 floor on the norms' product gave 5e-3 here).
    assert cosine_similarity(a, b) == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(("args", "code", "said"), [
    (["export", "--target", "onnx", "--name", "../../x"], 2, "a file name is expected"),
    (["export", "--target", "onnx", "--name", "a/b"], 2, "a file name is expected"),
    (["export", "--target", "onnx", "--out", "/proc/x"], 3, "cannot be in /proc"),
    (["run", "recipe.yaml", "--out", "/proc/x"], 3, "cannot be in /proc"),
    (["gate", "recipe.yaml", "--junit", "folder"], 3, "a folder is in the way"),
    (["gate", "/dev/zero"], 3, "recipe is a character device"),
    (["gate", "fifo"], 3, "recipe is a FIFO"),
    (["eval", "sample", "--data", "data", "--synsets", "/dev/zero"], 3, "synsets file is a character device"),
])
def test_cli_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path, args: list[str],
                                 code: int, said: str) -> None:
    monkeypatch.setenv("EDGEDEPLOY_DATA", str(data_root.resolve()))
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    Path("folder").mkdir()
    Path("data/n01/").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save("data/n01/a.jpg")
    Path("recipe.yaml").write_text("name: r\ntargets:\n  onnx: {}\n")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and said in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data", "fifo", "folder", "recipe.yaml"]


def test_deeply_nested_json_is_refused_before_the_parser_recurses(tmp_path: Path) -> None:
    # With the recursion limit raised (TensorFlow and onnx2tf raise it), json's C scanner overflowed the C stack on
    # a signature of nested brackets: a segmentation fault. Checked in a child process so a crash is observed.
    import subprocess
    import sys

    code = ("import sys; sys.setrecursionlimit(10**6)\n"
            "from edgedeploy.core.jsonfile import parse_json\n"
            "try:\n    parse_json('[' * 2_000_000)\nexcept ValueError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "nested more than 200 levels deep" in done.stdout, done.stderr[-500:]
