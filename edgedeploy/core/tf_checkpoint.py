"""TensorFlow checkpoints named as TF names them: by a prefix (``model.ckpt``) whose files are
``model.ckpt.index`` and ``model.ckpt.data-00000-of-00001``; ``--weights`` takes the prefix or the index."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["TF_CHECKPOINT_SUFFIXES", "tf_checkpoint_files"]

# What a checkpoint's prefix or index file ends in, as the torch runtime recognizes them.
TF_CHECKPOINT_SUFFIXES = (".ckpt", ".index")


def tf_checkpoint_files(path: str | Path) -> list[Path]:
    """The files of the TF checkpoint ``path`` names (its prefix, its ``.index`` or a data shard): the index,
    then its data shards; [] when ``path`` is not one."""
    path = Path(path)
    prefix = Path(re.sub(r"\.(index|data-\d+-of-\d+)$", "", str(path)))
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file() or (path.exists() and path != index and not path.name.startswith(prefix.name + ".data-")):
        return []
    return [index, *sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))]
