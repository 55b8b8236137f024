"""The task registry: one row per task, so a task is added in one place.

A task says what a model's output means and everything that follows from it: how its evaluation
data is read (``open_dataset``), which metrics accumulate over it and how shards of it merge
(``accumulator``), what parity against the float model means (agreement and logit differences over
the task's argmax positions), which figure the gate and reports quote (``metric``, its
``max_<metric>_drop`` / ``max_<metric>_regression`` thresholds), how two models compare image by image
(``paired``), and what pictures a report shows. A model family names its task; a manifest and a
results file record it, so everything downstream asks the task instead of branching on its name.

Rows are imported lazily (``module:Class``): ``report``, ``gate`` and ``compare`` stay torch-free,
and so does every task module.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
from pathlib import Path

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import DEFAULT_TASK
from edgedeploy.data.datasets import ImageFolder, ImageSet
from edgedeploy.tasks.base import Accumulator, DataFormat, EvalResult, Records, Task

__all__ = ["Task", "Accumulator", "DataFormat", "EvalResult", "Records", "TASKS", "register_task", "get_task",
           "list_tasks", "open_images", "DEFAULT_TASK", "task_rows"]

# name -> "module:Class" (imported on first use) or the Task itself (registered from code).
TASKS: dict[str, str | Task] = {
    "classification": "edgedeploy.tasks.classification:Classification",
    "segmentation": "edgedeploy.tasks.segmentation:Segmentation",
    "detection": "edgedeploy.tasks.detection:Detection",
}


def register_task(task: Task) -> Task:
    """Add a task row (a plugin's one call); its name and its metric must be new."""
    if task.name in TASKS:
        raise ConfigError(f"task {task.name!r} is already registered")
    taken = {get_task(name).metric for name in TASKS}
    if task.metric in taken:
        raise ConfigError(f"task {task.name}: metric {task.metric!r} belongs to another task (thresholds are named "
                          "after it)")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        row = TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
    return _task_of(row) if isinstance(row, str) else row


@functools.cache
def _task_of(entry: str) -> Task:
    """The task a ``module:Class`` row names, one instance per row (the registry itself is never changed)."""
    module, attr = entry.split(":")
    task: Task = getattr(importlib.import_module(module), attr)()
    return task


def list_tasks(pattern: str = "*") -> list[str]:
    return [name for name in TASKS if fnmatch.fnmatch(name, pattern)]


def task_rows() -> list[Task]:
    return [get_task(name) for name in TASKS]


def open_images(path: str | Path) -> ImageSet:
    """The images of any task's data set, labels dropped (parity and diagnose need only images): a
    folder in some task's layout is read by that task, any other folder as an image folder."""
    path = Path(path)
    task = max(task_rows(), key=lambda t: t.layout_match(path))
    if task.layout_match(path) > 1:
        return task.open_dataset(path, DataFormat()).unlabeled()
    return ImageFolder.open(path).unlabeled()
