"""``--postprocess graph``: a detector's artifact that decodes and suppresses its boxes itself, with the
runtime's own operator (TFLite's ``TFLite_Detection_PostProcess``, ONNX's ``NonMaxSuppression``), as Google's
detectors ship.

The artifact is converted and checked (parity, precision) with its raw heads first, as every route is; then the
target's ``graph_postprocess`` appends the post-processing, and the result is checked against the host
post-processing of the same artifact's raw heads on the parity images: the same detections (same class, IoU >=
0.5, the criterion agreement uses) for nearly every one, or the export fails; the share at IoU >= 0.9 is recorded
too. The quantized network stays quantized; the box arithmetic is the
operator's (TFLite's runs on the uint8 heads with uint8 anchors, ONNX's in float after the last DequantizeLinear).
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, ParityError
from edgedeploy.core.io_spec import ModelIO, OutputSpec
from edgedeploy.core.manifest import write_manifest
from edgedeploy.data.datasets import ImageSet
from edgedeploy.data.preprocess import preprocess
from edgedeploy.data.synthetic import synthetic_images
from edgedeploy.exporter.target import Target
from edgedeploy.runtimes.base import Runner
from edgedeploy.tasks.detection.postprocess import GRAPH_OUTPUTS, DetectionHead, count_matches

__all__ = ["GRAPH_CHECK_IMAGES", "MIN_GRAPH_AGREEMENT", "SAME_BOX_IOU", "TIGHT_BOX_IOU", "append_graph_postprocess",
           "check_graph_postprocess", "graph_io", "postprocess_in_graph"]

# The share of the host's detections the graph must reproduce (same class, IoU >= SAME_BOX_IOU), percent. A float
# graph reproduces all of them exactly; an int8 graph decodes against uint8 anchors from uint8 sigmoid scores, so
# NMS may keep a neighbouring anchor among near-equal boxes (measured: 88.8% at IoU >= 0.9 on Google's weights).
MIN_GRAPH_AGREEMENT = 90.0
SAME_BOX_IOU, TIGHT_BOX_IOU = 0.5, 0.9
# Parity images the graph is checked on (a detector's NMS is batch 1: one call per image).
GRAPH_CHECK_IMAGES = 16


def check_graph_postprocess(io: ModelIO, target: Target) -> None:
    """Before any conversion: ConfigError when ``target`` cannot run ``io``'s post-processing in its graph."""
    head = DetectionHead.of(io)
    if target.graph_postprocess is None:
        raise ConfigError(f"--postprocess graph: {target.name} has no detection post-processing operator here "
                          "(TFLite and ONNX Runtime targets do); use --postprocess host")
    if target.runtime == "litert" and head.nms.mode == "per-class":
        # LiteRT's regular-NMS kernel skips the class at index num_threads when run on several threads (its
        # worker loop pre-increments a shared counter that starts there): wrong detections, no error.
        raise ConfigError("--postprocess graph with --nms-mode per-class: LiteRT's TFLite_Detection_PostProcess "
                          "drops a class when it runs on more than one thread; use --nms-mode fast or --postprocess "
                          "host")


def graph_io(io: ModelIO) -> ModelIO:
    """``io`` of the artifact once its graph post-processes: TFLite's four outputs, float32."""
    head = replace(DetectionHead.of(io), postprocess="graph")
    boxes, classes, scores, count = GRAPH_OUTPUTS
    return replace(io, extra={**io.extra, "detection": head.to_dict()}, output=OutputSpec(boxes, 4, layout="tensor"),
                   more_outputs=(OutputSpec(classes, head.classes, layout="tensor"),
                                 OutputSpec(scores, head.classes, layout="tensor"),
                                 OutputSpec(count, 1, layout="tensor")))


def append_graph_postprocess(staged: Path, target: Target, raw: Runner, images: np.ndarray,
                             load: Any) -> dict[str, Any]:
    """Rewrite ``staged`` (checked with its raw heads, loaded as ``raw``) with its post-processing in the graph;
    ``load()`` loads the rewritten artifact (through its updated manifest). Returns the manifest's record of the
    check; ParityError when the graph's detections are not the host's."""
    head = DetectionHead.of(raw.io)
    host = head.detect(_one_by_one(raw, images))
    module, function = str(target.graph_postprocess).split(":")
    getattr(importlib.import_module(module), function)(staged, head)
    graph = DetectionHead.of(graph_io(raw.io)).detect(_one_by_one(load(), images))
    total = sum(len(h) for h in host)
    agreement, tight = (round(100.0 * sum(count_matches(h, g, iou) for h, g in zip(host, graph)) / total, 2) if total
                        else 100.0 for iou in (SAME_BOX_IOU, TIGHT_BOX_IOU))
    record = {"where": "graph", "operator": "TFLite_Detection_PostProcess" if target.runtime == "litert"
              else "NonMaxSuppression", "images": len(images), "host_detections": total,
              "agreement_with_host": agreement, "same_box_iou": SAME_BOX_IOU, "min_agreement": MIN_GRAPH_AGREEMENT,
              f"agreement_at_iou_{TIGHT_BOX_IOU}": tight}
    if agreement < MIN_GRAPH_AGREEMENT:
        raise ParityError(f"{staged.name}: the graph's post-processing finds {agreement:.1f}% of the host's "
                          f"detections on {len(images)} images (< {MIN_GRAPH_AGREEMENT:.0f}%): the appended "
                          "operator does not compute what the host does")
    return record


def postprocess_in_graph(staged: Path, target: Target, raw: Runner, manifest: dict[str, Any],
                         parity_data: ImageSet | None, threads: int) -> dict[str, Any]:
    """The export's step: the checked artifact (loaded as ``raw``) with its post-processing appended, the
    staged manifest rewritten with the graph's outputs (the check loads the artifact as users will)."""
    from edgedeploy.runtimes import LoadOptions, load_runner

    io = graph_io(raw.io)
    manifest.pop("more_outputs", None)
    manifest.update(io.outputs_to_dict(), io_extra=io.extra)
    spec = raw.io.preprocessing
    images = (np.stack([preprocess(item.image, spec) for _, item in zip(range(GRAPH_CHECK_IMAGES), parity_data)])
              if parity_data is not None else synthetic_images(spec, GRAPH_CHECK_IMAGES))

    def load() -> Runner:
        write_manifest(staged, manifest)
        return load_runner(str(staged), LoadOptions(threads=threads, verify=False), runtime=target.runtime)

    return append_graph_postprocess(staged, target, raw, images, load)


def _one_by_one(runner: Runner, images: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of a batch-1 graph over ``images``, concatenated (the appended part reads one image)."""
    parts = [runner.predict(images[i:i + 1]) for i in range(len(images))]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
