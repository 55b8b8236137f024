"""A user's ONNX file with every tensor's external data checked before one byte of it is read.

ONNX keeps large tensors beside the model: the tensor says ``data_location: EXTERNAL`` and names a file
(``location``), a byte ``offset`` and a ``length``. A crafted model can aim these at any file (an absolute path,
``..``, a symlink out of its folder), at a FIFO or a device (the read blocks or never ends), or past the end of
the file, from any tensor it holds: an initializer, a sparse initializer's values or indices, a Constant's value,
a tensor in an If/Loop/Scan body, in a function or in a training graph. ONNX's and ONNX Runtime's loaders check
parts of this and stop with a traceback where they do; edgedeploy checks all of it, once, and refuses with one
line (InputFileError, exit 3) naming the model, the tensor and the problem.

The tensors are found through the proto's message types, not a list of fields, so a tensor in a place a list
would forget (a function's default attribute, a field a later ONNX adds) is checked too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.paths import input_file

if TYPE_CHECKING:
    import onnx

__all__ = ["OnnxFile", "OnnxParseError", "check_onnx_file"]

# A tensor's place: (the place of the message holding it, the field, the tensor or message in it), None at the top.
_Where = tuple[Any, str, Any] | None

# Offsets and lengths are byte counts: ASCII digits, at most a uint64's 20 (int() would also take "+1", " 1",
# "1_0" or non-ASCII digits, and a 5000-digit string is a ValueError of its own).
_BYTE_COUNT = re.compile(r"[0-9]{1,20}")
# The spec's checksum is a SHA1 digest. Not compared with the file: that would read all of it.
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
# The keys the spec defines that a reader acts on; others are ignored, as the spec says.
_KEYS = ("location", "offset", "length", "checksum")
# Sub-byte types are stored packed (as onnx.numpy_helper packs them); the others take their numpy itemsize.
_PACKED_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2, "FLOAT6E2M3": 6, "FLOAT6E3M2": 6}


class OnnxParseError(InputFileError):
    """The file is not a protobuf ModelProto: nothing in it can name external data."""


@dataclass(frozen=True)
class OnnxFile:
    """A checked ONNX file: its proto without external data, and where that data is."""

    path: Path
    model: onnx.ModelProto
    # Each external-data file once, resolved, sorted (what a content key hashes).
    data_files: tuple[Path, ...]
    # (how a refusal names it, the tensor in ``model``) for every tensor whose data is external.
    external: tuple[tuple[str, onnx.TensorProto], ...]

    def load_data(self) -> None:
        """Read every external tensor into ``model``, from the folder the check used (ONNX's own loader misses
        sparse and training tensors). A file changed since the check is refused in one line."""
        from onnx.external_data_helper import load_external_data_for_tensor

        for label, tensor in self.external:
            try:
                load_external_data_for_tensor(tensor, str(self.path.parent))
            except Exception as exc:  # ONNX's ValueError, its C++ checker's ValidationError, OSError
                raise InputFileError(f"{self.path}: tensor {label}: external data cannot be read "
                                     f"({_first_line(exc)})") from None


def check_onnx_file(path: str | Path) -> OnnxFile:
    """``path``'s model, parsed without its external data, once every tensor that keeps its data outside the file
    names a regular file inside the model's folder (no absolute path, no ``..``, symlinks resolved) and a byte
    range that lies in that file and holds exactly the bytes the tensor's dtype and dims need.

    OnnxParseError if the file does not parse; InputFileError (one line) naming the tensor for any other problem.
    """
    import onnx

    path = input_file(path, "ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OnnxParseError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    # The folder ONNX and ONNX Runtime read from: the model path's own, not its symlink target's.
    folder = path.parent.resolve()
    sizes: dict[Path, int] = {}
    external = []
    for where, tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            label = repr(tensor.name) if tensor.name else f"at {_where_text(where)}"
            _check(path, folder, tensor, label, sizes)
            external.append((label, tensor))
    return OnnxFile(path, model, tuple(sorted(sizes)), tuple(external))


def _check(path: Path, folder: Path, tensor: onnx.TensorProto, label: str, sizes: dict[Path, int]) -> None:
    def refuse(problem: str) -> InputFileError:
        return InputFileError(f"{path}: tensor {label}: {problem}")

    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in _KEYS:
            if entry.key in entries:  # loaders disagree on which one wins: a second value could pass unchecked
                raise refuse(f"external data gives {entry.key!r} twice")
            entries[entry.key] = entry.value
    location = entries.get("location", "")
    if not location:
        raise refuse("external data has no location")
    outside = f"points its external data outside the model's folder ({location!r}); refused, not read"
    if "\0" in location or os.path.isabs(location) or ".." in Path(location).parts:
        raise refuse(outside)
    try:
        target = (folder / location).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise refuse(f"external data location {location!r} cannot be resolved ({type(exc).__name__})") from None
    if folder not in target.parents:
        raise refuse(outside)
    if target not in sizes:
        try:
            sizes[target] = input_file(target, "external data file").stat().st_size
        except InputFileError as exc:  # its message starts with the path, which the location (repr: one line) says
            raise refuse(f"{location!r}: {str(exc).removeprefix(f'{target}: ')}") from None
        except OSError as exc:
            raise refuse(f"{location!r}: cannot read the external data file ({exc.strerror})") from None
    for key in ("offset", "length"):
        if key in entries and not _BYTE_COUNT.fullmatch(entries[key]):
            raise refuse(f"external data {key} {entries[key][:40]!r} is not a byte count (decimal, at most 20 "
                         "digits)")
    if "checksum" in entries and not _SHA1.fullmatch(entries["checksum"]):
        raise refuse(f"external data checksum {entries['checksum'][:60]!r} is not a SHA1 digest")
    size = sizes[target]
    offset = int(entries.get("offset", "0"))
    if offset > size:
        raise refuse(f"external data offset {offset} is past the end of {location!r} ({size} bytes)")
    # Without a length a tensor takes the rest of the file (as ONNX reads it).
    length = int(entries["length"]) if "length" in entries else size - offset
    if offset + length > size:
        raise refuse(f"external data offset {offset} + length {length} is past the end of {location!r} "
                     f"({size} bytes)")
    if any(d < 0 for d in tensor.dims):
        raise refuse(f"has negative dims {list(tensor.dims)}")
    needed = _data_bytes(tensor)
    if needed is not None and length != needed:
        raise refuse(f"external data holds {length} bytes of {location!r}; its dtype and dims "
                     f"{list(tensor.dims)} need {needed}")


def _data_bytes(tensor: onnx.TensorProto) -> int | None:
    """The bytes ``tensor``'s data takes, or None where its dtype has no fixed size (strings, unknown types)."""
    import onnx

    try:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError):  # UNDEFINED, or a number this onnx does not know
        return None
    if name == "STRING":
        return None
    return (math.prod(tensor.dims) * _PACKED_BITS.get(name, 8 * itemsize) + 7) // 8


def _tensors(model: onnx.ModelProto) -> Iterator[tuple[_Where, onnx.TensorProto]]:
    """Every TensorProto in ``model``, with where it is. Iterative: a deep nest of subgraphs must not meet Python's
    recursion limit."""
    fields = _fields_holding_tensors()
    stack: list[tuple[_Where, Any]] = [(None, model)]
    while stack:
        where, message = stack.pop()
        for name, single, tensors in fields[type(message)]:
            if single and not message.HasField(name):
                continue
            value = getattr(message, name)
            for item in (value,) if single else value:
                if tensors:
                    yield (where, name, item), item
                else:
                    stack.append(((where, name, item), item))


def _where_text(where: _Where) -> str:
    """``graph['main']/node['If_0']/attribute['then_branch']/g/...`` for a tensor's place (built for a refusal)."""
    steps = []
    while where is not None:
        where, field, item = where
        steps.append(f"{field}[{item.name!r}]" if getattr(item, "name", "") else field)  # repr: one line
    return "/".join(reversed(steps))


@cache
def _fields_holding_tensors() -> dict[type, tuple[tuple[str, bool, bool], ...]]:
    """For each message class through which a ModelProto can hold a TensorProto, the fields that lead to one (name,
    singular, holds TensorProtos). Found from the descriptors, so the walk skips the rest (value infos, types,
    metadata, the data itself) and takes a field a later ONNX adds."""
    import onnx
    from google.protobuf.message import Message
    from google.protobuf.message_factory import GetMessageClass

    types: dict[str, Any] = {}
    stack = [onnx.ModelProto.DESCRIPTOR]
    while stack:
        descriptor = stack.pop()
        if descriptor.full_name not in types:
            types[descriptor.full_name] = descriptor
            stack += [f.message_type for f in descriptor.fields if f.message_type is not None]
    tensor = onnx.TensorProto.DESCRIPTOR.full_name
    holding = {tensor}
    while more := {name for name, d in types.items() if name not in holding
                   and any(f.message_type is not None and f.message_type.full_name in holding for f in d.fields)}:
        holding |= more
    plan = {}
    for name in holding:
        cls = GetMessageClass(types[name])
        plan[cls] = tuple((f.name, isinstance(getattr(cls(), f.name), Message), f.message_type.full_name == tensor)
                          for f in types[name].fields
                          if f.message_type is not None and f.message_type.full_name in holding)
    return plan


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
