"""What the ExecuTorch runtime knows about a .pte: its kernels, its delegates, and the XNNPACK
graphs inside them (ops and tensor dtypes), read from the file itself.

The program is ExecuTorch's flatbuffer (``deserialize_pte_binary``); each XNNPACK delegate
payload is a header plus XNNPACK's own flatbuffer, decoded to JSON by the ``flatc`` that
ships inside the executorch wheel, against the schema that ships beside it.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.processes import run_tool

__all__ = ["WEIGHTED_NODES", "XNNPACK", "program_of", "xnnpack_graphs", "delegation_summary", "tensor_dtype"]

XNNPACK = "XnnpackBackend"
_NON_FINITE = re.compile(r"(:\s*)(-?inf|-?nan)\b")
# flatc decodes a MobileNet's graph in well under a second.
FLATC_TIMEOUT_S = 120
# XNNPACK nodes that carry weights: their filter tensor's dtype is the weights' precision.
WEIGHTED_NODES = ("XNNConv2d", "XNNDepthwiseConv2d", "XNNFullyConnected")


def program_of(path: Path) -> Any:
    """The deserialized ExecuTorch program (its plans, operators and delegate payloads)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        return deserialize_pte_binary(path.read_bytes()).program
    except Exception as exc:  # the deserializer raises whatever the bytes provoke
        raise InputFileError(f"{path}: not an ExecuTorch program ({exc.__class__.__name__})") from exc


def _decode_xnnpack(payload: bytes) -> dict[str, Any]:
    from executorch.backends.xnnpack import serialization
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    header = XNNHeader.from_bytes(payload[: XNNHeader.EXPECTED_LENGTH])
    graph = payload[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "schema.fbs").write_bytes(resources.files(serialization).joinpath("schema.fbs").read_bytes())
        (Path(tmp) / "graph.bin").write_bytes(graph)
        done = run_tool([_get_flatc_path(), "--json", "--strict-json", "--defaults-json", "--raw-binary",
                         "-o", tmp, str(Path(tmp) / "schema.fbs"), "--", str(Path(tmp) / "graph.bin")],
                        FLATC_TIMEOUT_S, "decoding the XNNPACK graph")
        if done.returncode != 0:
            raise InputFileError(f"flatc cannot decode the XNNPACK graph: {done.stderr.strip()[-200:]}")
        # flatc writes infinite floats bare (a ReLU is a clamp to [0, inf]); Python's JSON reads them as Infinity.
        text = _NON_FINITE.sub(lambda m: m.group(1) + {"inf": "Infinity", "-inf": "-Infinity"}.get(m.group(2), "NaN"),
                               (Path(tmp) / "graph.json").read_text())
        decoded: dict[str, Any] = json.loads(text)
        return decoded


@lru_cache(maxsize=16)
def _graphs(path: Path, mtime_ns: int) -> tuple[Any, tuple[dict[str, Any], ...]]:
    program = program_of(path)
    plan = program.execution_plan[0]
    graphs = tuple(_decode_xnnpack(bytes(program.backend_delegate_data[d.processed.index].data))
                   for d in plan.delegates if d.id == XNNPACK)
    return program, graphs


def xnnpack_graphs(path: Path) -> tuple[dict[str, Any], ...]:
    """Every XNNPACK delegate's graph (``xnodes``, ``xvalues``), in program order."""
    return _graphs(path, path.stat().st_mtime_ns)[1]


def tensor_dtype(graph: dict[str, Any], value_id: int) -> str:
    """XNNPACK's datatype of a value (``xnn_datatype_fp32``, ``..._qint8``, ``..._qcint8`` per-channel)."""
    value = graph["xvalues"][value_id]["xvalue_union"]
    tensor = value.get("tensor_value", value)  # quantized values wrap a tensor value
    return str(tensor["datatype"]).removeprefix("xnn_datatype_")


def delegation_summary(path: Path) -> dict[str, Any]:
    """Which ops run inside a delegate and which run as portable ExecuTorch kernels (outside it)."""
    program, graphs = _graphs(path, path.stat().st_mtime_ns)
    plan = program.execution_plan[0]
    calls: Counter[str] = Counter()
    delegates: Counter[str] = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            if type(args).__name__ == "KernelCall":
                calls[plan.operators[args.op_index].name] += 1
            elif type(args).__name__ == "DelegateCall":
                delegates[plan.delegates[args.delegate_index].id] += 1
    delegated = Counter(n["xnode_union_type"].removeprefix("XNN") for g in graphs for n in g["xnodes"])
    return {"delegates": dict(delegates), "delegated_ops": dict(delegated.most_common()),
            "portable_ops": dict(calls.most_common()), "delegated_nodes": sum(delegated.values()),
            "portable_nodes": sum(calls.values())}
