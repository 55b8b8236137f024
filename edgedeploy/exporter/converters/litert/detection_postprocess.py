"""End an exported detector's .tflite as Google's detectors end: LOGISTIC on the class logits, then TFLite's own
``TFLite_Detection_PostProcess`` custom op (box decoding against a constant anchors tensor + NMS), whose four
outputs (:data:`GRAPH_OUTPUTS`) become the graph's and its signature's outputs.

The input is a .tflite whose (only) subgraph ends in the two raw heads, box encodings (1, A, 4) and class
logits (1, A, 1 + C), in any order: told apart by name (``box_encodings`` / ``class_logits``, signature or
tensor) where the file carries those, else by the last axis (4), else (3 classes) boxes first. The rewrite works on the flatbuffer's object API (``schema.ModelT``) and repacks it.

Quantized heads ("quantize the network, not the box arithmetic"): nothing is dequantized in the graph. The
LOGISTIC runs on the integer logits with the output quantization TFLite requires (scale 1/256, zero point -128
for int8, 0 for uint8) and the op reads quantized box encodings and scores directly, as it does in Google's
uint8 detector. LiteRT's kernel (``tensorflow/lite/kernels/detection_postprocess.cc``) reads quantized inputs as
uint8 only (int8 ones make ``Invoke`` fail): int8 heads are requantized to uint8 first (``QUANTIZE``, same
scale, zero point + 128: exact). With uint8 box encodings the kernel reads the anchors through the same uint8
path with no type check (float32 anchors there give all-zero boxes), so the anchors are then uint8 as in
Google's graph (scale max / 255, zero point 0: SSD-MobileNetV1's are the very bytes of Google's file; half a
step is 0.0032); with float box encodings they are float32 (exact).

Options: ``max_detections``, ``max_classes_per_detection`` 1, ``detections_per_class`` = ``max_detections``
(the host's per-class NMS keeps up to ``max_detections`` per class: the same answer), the score and IoU
thresholds, ``num_classes`` = C, the box coder's (y, x, h, w) scales, ``use_regular_nms`` for NMS mode
"per-class". Outputs, all float32: ``detection_boxes`` (1, K, 4) (ymin, xmin, ymax, xmax) normalized,
``detection_classes`` (1, K) class indices with the background removed, ``detection_scores`` (1, K),
``num_detections`` (1,), K = ``max_detections``; rows past ``num_detections`` are zeros.

Execution (ai-edge-litert 2.3): XNNPACK takes the network and the LOGISTIC (float and int8); the QUANTIZEs and
the custom op run on LiteRT's builtin kernels, which every LiteRT build registers (no delegate takes the op).
LiteRT's per-class (regular) NMS is wrong with more than one thread: its worker loop never runs the class at
index ``num_threads`` (with 2 threads, class index 2 is dropped); "fast" NMS and one thread are right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConversionError, DependencyError
from edgedeploy.tasks.detection.postprocess import BOX_ENCODINGS, CLASS_LOGITS, GRAPH_OUTPUTS, DetectionHead

__all__ = [
    "POSTPROCESS_OP",
    "SCORE_QUANTIZATION",
    "append_tflite_postprocess",
    "append_to_tflite_file",
    "postprocess_options",
    "quantize_anchors",
]

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
# LOGISTIC's output quantization TFLite requires, by tensor type name: (scale, zero point).
SCORE_QUANTIZATION = {"int8": (1.0 / 256.0, -128), "uint8": (1.0 / 256.0, 0)}
# Byte alignment of constant buffers, as TFLite's converter writes them.
_ALIGNMENT = 16


def postprocess_options(head: DetectionHead, num_classes: int) -> dict[str, Any]:
    """The op's custom options (its flexbuffer map) for ``head`` on ``num_classes`` real classes."""
    y, x, h, w = (float(s) for s in head.box_scales)
    return {"max_detections": head.nms.max_detections, "max_classes_per_detection": 1,
            "detections_per_class": head.nms.max_detections, "nms_score_threshold": float(head.nms.score_threshold),
            "nms_iou_threshold": float(head.nms.iou_threshold), "num_classes": int(num_classes),
            "y_scale": y, "x_scale": x, "h_scale": h, "w_scale": w,
            "use_regular_nms": head.nms.mode == "per-class"}


def quantize_anchors(anchors: np.ndarray) -> tuple[np.ndarray, float]:
    """(A, 4) float anchors as the uint8 tensor the op reads beside uint8 box encodings, and its scale (zero point
    0: anchors are non-negative), as Google's graph holds them: scale max / 255, round to nearest."""
    top = float(np.max(anchors)) if anchors.size else 0.0
    if not np.isfinite(top) or float(np.min(anchors)) < 0:
        raise ConversionError("anchors must be finite and non-negative (ycenter, xcenter, h, w) to quantize")
    scale = float(np.float32(top / 255.0)) if top > 0 else 1.0
    return np.clip(np.round(anchors / np.float32(scale)), 0, 255).astype(np.uint8), scale


def append_tflite_postprocess(model_bytes: bytes, head: DetectionHead) -> bytes:
    """``model_bytes`` (a .tflite ending in the raw heads) ending in LOGISTIC + ``TFLite_Detection_PostProcess``
    with ``head``'s anchors and options; outputs :data:`GRAPH_OUTPUTS` (graph and signature). ConversionError
    when the file is not such a detector."""
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    except Exception as exc:  # flatbuffers raises anything on a damaged file
        raise ConversionError(f"not a readable .tflite ({exc.__class__.__name__})") from exc
    index = model.signatureDefs[0].subgraphIndex if model.signatureDefs else 0
    if not model.subgraphs or index >= len(model.subgraphs):
        raise ConversionError("the .tflite has no subgraph to append the post-processing to")
    graph = model.subgraphs[index]
    boxes, logits = _heads(schema, model, graph)
    anchors = head.anchor_boxes.astype(np.float32)
    box_tensor, logit_tensor = graph.tensors[boxes], graph.tensors[logits]
    num_anchors, num_classes = int(box_tensor.shape[1]), int(logit_tensor.shape[2]) - 1
    if num_anchors != len(anchors) or int(logit_tensor.shape[1]) != num_anchors:
        raise ConversionError(f"the heads score {num_anchors} anchors, the detection head's anchor generator makes "
                              f"{len(anchors)}")
    if num_classes < 1:
        raise ConversionError("the class logits have no real class (1 + C slots, background first)")
    types = schema.TensorType
    quantized = {types.INT8: "int8", types.UINT8: "uint8"}
    for tensor, what in ((box_tensor, BOX_ENCODINGS), (logit_tensor, CLASS_LOGITS)):
        if tensor.type != types.FLOAT32 and tensor.type not in quantized:
            raise ConversionError(f"{what} is {_type_name(schema, tensor.type)}: {POSTPROCESS_OP} takes float32 or "
                                  "8-bit quantized heads")
        if tensor.type in quantized and _per_tensor(tensor) is None:
            raise ConversionError(f"{what} is quantized without one scale and zero point per tensor")
    edit = _Editor(schema, model, graph)

    # Scores: LOGISTIC on the logits, in their own type; then uint8 for the kernel.
    if logit_tensor.type == types.FLOAT32:
        scores = edit.tensor("scores", logit_tensor.shape, types.FLOAT32)
    else:
        scale, zero_point = SCORE_QUANTIZATION[quantized[logit_tensor.type]]
        scores = edit.tensor("scores", logit_tensor.shape, logit_tensor.type, (scale, zero_point))
    edit.op(schema.BuiltinOperator.LOGISTIC, 1 if logit_tensor.type == types.FLOAT32 else 2, [logits], [scores])
    scores = edit.to_uint8(scores, "scores_uint8")

    # Box encodings and anchors: float32 both, or uint8 both (the kernel reads the anchors as the boxes' type).
    boxes = edit.to_uint8(boxes, "box_encodings_uint8")
    if edit.graph.tensors[boxes].type == types.FLOAT32:
        anchor_tensor = edit.constant("anchors", anchors, types.FLOAT32)
    else:
        quantized_anchors, scale = quantize_anchors(anchors)
        anchor_tensor = edit.constant("anchors", quantized_anchors, types.UINT8, (scale, 0))

    k = head.nms.max_detections
    outputs = [edit.tensor(name, shape, types.FLOAT32) for name, shape in
               zip(GRAPH_OUTPUTS, ((1, k, 4), (1, k), (1, k), (1,)))]
    edit.custom_op(POSTPROCESS_OP, [boxes, scores, anchor_tensor], outputs,
                   _flexbuffer(postprocess_options(head, num_classes)))
    graph.outputs = np.asarray(outputs, np.int32)
    _set_signature(schema, model, index, graph, outputs)
    return _pack(schema, model)


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise DependencyError("appending TFLite's post-processing needs ai-edge-litert: "
                              "pip install 'edgedeploy[tflite]'") from None
    return schema


def _type_name(schema: Any, dtype: int) -> str:
    return next((k for k, v in vars(schema.TensorType).items() if v == dtype), str(dtype)).lower()


def _per_tensor(tensor: Any) -> tuple[float, int] | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0


def _heads(schema: Any, model: Any, graph: Any) -> tuple[int, int]:
    """(box encodings, class logits) tensor indices among the graph's two outputs."""
    outputs = [int(i) for i in (graph.outputs if graph.outputs is not None else [])]
    if len(outputs) != 2:
        raise ConversionError(f"the .tflite has {len(outputs)} outputs; a detector's raw heads are 2 "
                              f"({BOX_ENCODINGS} (1, A, 4), {CLASS_LOGITS} (1, A, 1 + C))")
    shapes = [tuple(int(d) for d in graph.tensors[i].shape) for i in outputs]
    if any(len(s) != 3 or s[0] != 1 for s in shapes):
        raise ConversionError(f"the outputs have shapes {[list(s) for s in shapes]}; the raw heads are "
                              "(1, A, 4) and (1, A, 1 + C) (batch 1)")
    names = _output_names(model, graph, outputs)
    if {names[0], names[1]} == {BOX_ENCODINGS, CLASS_LOGITS}:
        return (outputs[0], outputs[1]) if names[0] == BOX_ENCODINGS else (outputs[1], outputs[0])
    fours = [s[2] == 4 for s in shapes]
    if fours == [True, False]:
        return outputs[0], outputs[1]
    if fours == [False, True]:
        return outputs[1], outputs[0]
    if all(fours):  # three real classes: 1 + 3 = 4 slots too; the network returns the boxes first
        return outputs[0], outputs[1]
    raise ConversionError(f"no output has a last axis of 4 (box encodings): shapes {[list(s) for s in shapes]}")


def _output_names(model: Any, graph: Any, outputs: list[int]) -> list[str]:
    """Each output's signature name where the file has one, else its tensor name."""
    by_index = {int(t.tensorIndex): t.name.decode() for s in (model.signatureDefs or []) for t in (s.outputs or [])}
    return [by_index.get(i, graph.tensors[i].name.decode()) for i in outputs]


def _set_signature(schema: Any, model: Any, index: int, graph: Any, outputs: list[int]) -> None:
    """The signature's outputs become GRAPH_OUTPUTS (a signature "serving_default" is made where there is none)."""
    entries = []
    for name, tensor in zip(GRAPH_OUTPUTS, outputs):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name.encode(), tensor
        entries.append(entry)
    signatures = [s for s in (model.signatureDefs or []) if s.subgraphIndex == index]
    if not signatures:
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = b"serving_default", index
        signature.inputs = []
        for tensor in graph.inputs:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = graph.tensors[tensor].name, int(tensor)
            signature.inputs.append(entry)
        model.signatureDefs = [*(model.signatureDefs or []), signature]
        signatures = [signature]
    for signature in signatures:
        signature.outputs = list(entries)


def _flexbuffer(options: dict[str, Any]) -> np.ndarray:
    from flatbuffers import flexbuffers

    builder = flexbuffers.Builder()
    with builder.Map():
        for key in sorted(options):
            value = options[key]
            if isinstance(value, bool):
                builder.Bool(key, value)
            elif isinstance(value, int):
                builder.Int(key, value)
            else:
                builder.Float(key, value)
    return np.frombuffer(bytes(builder.Finish()), np.uint8)


class _Editor:
    """Adds tensors, constants, operator codes and operators to one subgraph of a ModelT."""

    def __init__(self, schema: Any, model: Any, graph: Any):
        self.schema, self.model, self.graph = schema, model, graph
        self.names = {t.name.decode() for t in graph.tensors}
        if model.buffers is None or not model.buffers or _size(model.buffers[0]):
            raise ConversionError("the .tflite's buffer 0 is not the empty buffer TFLite files start with")

    def tensor(self, name: str, shape: Any, dtype: int, quantization: tuple[float, int] | None = None,
               buffer: int = 0) -> int:
        tensor = self.schema.TensorT()
        unique, n = name, 1
        while unique in self.names:
            unique, n = f"{name}_{n}", n + 1
        self.names.add(unique)
        tensor.name, tensor.type, tensor.buffer = unique.encode(), dtype, buffer
        tensor.shape, tensor.hasRank = np.asarray([int(d) for d in shape], np.int32), True
        if quantization is not None:
            q = self.schema.QuantizationParametersT()
            q.scale, q.zeroPoint = np.asarray([quantization[0]], np.float32), np.asarray([quantization[1]], np.int64)
            tensor.quantization = q
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def constant(self, name: str, values: np.ndarray, dtype: int, quantization: tuple[float, int] | None = None) -> int:
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return self.tensor(name, values.shape, dtype, quantization, len(self.model.buffers) - 1)

    def opcode(self, builtin: int, version: int, custom: str | None = None) -> int:
        for i, code in enumerate(self.model.operatorCodes or []):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version and \
                    (code.customCode.decode() if code.customCode else None) == custom:
                return i
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.version = builtin, version
        code.deprecatedBuiltinCode = min(builtin, self.schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        code.customCode = custom.encode() if custom is not None else None
        self.model.operatorCodes = [*(self.model.operatorCodes or []), code]
        return len(self.model.operatorCodes) - 1

    def op(self, builtin: int, version: int, inputs: list[int], outputs: list[int]) -> None:
        op = self.schema.OperatorT()
        op.opcodeIndex = self.opcode(builtin, version)
        op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        self.graph.operators.append(op)

    def custom_op(self, name: str, inputs: list[int], outputs: list[int], options: np.ndarray) -> None:
        op = self.schema.OperatorT()
        op.opcodeIndex = self.opcode(self.schema.BuiltinOperator.CUSTOM, 1, name)
        op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        op.customOptions, op.customOptionsFormat = options, self.schema.CustomOptionsFormat.FLEXBUFFERS
        self.graph.operators.append(op)

    def to_uint8(self, index: int, name: str) -> int:
        """An int8 tensor requantized to uint8 (same scale, zero point + 128: exact); others as they are."""
        tensor = self.graph.tensors[index]
        if tensor.type != self.schema.TensorType.INT8:
            return index
        scale, zero_point = _per_tensor(tensor)  # type: ignore[misc]
        out = self.tensor(name, tensor.shape, self.schema.TensorType.UINT8, (scale, zero_point + 128))
        self.op(self.schema.BuiltinOperator.QUANTIZE, 2, [index], [out])
        return out


def _size(buffer: Any) -> int:
    return 0 if buffer.data is None else len(buffer.data)


class _AlignedBuffer:
    """A BufferT whose data is packed on a 16-byte boundary, as TFLite's converter packs constants."""

    def __init__(self, buffer: Any):
        self.buffer = buffer

    def Pack(self, builder: Any) -> int:  # the flatbuffers object API's name
        schema, buffer = _schema(), self.buffer
        data = None
        if buffer.data is not None and len(buffer.data):
            payload = np.asarray(buffer.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), _ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, buffer.offset)
        schema.BufferAddSize(builder, buffer.size)
        return schema.BufferEnd(builder)


def _pack(schema: Any, model: Any) -> bytes:
    import flatbuffers

    if any(b.offset for b in model.buffers):
        raise ConversionError("the .tflite keeps its buffers outside the flatbuffer (a >2 GB model): not supported")
    model.buffers = [_AlignedBuffer(b) for b in model.buffers]
    size = sum(_size(b.buffer) for b in model.buffers)
    builder = flatbuffers.Builder(size + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def append_to_tflite_file(path: Path, head: DetectionHead) -> None:
    """The .tflite at ``path`` rewritten with ``head``'s post-processing appended (a Target's graph_postprocess)."""
    path.write_bytes(append_tflite_postprocess(path.read_bytes(), head))
