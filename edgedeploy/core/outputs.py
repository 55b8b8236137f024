"""Operations on a model's answer for a batch (``Outputs``: one array, or several arrays by name), so code
that batches, slices or caches outputs works the same for a one-output classifier and a detector's heads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import Outputs, OutputSpec

__all__ = ["SCORES_PREFIX", "by_name", "concat_outputs", "load_outputs", "map_outputs", "output_arrays", "output_rows",
           "save_outputs", "take_rows"]

# How several outputs are stored beside other arrays in an .npz: "scores.<output name>".
SCORES_PREFIX = "scores."


def map_outputs(outputs: Outputs, fn: Callable[[np.ndarray], np.ndarray]) -> Outputs:
    """``fn`` applied to each array, the structure kept."""
    return {name: fn(array) for name, array in outputs.items()} if isinstance(outputs, dict) else fn(outputs)


def output_arrays(outputs: Outputs) -> dict[str, np.ndarray]:
    """The arrays by name (a one-output answer is named ``""``)."""
    return dict(outputs) if isinstance(outputs, dict) else {"": outputs}


def concat_outputs(parts: Sequence[Outputs]) -> Outputs:
    """Batches' outputs joined along the batch axis."""
    first = parts[0]
    if isinstance(first, dict):
        return {name: np.concatenate([part[name] for part in parts]) for name in first}  # type: ignore[index]
    return np.concatenate(parts)  # type: ignore[arg-type]


def take_rows(outputs: Outputs, start: int, stop: int) -> Outputs:
    """Rows ``start:stop`` (images) of every array."""
    return map_outputs(outputs, lambda array: array[start:stop])


def output_rows(outputs: Outputs) -> int:
    """How many images the outputs cover."""
    return len(next(iter(outputs.values()))) if isinstance(outputs, dict) else len(outputs)


def by_name(specs: Sequence[OutputSpec], names: Sequence[str], arrays: Sequence[np.ndarray], source: str
            ) -> dict[str, np.ndarray]:
    """A runtime's outputs keyed by the model's output names: by the tensor name each spec records (its own
    name unless a converter renamed it) where the runtime has those names, else by position (the graph's
    output order); a different count is an error."""
    if len(arrays) != len(specs):
        raise DataError(f"{source}: the model has {len(arrays)} outputs, its spec names {len(specs)}: "
                        f"{', '.join(spec.name for spec in specs)}")
    tensors = [spec.tensor or spec.name for spec in specs]
    if len(specs) == 1 or set(tensors) != set(names):
        return {spec.name: array for spec, array in zip(specs, arrays)}
    found = dict(zip(names, arrays))
    return {spec.name: found[tensor] for spec, tensor in zip(specs, tensors)}


def save_outputs(file: BinaryIO, outputs: Outputs) -> None:
    """One array as .npy (memory-mappable), several as an .npz of them by name."""
    if isinstance(outputs, dict):
        np.savez(file, **{SCORES_PREFIX + name: array for name, array in outputs.items()})
    else:
        np.save(file, outputs, allow_pickle=False)


def load_outputs(path: Path) -> Outputs:
    """What ``save_outputs`` wrote (one array memory-mapped)."""
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {name[len(SCORES_PREFIX):]: data[name] for name in data.files}
    return data
