"""Run loud third-party code (TensorFlow, onnx2tf) with its output sent to a log file.

Redirects the process-level file descriptors 1 and 2, so C++ logging from
TensorFlow and plain print() calls both land in the log, and stdout stays clean
for --json.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["captured_output", "log_tail", "quiet_tensorflow_env"]

_GLOG_CHATTER = re.compile(r"^[IW]\d{4} ")
# tqdm's progress bars ("Running Calibration::  38%|###  | 235/624 [00:00<00:00, 759.33it/s]") are progress, not
# the failure.
_PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+\s*\[")


def quiet_tensorflow_env() -> None:
    # Must be set before TensorFlow is imported; the log file still gets errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@contextmanager
def captured_output(log_path: Path) -> Iterator[None]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log, log_path.open("a", buffering=1, errors="replace") as text_log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        # The Python-level streams too: under a harness (click's CliRunner, pytest, Jupyter)
        # sys.stdout is not file descriptor 1, and progress bars (NNCF's rich) write to it.
        with contextlib.redirect_stdout(text_log), contextlib.redirect_stderr(text_log):
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])


def log_tail(log_path: Path, lines: int = 3) -> str:
    """The last meaningful lines of a log, joined into one line for an error message."""
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    # glog/absl info and warning lines ("W1202 14:00:15.350 ...") are chatter, not the failure.
    kept = [line.strip() for line in text
            if line.strip() and not _GLOG_CHATTER.match(line) and not _PROGRESS_BAR.search(line)]
    return " | ".join(kept[-lines:])[-400:]
