"""The choices a detector's post-processing offers, torch- and scipy-free: the CLI builds its options from them
at start-up (edgedeploy.tasks.detection.postprocess implements them)."""

from __future__ import annotations

__all__ = ["NMS_MODES", "POSTPROCESS"]

# fast: every anchor's best class, one class-agnostic NMS (TFLite's default); per-class: NMS in each class.
NMS_MODES = ("fast", "per-class")
# Where boxes are decoded and suppressed: on the host from the raw heads, or in the graph itself.
POSTPROCESS = ("host", "graph")
