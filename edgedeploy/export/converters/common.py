"""What the converters share: the NCHW batches the ONNX graph takes, and one message shape for
a failed third-party conversion call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.core.errors import ConversionError
from edgedeploy.core.logcapture import log_tail

__all__ = ["nchw_batch", "squeezed", "conversion_failure"]


def nchw_batch(image_hwc: np.ndarray) -> np.ndarray:
    """One preprocessed HWC image as the NCHW batch of one that the ONNX graph takes."""
    return np.ascontiguousarray(image_hwc.transpose(2, 0, 1)[None])


def squeezed(text: str, limit: int) -> str:
    """``text`` on one line, cut at ``limit`` characters: tools' messages run to pages of frames."""
    return " ".join(text.split())[:limit]


def conversion_failure(tool: str, exc: BaseException, log_path: Path, log_lines: int = 3) -> ConversionError:
    """``<tool> failed (<exception>: <message>): <last lines of the log>``.

    Raise it ``from exc``: the message stays one line, and --debug shows the tool's own traceback.
    """
    return ConversionError(f"{tool} failed ({exc.__class__.__name__}: {squeezed(str(exc), 160)}): "
                           f"{log_tail(log_path, log_lines)}")
