"""Append a detector's post-processing to its ONNX graph: box decoding, sigmoid, ``NonMaxSuppression``, and the
best ``max_detections`` over all classes, with the four outputs TFLite's ``TFLite_Detection_PostProcess`` has.

Shared by the ONNX routes (ONNX Runtime, OpenVINO: both run ONNX's ``NonMaxSuppression`` natively). The input
graph ends in the raw heads, box encodings (N, A, 4) (ty, tx, th, tw) and class logits (N, A, 1 + C)
(background first); they are told apart by name (``box_encodings`` / ``class_logits``), else by the last axis.

What is appended (default domain; every op as opsets 11 to 20 define it, the graph's own opset kept; checked with
``onnx.checker`` full check):

- decoding, as :func:`edgedeploy.tasks.detection.postprocess.decode_boxes` does: the encodings divided by the
  box coder's (y, x, h, w) scales, centres ``t * anchor_size + anchor_centre``, sizes
  ``exp(t) * anchor_size``, corners (ymin, xmin, ymax, xmax); the anchors are initializers
  (``postprocess/anchor_centres``, ``postprocess/anchor_sizes``, float32);
- NMS mode "fast" (TFLite's default): each anchor's best real class (``ArgMax`` over the logits of classes
  1..C, the same class as over the sigmoid scores, without its float32 ties), its score the sigmoid of that
  logit, then one class-agnostic ``NonMaxSuppression`` (one "class"); mode "per-class": the sigmoid of every
  real class, ``NonMaxSuppression`` over all classes as ONNX defines it (each class on its own);
- ``center_point_box`` 0 on (y1, x1, y2, x2) boxes, ``max_output_boxes_per_class`` = ``max_detections``, the IoU
  threshold, and the score threshold one float32 step below the head's: ONNX Runtime keeps scores strictly
  above ``score_threshold``, TFLite and the host post-processing those at or above it;
- the selected boxes, classes and scores gathered, ``TopK`` (ties: the lower index first, i.e. the lower class
  first, as the host's stable sort) keeps the best ``max_detections``, padded with zero rows to K.

Outputs, all float32, as TFLite's op: ``detection_boxes`` (1, K, 4), ``detection_classes`` (1, K) (class indices
with the background removed: the logits' slot - 1, as the NMS runs on slots 1..C), ``detection_scores`` (1, K), ``num_detections`` (1,),
K = ``max_detections``. Batch 1 only: the appended part reads the first image of a batch of one (a dynamic-batch
graph runs with batch 1; a larger batch fails in the first ``Reshape``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedeploy.core.errors import ConversionError
from edgedeploy.tasks.detection.postprocess import BOX_ENCODINGS, CLASS_LOGITS, GRAPH_OUTPUTS, DetectionHead

__all__ = ["MIN_OPSET", "PREFIX", "append_onnx_postprocess", "append_to_onnx_file"]

# NonMaxSuppression is opset 10; TopK's ``sorted``/``largest`` and its tie rule (lower index first) are opset 11's.
MIN_OPSET = 11
# Every node, value and initializer appended is named under this prefix.
PREFIX = "postprocess/"


def append_onnx_postprocess(model: onnx.ModelProto, head: DetectionHead) -> onnx.ModelProto:
    """A copy of ``model`` (its two outputs the raw heads) whose outputs are :data:`GRAPH_OUTPUTS`, computed by
    ``head``'s decoding and NMS. ConversionError when the graph is not such a detector."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise ConversionError(f"the graph is opset {opset}; the post-processing needs opset {MIN_OPSET} or later")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    boxes_name, logits_name, num_anchors, num_classes = _heads(graph)
    anchors = head.anchor_boxes.astype(np.float32)
    if num_anchors != len(anchors):
        raise ConversionError(f"the heads score {num_anchors} anchors, the detection head's anchor generator makes "
                              f"{len(anchors)}")
    taken = {v.name for v in (*graph.input, *graph.output, *graph.value_info)} | \
            {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output} | set(GRAPH_OUTPUTS)
    clash = sorted(n for n in taken if n.startswith(PREFIX)) + sorted(set(GRAPH_OUTPUTS) & (taken - set(GRAPH_OUTPUTS)))
    if clash:
        raise ConversionError(f"the graph already has values named {', '.join(clash[:3])}: post-processed already?")

    g = _Builder(graph)
    k, a = head.nms.max_detections, num_anchors
    # Decoding: (1, A, 4) encodings -> (A, 4) (ymin, xmin, ymax, xmax).
    scales = np.asarray(head.box_scales, np.float32).reshape(1, 1, 4)
    encodings = g.node("Div", [boxes_name, g.const("box_scales", scales)])
    t_centre = g.node("Slice", [encodings, g.ints("zero", [0]), g.ints("two", [2]), g.ints("axis2", [2])])
    t_size = g.node("Slice", [encodings, g.ints("two", [2]), g.ints("four", [4]), g.ints("axis2", [2])])
    anchor_centres = g.const("anchor_centres", anchors[None, :, 0:2].copy())
    anchor_sizes = g.const("anchor_sizes", anchors[None, :, 2:4].copy())
    centres = g.node("Add", [g.node("Mul", [t_centre, anchor_sizes]), anchor_centres])
    half = g.node("Mul", [g.node("Mul", [g.node("Exp", [t_size]), anchor_sizes]),
                          g.const("half", np.asarray(0.5, np.float32))])
    corners = g.node("Concat", [g.node("Sub", [centres, half]), g.node("Add", [centres, half])], axis=2)
    boxes = g.node("Reshape", [corners, g.ints("boxes_shape", [a, 4])])  # (A, 4)

    # Scores, for NMS as (1, classes, A).
    real = g.node("Slice", [logits_name, g.ints("one", [1]), g.ints("end", [num_classes + 1]), g.ints("axis2", [2])])
    if head.nms.mode == "fast":
        best_class = g.node("ArgMax", [real], axis=2, keepdims=0)  # (1, A), the first of equal logits
        best_logit = g.node("GatherElements", [real, g.node("Reshape", [best_class, g.ints("one_a_one", [1, a, 1])])],
                            axis=2)  # (1, A, 1)
        nms_scores = g.node("Reshape", [g.node("Sigmoid", [best_logit]), g.ints("one_one_a", [1, 1, a])])
    else:
        nms_scores = g.node("Transpose", [g.node("Sigmoid", [real])], perm=[0, 2, 1])  # (1, C, A)
    threshold = np.nextafter(np.float32(head.nms.score_threshold), np.float32(-np.inf))
    selected = g.node("NonMaxSuppression", [
        g.node("Reshape", [boxes, g.ints("one_a_four", [1, a, 4])]), nms_scores, g.ints("max_per_class", [k]),
        g.const("iou_threshold", np.asarray([head.nms.iou_threshold], np.float32)),
        g.const("score_threshold", np.asarray([threshold], np.float32))], center_point_box=0)  # (S, 3)
    scores = g.node("GatherND", [nms_scores, selected])  # (S,)
    box_index = g.node("Reshape", [g.node("Slice", [selected, g.ints("two", [2]), g.ints("three", [3]), g.ints("axis1", [1])]),
                                   g.ints("flat", [-1])])
    if head.nms.mode == "fast":
        classes = g.node("Gather", [g.node("Reshape", [best_class, g.ints("flat", [-1])]), box_index])
    else:
        classes = g.node("Reshape", [g.node("Slice", [selected, g.ints("one", [1]), g.ints("two", [2]), g.ints("axis1", [1])]),
                                     g.ints("flat", [-1])])

    # The best K over all classes (TopK: ties lower index first), padded with zero rows to K.
    # (1,) int64; ReduceMin (no axes) rather than Min, which takes integers only from opset 12 on.
    count = g.node("ReduceMin", [g.node("Concat", [g.node("Shape", [scores]), g.ints("k", [k])], axis=0)], keepdims=1)
    top_scores, top = g.node("TopK", [scores, count], outputs=2, axis=0, largest=1, sorted=1)
    top_boxes = g.node("Gather", [boxes, g.node("Gather", [box_index, top])], axis=0)  # (n, 4)
    top_classes = g.node("Cast", [g.node("Gather", [classes, top])], to=TensorProto.FLOAT)
    pad_rows = g.const("pad_rows", np.zeros((k, 4), np.float32))
    pad = g.const("pad", np.zeros(k, np.float32))
    first_k = (g.ints("zero", [0]), g.ints("k", [k]), g.ints("axis0", [0]))
    g.node("Reshape", [g.node("Slice", [g.node("Concat", [top_boxes, pad_rows], axis=0), *first_k]),
                      g.ints("out_boxes_shape", [1, k, 4])], name=GRAPH_OUTPUTS[0])
    g.node("Reshape", [g.node("Slice", [g.node("Concat", [top_classes, pad], axis=0), *first_k]),
                      g.ints("out_shape", [1, k])], name=GRAPH_OUTPUTS[1])
    g.node("Reshape", [g.node("Slice", [g.node("Concat", [top_scores, pad], axis=0), *first_k]),
                      g.ints("out_shape", [1, k])], name=GRAPH_OUTPUTS[2])
    g.node("Cast", [count], to=TensorProto.FLOAT, name=GRAPH_OUTPUTS[3])

    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in
                         zip(GRAPH_OUTPUTS, ((1, k, 4), (1, k), (1, k), (1,)))])
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"the post-processed graph is not valid ONNX ({' '.join(str(exc).split())[:200]})") \
            from None
    return out


def _heads(graph: onnx.GraphProto) -> tuple[str, str, int, int]:
    """(box encodings' name, class logits' name, anchors, real classes) from the graph's two outputs."""
    outputs = list(graph.output)
    if len(outputs) != 2:
        raise ConversionError(f"the graph has {len(outputs)} outputs; a detector's raw heads are 2 ({BOX_ENCODINGS} "
                              f"(N, A, 4), {CLASS_LOGITS} (N, A, 1 + C))")
    shapes = []
    for value in outputs:
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 3 or not dims[1].HasField("dim_value") or not dims[2].HasField("dim_value"):
            raise ConversionError(f"output {value.name} is not (N, A, K) with static A and K")
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise ConversionError(f"output {value.name} is not float32")
        shapes.append((dims[1].dim_value, dims[2].dim_value))
    names = [v.name for v in outputs]
    if set(names) == {BOX_ENCODINGS, CLASS_LOGITS}:
        box = names.index(BOX_ENCODINGS)
    elif [s[1] == 4 for s in shapes] == [False, True]:
        box = 1
    elif shapes[0][1] == 4:  # also 3 real classes (1 + 3 = 4 slots): the network returns the boxes first
        box = 0
    else:
        raise ConversionError(f"no output has a last axis of 4 (box encodings): {names} are {shapes}")
    (anchors, four), (anchors_too, slots) = shapes[box], shapes[1 - box]
    if four != 4:
        raise ConversionError(f"{names[box]} has {four} values per anchor, not 4 (ty, tx, th, tw)")
    if anchors != anchors_too:
        raise ConversionError(f"the box encodings cover {anchors} anchors, the class logits {anchors_too}")
    if slots < 2:
        raise ConversionError("the class logits have no real class (1 + C slots, background first)")
    return names[box], names[1 - box], anchors, slots - 1


class _Builder:
    """Appends nodes and initializers to a graph, each named under :data:`PREFIX`."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph, self.count, self.constants = graph, 0, set()

    def const(self, name: str, value: np.ndarray) -> str:
        full = PREFIX + name
        if full not in self.constants:
            self.graph.initializer.append(numpy_helper.from_array(value, full))
            self.constants.add(full)
        return full

    def ints(self, name: str, values: list[int]) -> str:
        return self.const(name, np.asarray(values, np.int64))

    def node(self, op: str, inputs: list[str], outputs: int = 1, name: str | None = None, **attributes) -> str | list:
        self.count += 1
        base = f"{PREFIX}{op}_{self.count}"
        names = [name] if name is not None else [base if outputs == 1 else f"{base}:{i}" for i in range(outputs)]
        self.graph.node.append(helper.make_node(op, inputs, names, name=base, **attributes))
        return names[0] if outputs == 1 else names


def append_to_onnx_file(path: Path, head: DetectionHead) -> None:
    """The ONNX file at ``path`` rewritten with ``head``'s post-processing appended (a Target's graph_postprocess)."""
    onnx.save(append_onnx_postprocess(onnx.load(str(path)), head), str(path))
