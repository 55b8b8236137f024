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
from edgedeploy.tasks import Task

__all__ = ["saved_predictions"]


@contextmanager
def saved_predictions(task: Task, out: Path | None) -> Iterator[Callable[..., Any] | None]:
    """The task's prediction writer into a staging folder beside ``out`` (None when ``out`` is None);
    on success the staged files replace ``out``'s."""
    if out is None:
        yield None
        return
    out = Path(out)
    with staging_dir(out.parent) as stage:
        writer = task.prediction_writer(stage)
        if writer is None:
            raise ConfigError(f"--save-masks applies to models whose predictions are masks, not to {task.name} models")
        yield writer
        output_dir(out)
        for staged in sorted(stage.iterdir()):
            os.replace(staged, out / staged.name)
