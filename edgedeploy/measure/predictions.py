"""Predictions written as files while a model is evaluated (``eval --save-masks``): into a private
staging folder, moved into place only when the whole evaluation succeeded, so a failed or interrupted
run leaves no folder that looks complete."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import output_dir, staging_dir
from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.tasks import Task

__all__ = ["saved_predictions"]


@contextmanager
def saved_predictions(task: Task, out: Path | None, io: ModelIO | None = None, kind: str = "masks"
                      ) -> Iterator[Callable[..., Any] | None]:
    """The task's prediction writer into a staging folder beside ``out`` (None when ``out`` is None), bound to
    the model's ``io`` where it reads it (a detector's post-processing); on success the staged files replace
    ``out``'s. ``kind``: what the caller asked for (``eval --save-masks`` / ``--save-detections``), which the
    writer must write (its ``writes``)."""
    if out is None:
        yield None
        return
    out = Path(out)
    with staging_dir(out.parent) as stage:
        writer = task.prediction_writer(stage)
        if writer is None or getattr(writer, "writes", "masks") != kind:
            raise ConfigError(f"--save-{kind} applies to models whose predictions are {kind}, not to {task.name} "
                              "models")
        if io is not None and hasattr(writer, "bind"):
            writer = writer.bind(io)
        yield writer
        output_dir(out)
        for staged in sorted(stage.iterdir()):
            os.replace(staged, out / staged.name)
