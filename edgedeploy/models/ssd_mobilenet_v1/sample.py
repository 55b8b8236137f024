"""Google's quantized SSD-MobileNetV1 (.tflite) read into the family's state_dict: the ``sample`` weights, plus
the anchors and post-processing options the graph's ``TFLite_Detection_PostProcess`` op carries.

The .tflite's weighted ops, in graph order, are the network's convolutions in forward order (conv0, each block's
depthwise / pointwise, each extra layer's 1x1 / 3x3, then each map's box-encoding and class predictor); each is
checked against the tensor name Google's graph gives that layer before anything is copied. Weights are uint8
with one scale and zero point per tensor, biases int32 with their own scale: both are dequantized as
(q - zero_point) * scale, so the float weights sit exactly on the quantized model's grid. TFLite keeps CONV_2D
filters as OHWI and DEPTHWISE_CONV_2D filters as 1HWC, with batch norm folded into the bias: the bias goes into
the BatchNorm after the convolution, whose statistics are set to the identity (weight 1, mean 0, variance
1 - eps), as in the classification and segmentation sample weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgedeploy.core.errors import DependencyError, WeightsError
from edgedeploy.models.ssd_mobilenet_v1.config import SSDMobileNetV1Config
from edgedeploy.models.ssd_mobilenet_v1.network import ConvBNReLU6, SSDMobileNetV1
from edgedeploy.models.tflite_weights import fill_from_tflite

__all__ = ["read_postprocess_options", "read_tflite_anchors", "read_tflite_offgrid_state_dict", "read_tflite_state_dict", "tflite_layer_names"]

_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D")
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
# The kernel's values for options a graph may leave out (tensorflow/lite/kernels/detection_postprocess.cc).
_OPTION_DEFAULTS: dict[str, Any] = {"detections_per_class": 100, "use_regular_nms": False}
_OPTIONS = {"max_detections": int, "max_classes_per_detection": int, "detections_per_class": int,
            "nms_score_threshold": float, "nms_iou_threshold": float, "num_classes": int, "y_scale": float,
            "x_scale": float, "h_scale": float, "w_scale": float, "use_regular_nms": bool}


def tflite_layer_names(model: SSDMobileNetV1) -> dict[str, str]:
    """{PyTorch conv module name: the name prefix of its filter in Google's graph}."""
    backbone, extras = "FeatureExtractor/MobilenetV1/MobilenetV1/", "FeatureExtractor/MobilenetV1/"
    names: dict[str, str] = {}
    for index, layer in enumerate(model.backbone):
        block, kind = (index + 1) // 2, "depthwise" if index % 2 else "pointwise"
        names[f"backbone.{index}.conv"] = f"{backbone}Conv2d_0/" if index == 0 else \
            f"{backbone}Conv2d_{block}_{kind}/"
    for index, (reduce_ch, out_ch) in enumerate(model.config.extra_channels()):
        # The Object Detection API numbers the extra layers after the two backbone maps (2 to 5).
        names[f"extras.{index}.0.conv"] = f"{extras}Conv2d_13_pointwise_1_Conv2d_{index + 2}_1x1_{reduce_ch}/"
        names[f"extras.{index}.1.conv"] = f"{extras}Conv2d_13_pointwise_2_Conv2d_{index + 2}_3x3_s2_{out_ch}/"
    for index, _ in enumerate(model.predictors):
        names[f"predictors.{index}.box_encoding"] = f"BoxPredictor_{index}/BoxEncodingPredictor/"
        names[f"predictors.{index}.class_prediction"] = f"BoxPredictor_{index}/ClassPredictor/"
    return names


def _open(path: Path) -> tuple[Any, Any, Any, list[str]]:
    """(schema module, ModelT, its first subgraph, each operator's name: builtin or custom code)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise DependencyError("reading Google's .tflite needs ai-edge-litert: pip install 'edgedeploy[tflite]'") from None
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(path).read_bytes(), 0))
        graph = model.subgraphs[0]
        codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops = []
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = codes[max(code.builtinCode, code.deprecatedBuiltinCode)]
            ops.append(code.customCode.decode() if builtin == "CUSTOM" and code.customCode else builtin)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the file ({exc.strerror or exc.__class__.__name__})") from exc
    except Exception as exc:  # flatbuffers raises anything on a damaged file
        raise WeightsError(f"{path}: not a readable .tflite ({exc.__class__.__name__})") from exc
    return schema, model, graph, ops


def _dequantize(path: Path, schema: Any, model: Any, graph: Any, index: int, dtype: Any) -> np.ndarray:
    """The constant tensor ``index`` as float32: (q - zero_point) * scale, one scale per tensor."""
    tensor = graph.tensors[index]
    name = tensor.name.decode()
    if tensor.type != dtype:
        raise WeightsError(f"{path}: tensor {name} is not {_type_name(schema, dtype)}: not Google's quantized model")
    quant = tensor.quantization
    if quant is None or quant.scale is None or len(quant.scale) != 1:
        raise WeightsError(f"{path}: tensor {name} has no single per-tensor scale: not Google's quantized model")
    raw = np.frombuffer(_data(model, tensor), dtype=np.uint8 if dtype == schema.TensorType.UINT8 else np.int32)
    if raw.size != int(np.prod(tensor.shape)):
        raise WeightsError(f"{path}: tensor {name} holds {raw.size} values for shape {list(tensor.shape)}")
    zero_point = np.float32(quant.zeroPoint[0] if quant.zeroPoint is not None else 0)
    return ((raw.astype(np.float32) - zero_point) * np.float32(quant.scale[0])).reshape(tensor.shape)


def _data(model: Any, tensor: Any) -> bytes:
    """A constant tensor's bytes (b"" for a tensor without data)."""
    data = model.buffers[tensor.buffer].data
    return b"" if data is None else bytes(data)


def _type_name(schema: Any, dtype: int) -> str:
    return next(k for k, v in vars(schema.TensorType).items() if v == dtype).lower()


def _weighted_ops(path: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(op, filter tensor name, filter, bias) of every convolution, in graph order, dequantized."""
    schema, model, graph, names = _open(path)
    ops = []
    for op, name in zip(graph.operators, names):
        if name in _WEIGHTED:
            if len(op.inputs) != 3:
                raise WeightsError(f"{path}: a {name} without a bias: not Google's SSD graph")
            _, filt, bias = op.inputs
            ops.append((name, graph.tensors[filt].name.decode(),
                        _dequantize(path, schema, model, graph, filt, schema.TensorType.UINT8),
                        _dequantize(path, schema, model, graph, bias, schema.TensorType.INT32)))
    return ops


def read_tflite_state_dict(path: Path, config: SSDMobileNetV1Config | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of ``config``'s network (default: Google's) holding the dequantized weights of the .tflite
    at ``path``."""
    model = SSDMobileNetV1(config)
    modules = dict(model.named_modules())

    def norm_of(conv: str) -> str | None:
        parent = conv.rpartition(".")[0]
        return f"{parent}.bn" if isinstance(modules.get(parent), ConvBNReLU6) else None

    return fill_from_tflite(path, model, _weighted_ops(path), tflite_layer_names(model), model.config.name, norm_of)


# The off-grid copy's seed: the same residual every time, so its figures reproduce.
OFFGRID_SEED = 0


def read_tflite_offgrid_state_dict(path: Path, config: SSDMobileNetV1Config | None = None
                                   ) -> dict[str, torch.Tensor]:
    """The .tflite's weights moved off the grid they were quantized on (``sample-offgrid``): to every
    convolution's weight the rounding residual a float-trained model has against the per-channel int8 grid,
    ``w + u * s`` with ``s = max|w| / 127`` per output channel and ``u ~ U(-1/2, 1/2)`` (seeded; biases and
    batch norm untouched), as the classifier's ``mobilenet_v2_imagenet_offgrid.pth`` was made. Google's weights
    sit on a uint8 grid, so int8 figures on them flatter any route; not a trained model."""
    state = read_tflite_state_dict(path, config)
    rng = np.random.default_rng(OFFGRID_SEED)
    for key in sorted(k for k, v in state.items() if k.endswith(".weight") and v.ndim == 4):
        weight = state[key].numpy().astype(np.float64)
        step = np.abs(weight).reshape(len(weight), -1).max(1) / 127.0
        residual = rng.uniform(-0.5, 0.5, weight.shape) * step[:, None, None, None]
        state[key] = torch.from_numpy((weight + residual).astype(np.float32))
    return state


def _postprocess_op(path: Path) -> tuple[Any, Any, Any, Any]:
    """(schema, model, graph, the TFLite_Detection_PostProcess operator)."""
    schema, model, graph, names = _open(path)
    for op, name in zip(graph.operators, names):
        if name == POSTPROCESS_OP:
            return schema, model, graph, op
    raise WeightsError(f"{path}: no {POSTPROCESS_OP} op: not an SSD detector exported for TFLite")


def read_tflite_anchors(path: Path) -> np.ndarray:
    """The post-processing op's anchors (its 3rd input), (A, 4) float32 (ycenter, xcenter, h, w), dequantized."""
    schema, model, graph, op = _postprocess_op(path)
    if len(op.inputs) != 3:
        raise WeightsError(f"{path}: {POSTPROCESS_OP} has {len(op.inputs)} inputs, not 3 (boxes, scores, anchors)")
    index = op.inputs[2]
    tensor = graph.tensors[index]
    if tensor.type == schema.TensorType.FLOAT32:
        anchors = np.frombuffer(_data(model, tensor), dtype=np.float32)
        anchors = anchors.reshape(tensor.shape) if anchors.size == int(np.prod(tensor.shape)) else anchors
    else:
        anchors = _dequantize(path, schema, model, graph, index, schema.TensorType.UINT8)
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise WeightsError(f"{path}: anchors of shape {list(anchors.shape)}, not (A, 4)")
    return anchors.astype(np.float32)


def read_postprocess_options(path: Path) -> dict[str, Any]:
    """The post-processing op's options (its flexbuffer map), with the kernel's defaults for those left out."""
    _, _, _, op = _postprocess_op(path)
    from flatbuffers import flexbuffers

    try:
        raw = flexbuffers.Loads(b"" if op.customOptions is None else bytes(op.customOptions))
    except Exception as exc:  # a damaged map raises anything
        raise WeightsError(f"{path}: {POSTPROCESS_OP}'s options are not a flexbuffer map "
                           f"({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: {POSTPROCESS_OP}'s options are not a flexbuffer map")
    values = {**_OPTION_DEFAULTS, **raw}
    missing = sorted(set(_OPTIONS) - set(values))
    if missing:
        raise WeightsError(f"{path}: {POSTPROCESS_OP}'s options lack {', '.join(missing)}")
    return {key: kind(values[key]) for key, kind in _OPTIONS.items()}
