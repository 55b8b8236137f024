"""A detector's post-processing as an export sets it: the NMS options and where it runs, written into the
model's detection head (the IO spec's ``extra["detection"]``) that the manifest records and eval, bench and
the graph's own NMS read. Other models refuse the options: they would be silently meaningless."""

from __future__ import annotations

from typing import Any

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.exporter.option_values import ExportOptions
from edgedeploy.tasks.detection.postprocess import DetectionHead

__all__ = ["NMS_OPTIONS", "detection_extra"]

# Export option -> NmsOptions field.
NMS_OPTIONS = {"nms_score_threshold": "score_threshold", "nms_iou_threshold": "iou_threshold",
               "max_detections": "max_detections", "nms_mode": "mode"}


def detection_extra(io: ModelIO, options: ExportOptions) -> dict[str, Any]:
    """``io.extra`` with the export's post-processing options applied (unchanged for a model without a
    detection head, which must not be given any)."""
    given = {field: options[name] for name, field in NMS_OPTIONS.items() if options[name] is not None}
    if "detection" not in io.extra:
        if given or options["postprocess"] is not None:
            flags = [f"--{name.replace('_', '-')}" for name in (*NMS_OPTIONS, "postprocess")
                     if options[name] is not None]
            raise ConfigError(f"{', '.join(flags)} apply to detection models; this is a {io.task} model")
        return io.extra
    # The artifact is converted and checked with its raw heads (host post-processing); --postprocess graph appends
    # the graph's own afterwards (edgedeploy.exporter.graph_postprocess).
    return {**io.extra, "detection": DetectionHead.of(io).with_nms(**given).to_dict()}
