"""An ONNX file's external data, checked for every tensor the model holds before any byte of it is read: each
place a tensor can be (initializers, sparse ones, node attributes, subgraphs, functions, training graphs) with
each way a reference can be bad, refused in one line naming the tensor; and the CLI's three ways in (export
--from, inspect, bench) refusing such a file with exit 3 while a good one still computes numpy's numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import InputFileError
from edgedeploy.core.onnx_external_data import OnnxParseError, check_onnx_file

DOMAIN = "test.edgedeploy"
IMAGENET = ["--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225"]
# (tensor, what a refusal calls it); the last one has no name, so it is named by its place.
PLACES = [("W", "'W'"), ("S", "'S'"), ("S_idx", "'S_idx'"), ("C", "'C'"), ("T1", "'T1'"), ("SPV", "'SPV'"),
          ("", "attribute['sparse_list']/sparse_tensors/indices"), ("THEN", "'THEN'"), ("ELSE", "'ELSE'"),
          ("BODY", "'BODY'"), ("GRAPHS0", "'GRAPHS0'"), ("FNC", "'FNC'"), ("FNDEFAULT", "'FNDEFAULT'"),
          ("TRAIN", "'TRAIN'")]


def _array(name: str, shape: tuple[int, ...], dtype: type = np.float32, seed: int = 0) -> TensorProto:
    return numpy_helper.from_array((np.random.default_rng(seed).standard_normal(shape) * 10).astype(dtype), name)


def _graph(name: str, initializer: TensorProto, nodes: list[onnx.NodeProto] | None = None) -> onnx.GraphProto:
    return helper.make_graph(nodes or [helper.make_node("Identity", ["x"], [f"{name}_out"])], name, [],
                             [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)], [initializer])


def _zoo() -> onnx.ModelProto:
    """A tensor in every place a model can hold one (not a model to run: the check reads no graph semantics)."""
    sparse = helper.make_sparse_tensor(_array("S", (2,)), numpy_helper.from_array(np.array([0, 4]), "S_idx"), [2, 3])
    sparse_value = helper.make_sparse_tensor(_array("SPV", (1,)), numpy_helper.from_array(np.array([1]), "SPI"), [4])
    unnamed = helper.make_sparse_tensor(_array("SLV", (1,)), numpy_helper.from_array(np.array([2]), ""), [4])
    nodes = [
        helper.make_node("Add", ["x", "W"], ["a"]),
        helper.make_node("Constant", [], ["c"], name="const", value=_array("C", (2, 3))),
        helper.make_node("Pack", [], ["p"], name="pack", domain=DOMAIN, items=[_array("T0", (2,)), _array("T1", (3,))]),
        helper.make_node("Constant", [], ["sv"], name="sparse_const", sparse_value=sparse_value),
        helper.make_node("Gather", [], ["sl"], name="sparse_list_node", domain=DOMAIN, sparse_list=[unnamed]),
        helper.make_node("If", ["cond"], ["i"], name="if", then_branch=_graph("then", _array("THEN", (2,))),
                         else_branch=_graph("else", _array("ELSE", (2,)))),
        helper.make_node("Loop", ["", "cond"], ["l"], name="loop", body=_graph("body", _array("BODY", (2,)))),
        helper.make_node("Branches", [], ["b"], name="branches", domain=DOMAIN,
                         bodies=[_graph("graphs0", _array("GRAPHS0", (2,)))]),
        helper.make_node("Fn", ["a"], ["f"], domain=DOMAIN),
    ]
    graph = helper.make_graph(nodes, "main", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
                              [_array("W", (2, 3))], sparse_initializer=[sparse])
    function = helper.make_function(
        DOMAIN, "Fn", ["u"], ["v"],
        [helper.make_node("Constant", [], ["k"], value=_array("FNC", (3,))), helper.make_node("Add", ["u", "k"], ["v"])],
        [helper.make_opsetid("", 17)], attribute_protos=[helper.make_attribute("scale", _array("FNDEFAULT", (2,)))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)],
                              functions=[function])
    model.training_info.add().initialization.CopyFrom(helper.make_graph([], "init", [], [], [_array("TRAIN", (2,))]))
    return model


def _every_tensor(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """The test's own list of the places a tensor can be (what the module must find without such a list)."""
    def graph(g: onnx.GraphProto) -> Iterator[TensorProto]:
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in g.node:
            yield from attributes(node.attribute)

    def attributes(attrs: list[onnx.AttributeProto]) -> Iterator[TensorProto]:
        for a in attrs:
            yield from ([a.t] if a.HasField("t") else [])
            yield from a.tensors
            for sparse in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                yield from (sparse.values, sparse.indices)
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from graph(g)

    yield from graph(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from attributes(node.attribute)
        yield from attributes(function.attribute_proto)
    for info in model.training_info:
        yield from graph(info.initialization)


def _save_external(model: onnx.ModelProto, folder: Path, inline: Collection[str] = ()) -> Path:
    """``model`` saved in ``folder`` with every tensor's data but ``inline``'s (all places, unlike onnx.save's) in
    weights.bin."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "weights.bin").open("wb") as f:
        for tensor in (t for t in _every_tensor(model) if t.name not in inline):
            offset = f.tell()
            f.write(tensor.raw_data)
            onnx.external_data_helper.set_external_data(tensor, "weights.bin", offset, len(tensor.raw_data))
            tensor.ClearField("raw_data")
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def _tensor(model: onnx.ModelProto, name: str) -> TensorProto:
    return next(t for t in _every_tensor(model) if t.name == name)


def _entries(tensor: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _set(tensor: TensorProto, pairs: list[tuple[str, str]]) -> None:
    del tensor.external_data[:]
    for key, value in pairs:
        tensor.external_data.add(key=key, value=value)


def _link(folder: Path, name: str, target: Path) -> str:
    (folder / name).symlink_to(target)
    return name


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe.bin")
    return "pipe.bin"


def _folder(folder: Path) -> str:
    (folder / "dir.bin").mkdir()
    return "dir.bin"


def _replace(**values: str) -> Callable[[dict[str, str], Path, Path, int], list[tuple[str, str]]]:
    return lambda e, _f, _o, _s: list({**e, **values}.items())


# Each way an external-data reference can be bad: (entries, model folder, a folder beside it holding secret.bin,
# the data file's size) -> the (key, value) pairs the tensor gets instead; and what the refusal says.
Corruption = Callable[[dict[str, str], Path, Path, int], list[tuple[str, str]]]
OUTSIDE = "points its external data outside the model's folder"
CORRUPTIONS: dict[str, tuple[Corruption, str]] = {
    "offset past the end": (lambda e, _f, _o, size: list({**e, "offset": str(size + 1)}.items()), "past the end"),
    "offset near the end, length past it": (lambda e, _f, _o, size: list({**e, "offset": str(size - 1)}.items()),
                                            "past the end"),
    "length past the end": (lambda e, _f, _o, size: list({**e, "length": str(size + 1)}.items()), "past the end"),
    "negative offset": (_replace(offset="-1"), "offset '-1' is not a byte count"),
    "negative length": (_replace(length="-4"), "length '-4' is not a byte count"),
    "offset not an integer": (_replace(offset="1.5"), "not a byte count"),
    "offset in hex": (_replace(offset="0x10"), "not a byte count"),
    "offset with a sign": (_replace(offset="+0"), "not a byte count"),
    "offset with a space": (_replace(offset=" 0"), "not a byte count"),
    "offset of 5000 digits": (_replace(offset="9" * 5000), "not a byte count"),
    "length short of the dtype's bytes": (
        lambda e, _f, _o, _s: list({**e, "length": str(int(e["length"]) - 1)}.items()), "its dtype and dims"),
    "length over the dtype's bytes, inside the file": (
        lambda e, _f, _o, _s: list({**e, "offset": "0", "length": str(int(e["length"]) + 1)}.items()),
        "its dtype and dims"),
    "no location": (lambda e, _f, _o, _s: [(k, v) for k, v in e.items() if k != "location"], "no location"),
    "empty location": (_replace(location=""), "no location"),
    "absolute location": (lambda e, _f, outside, _s: list({**e, "location": str(outside / "secret.bin")}.items()),
                          OUTSIDE),
    "../ location": (_replace(location="../outside/secret.bin"), OUTSIDE),
    "../ inside the location": (lambda e, f, _o, _s: (f / "sub").mkdir() or list(
        {**e, "location": "sub/../../outside/secret.bin"}.items()), OUTSIDE),
    "symlink out of the folder": (
        lambda e, f, o, _s: list({**e, "location": _link(f, "link.bin", o / "secret.bin")}.items()), OUTSIDE),
    "symlinked folder out of the folder": (
        lambda e, f, o, _s: list({**e, "location": _link(f, "linkdir", o) + "/secret.bin"}.items()), OUTSIDE),
    "symlink to /dev/zero": (
        lambda e, f, _o, _s: list({**e, "location": _link(f, "zero.bin", Path("/dev/zero"))}.items()), OUTSIDE),
    "a folder": (lambda e, f, _o, _s: list({**e, "location": _folder(f)}.items()), "is a folder"),
    "a FIFO": (lambda e, f, _o, _s: list({**e, "location": _fifo(f)}.items()), "is a FIFO"),
    "a missing file": (_replace(location="none.bin"), "'none.bin': external data file not found"),
    "a newline in the location": (_replace(location="no\nne.bin"), "'no\\nne.bin': external data file not found"),
    "NUL in the location": (_replace(location="weights.bin\0../outside/secret.bin"), OUTSIDE),
    "a second location": (lambda e, _f, _o, _s: [*e.items(), ("location", "../outside/secret.bin")], "twice"),
    "a checksum that is not SHA1": (_replace(checksum="not-a-digest"), "not a SHA1 digest"),
}


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """The model's folder, and beside it one whose secret.bin is there to be read (only the check can stop it)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"\1" * 4096)
    return tmp_path / "m", outside


def _corrupt(folder: Path, outside: Path, name: str, corruption: str) -> Path:
    model = _zoo()
    path = _save_external(model, folder)
    tensor = _tensor(model, name)
    _set(tensor, CORRUPTIONS[corruption][0](_entries(tensor), folder, outside, (folder / "weights.bin").stat().st_size))
    onnx.save(model, str(path))
    return path


def _refused(path: Path, label: str) -> str:
    with pytest.raises(InputFileError) as caught:
        check_onnx_file(path)
    message = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in message and message.startswith(f"{path}: "), message
    assert label in message, message
    return message


# Every way, in four places of different kinds; every place, in three ways (what a list of places would miss).
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize(("name", "label"), [PLACES[0], PLACES[4], PLACES[6], PLACES[8]])
def test_each_bad_reference_is_refused_naming_the_tensor(folders: tuple[Path, Path], name: str, label: str,
                                                         corruption: str) -> None:
    assert CORRUPTIONS[corruption][1] in _refused(_corrupt(*folders, name, corruption), label)


@pytest.mark.parametrize("corruption", ["offset past the end", "../ location", "a FIFO"])
@pytest.mark.parametrize(("name", "label"), PLACES)
def test_every_place_a_tensor_can_be_is_checked(folders: tuple[Path, Path], name: str, label: str,
                                                corruption: str) -> None:
    assert CORRUPTIONS[corruption][1] in _refused(_corrupt(*folders, name, corruption), label)


@pytest.mark.parametrize("name", ["W", ""])
def test_names_from_the_file_cannot_break_the_line(tmp_path: Path, name: str) -> None:
    model = _zoo()
    next(n for n in model.graph.node if n.name == "sparse_list_node").name = "evil\nTraceback"
    path = _save_external(model, tmp_path)
    tensor = _tensor(model, name)
    tensor.name = tensor.name and "W\nTraceback"
    _set(tensor, [("location", "../outside\nsecret.bin")])
    onnx.save(model, str(path))
    _refused(path, OUTSIDE)


def test_negative_dims_are_refused(tmp_path: Path) -> None:
    model = _zoo()
    path = _save_external(model, tmp_path)
    _tensor(model, "THEN").dims[:] = [-2, -1]
    onnx.save(model, str(path))
    assert "negative dims" in _refused(path, "'THEN'")


def test_a_good_model_passes_and_its_data_loads_everywhere(tmp_path: Path) -> None:
    originals = {t.name: numpy_helper.to_array(t) for t in _every_tensor(_zoo()) if t.name}
    model = _zoo()
    checked = check_onnx_file(_save_external(model, tmp_path))
    assert checked.data_files == ((tmp_path / "weights.bin").resolve(),)
    assert len(checked.external) == len(list(_every_tensor(model)))
    checked.load_data()
    loaded = {t.name: numpy_helper.to_array(t) for t in _every_tensor(checked.model) if t.name}
    assert loaded.keys() == originals.keys()
    for name, array in originals.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_a_symlink_that_stays_inside_and_unknown_keys_pass_the_check(tmp_path: Path) -> None:
    model = _zoo()
    path = _save_external(model, tmp_path)
    (tmp_path / "alias.bin").symlink_to("weights.bin")
    weights = _tensor(model, "W")
    _set(weights, [*list({**_entries(weights), "location": "alias.bin"}.items()), ("future_key", "ignored")])
    onnx.save(model, str(path))
    assert check_onnx_file(path).data_files == ((tmp_path / "weights.bin").resolve(),)


def test_a_model_without_external_data_passes_as_it_is(tmp_path: Path) -> None:
    onnx.save(_zoo(), str(tmp_path / "inline.onnx"))
    checked = check_onnx_file(tmp_path / "inline.onnx")
    assert checked.external == () and checked.data_files == ()


def test_data_changed_after_the_check_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _save_external(_zoo(), tmp_path)
    checked = check_onnx_file(path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(InputFileError, match="external data cannot be read") as caught:
        checked.load_data()
    assert "\n" not in str(caught.value)


def test_files_that_are_not_onnx_models_are_refused(tmp_path: Path) -> None:
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07garbage, not protobuf" * 10)
    with pytest.raises(OnnxParseError, match="not a readable ONNX model"):
        check_onnx_file(tmp_path / "garbage.onnx")
    os.mkfifo(tmp_path / "pipe.onnx")
    (tmp_path / "dir.onnx").mkdir()
    for name, problem in [("pipe.onnx", "FIFO"), ("dir.onnx", "folder"), ("none.onnx", "not found")]:
        with pytest.raises(InputFileError, match=problem):
            check_onnx_file(tmp_path / name)


def _classifier(folder: Path, inline: Collection[str] = ()) -> tuple[Path, Callable[[np.ndarray], np.ndarray]]:
    """A runnable classifier (1x3x8x8 -> 1x5) whose weights but ``inline`` are external: an initializer, a
    Constant's value and the initializers of an If's branches; with numpy's computation of it."""
    rng = np.random.default_rng(1)
    w, b, then, other = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (5,), (5,), (5,)))

    def branch(name: str, value: np.ndarray) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Add", ["s", name], [f"{name}_out"])], name, [],
                                 [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 5])],
                                 [numpy_helper.from_array(value, name)])

    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "W"], ["m"]),
             helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b, "B")),
             helper.make_node("Add", ["m", "b"], ["s"]),
             helper.make_node("If", ["cond"], ["logits"], then_branch=branch("THEN", then),
                              else_branch=branch("ELSE", other))]
    graph = helper.make_graph(nodes, "classifier", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                  [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return _save_external(model, folder, inline), lambda x: x.mean(axis=(2, 3)) @ w + b + then


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgedeploy", *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)


def _one_line_exit_3(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(w in result.stderr for w in words), result.stderr


def test_the_cli_refuses_a_bad_reference_in_one_line_and_writes_nothing(folders: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    folder, _outside = folders
    path, _ = _classifier(folder)
    size = (folder / "weights.bin").stat().st_size
    bad_else, bad_constant = folder / "bad_else.onnx", folder / "bad_constant.onnx"
    for bad, name, values in [(bad_else, "ELSE", {"offset": str(size + 8)}),
                              (bad_constant, "B", {"location": _fifo(folder)})]:
        model = onnx.load(str(path), load_external_data=False)
        _set(_tensor(model, name), list({**_entries(_tensor(model, name)), **values}.items()))
        onnx.save(model, str(bad))

    out = tmp_path / "out"
    _one_line_exit_3(_cli("export", "--from", bad_else, "--target", "onnx", *IMAGENET, "--out", out),
                     str(bad_else), "'ELSE'", "past the end")
    assert not out.exists() or not any(out.iterdir())
    _one_line_exit_3(_cli("inspect", bad_constant), str(bad_constant), "'B'", "FIFO")
    benched = CliRunner().invoke(cli, ["bench", str(bad_else), "--runs", "1", *IMAGENET])
    assert benched.exit_code == 3 and "'ELSE'" in benched.stderr and benched.stderr.count("\n") == 1, benched.output


def test_a_good_external_data_model_inspects_and_runs_numpys_numbers(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from edgedeploy.runtimes import LoadOptions, load_runner

    path, expected = _classifier(tmp_path / "m")
    inspected = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.stdout)["params"] == 3 * 5 + 1
    # ONNX Runtime 1.32's If folding reads the condition's external data from the working directory, not the
    # model's folder: a decoy there (cond False) must not be what runs - the runner hands ONNX Runtime the checked
    # data in memory.
    decoy = tmp_path / "cwd"
    decoy.mkdir()
    (decoy / "weights.bin").write_bytes((path.parent / "weights.bin").read_bytes().replace(b"\x01", b"\x00"))
    monkeypatch.chdir(decoy)
    runner = load_runner(str(path), LoadOptions(mean=(0.5,) * 3, std=(0.5,) * 3))
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(runner.infer(x)["logits"], expected(x), rtol=1e-5, atol=1e-5)


@pytest.mark.data
def test_a_good_external_data_model_exports_with_numpys_numbers(tmp_path: Path, data_root: Path) -> None:
    import onnxruntime as ort

    path, expected = _classifier(tmp_path / "m")
    result = CliRunner().invoke(cli, ["export", "--from", str(path), "--target", "onnx", *IMAGENET, "--out",
                                      str(tmp_path / "out"), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    exported = ort.InferenceSession(json.loads(result.stdout)["path"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(exported, expected(x), rtol=1e-5, atol=1e-5)
