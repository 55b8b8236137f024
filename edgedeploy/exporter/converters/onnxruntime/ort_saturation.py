"""Which layers of a QDQ model ONNX Runtime's x86 U8S8 kernels would saturate on CPUs without VNNI.

Without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW: each pair of adjacent
products along the reduction axis is added into an int16 with saturation, before the int32 sums. A pair
``a[k] * w[k] + a[k+1] * w[k+1]`` beyond [-32768, 32767] is clipped, so a layer whose raw uint8 inputs (zero
point included) and 8-bit weights are both large computes something else than its quantization says: on
MobileNetV2 2-3 top-1 points, on DeepLab 13% of the pixels (measured under an emulated AVX2 CPU, docs/int8.md).
VNNI (VPDPBUSD) and ARM's dot products accumulate in int32 and do not saturate.

The fix is per output channel: a channel whose pairs overflow on the calibration images gets 7-bit weights (scale
max|w| / 64), which keeps every pair within int16 (2 x 255 x 64 < 32768); the others keep 8 bits (a per-tensor
layer goes 7-bit as a whole: ONNX Runtime's ``reduce_range`` for that initializer). The same artifact then
computes the same on every x86 CPU, with int8 weights and VNNI's speed kept. Depthwise convolutions run in
kernels without pair sums and are not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["saturating_layers", "PAIR_LIMIT"]

PAIR_LIMIT = 32767
# Pair sums counted per output channel and image: every one in MobileNetV2 (at most 0.23 M at 224 px), DeepLab (1.2 M
# at 513 px) and the SSDs; a sample of 2 M where a layer has more (mmseg's 3x3 heads on 2560 channels at 512 px have
# 47 M, whose exhaustive count took minutes per layer). At the 1e-4 fraction a channel is flagged at, a sample of 2 M
# expects 200 overflows: the estimate's relative error is about 7%.
MAX_PAIR_SUMS = 2**21


def _overflow_fractions(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per output channel, the fraction of (position, pair) sums beyond int16: ``codes`` (P, K) raw uint8 inputs,
    ``weights`` (O, K) int8, pairs (k, k+1) for even k (an odd K's last element has no partner). Past
    MAX_PAIR_SUMS sums per channel the positions are a seeded sample: the fraction is then estimated."""
    k = codes.shape[1] - codes.shape[1] % 2
    positions = max(MAX_PAIR_SUMS // max(k // 2, 1), 1)
    if len(codes) > positions:
        codes = codes[np.sort(np.random.default_rng(0).choice(len(codes), positions, replace=False))]
    a = codes[:, :k].astype(np.int32).reshape(len(codes), k // 2, 2)
    w = weights[:, :k].astype(np.int32).reshape(len(weights), k // 2, 2)
    over = np.zeros(len(weights), np.int64)
    # (P, O, K/2) pair sums, in chunks of positions to bound memory.
    for start in range(0, len(a), 256):
        sums = np.einsum("pkt,okt->pok", a[start:start + 256], w)
        over += np.count_nonzero((sums > PAIR_LIMIT) | (sums < -PAIR_LIMIT - 1), axis=(0, 2))
    return over / max(len(a) * (k // 2), 1)


def _im2col(codes: np.ndarray, zero_point: int, node: Any, kernel: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) uint8 codes -> (positions, kh*kw*C): the rows ONNX Runtime's quantized convolution reduces
    over, in its order (the filter reordered to kh, kw, C, M: ``ReorderFilter`` in qlinearconv.cc), with the
    node's strides, padding (filled with the zero point's code, as the kernel pads) and dilations."""
    attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    padded = np.pad(codes, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=zero_point)
    kh, kw = kernel
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, kh, kw)
    n, c, oh, ow = windows.shape[:4]
    return windows.transpose(0, 2, 3, 4, 5, 1).reshape(n * oh * ow, kh * kw * c)


def _layers(qgraph: Any, fgraph: Any) -> list[tuple[str, str, float, int, np.ndarray, Any, tuple[int, int]]]:
    """(float weight name, float input name, input scale, input zero point, int8 weights (M, kh*kw*C), node,
    kernel) for each 2-D convolution of the quantized graph with int8 weights and a dequantized input.
    Convolutions are matched to the float graph by their weight initializer (ONNX Runtime stores W as
    ``W_quantized``); grouped ones (MobileNet's are depthwise) run in other kernels and are not counted."""
    import onnx.numpy_helper

    inits = {i.name: i for i in qgraph.initializer}
    producers = {o: n for n in qgraph.node for o in n.output}
    float_convs = {n.input[1]: n for n in fgraph.node if n.op_type == "Conv" and len(n.input) > 1}
    layers = []
    for node in qgraph.node:
        if node.op_type != "Conv" or next((a.i for a in node.attribute if a.name == "group"), 1) != 1:
            continue
        x_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
        if getattr(x_dq, "op_type", None) != "DequantizeLinear" or getattr(w_dq, "op_type", None) != "DequantizeLinear":
            continue
        weight_name = w_dq.input[0].removesuffix("_quantized")
        if weight_name not in float_convs or w_dq.input[0] not in inits or x_dq.input[1] not in inits:
            continue
        weights = onnx.numpy_helper.to_array(inits[w_dq.input[0]])
        if weights.dtype != np.int8 or weights.ndim != 4:
            continue  # uint8 weights do not saturate; 1-D/3-D convolutions are not modelled
        scale = float(onnx.numpy_helper.to_array(inits[x_dq.input[1]]))
        zero_point = (int(onnx.numpy_helper.to_array(inits[x_dq.input[2]]))
                      if len(x_dq.input) > 2 and x_dq.input[2] in inits else 0)
        matrix = weights.transpose(0, 2, 3, 1).reshape(len(weights), -1)
        layers.append((weight_name, float_convs[weight_name].input[0], scale, zero_point, matrix, node,
                       (int(weights.shape[2]), int(weights.shape[3]))))
    return layers


def saturating_layers(float_model: Path, quantized_model: Path, images: list[np.ndarray],
                      min_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """{weight initializer name (in ``float_model``): per output channel, whether its pair sums overflow int16
    on ``images`` (NCHW float batches of one, as the model takes them) more often than ``min_fraction``} for the
    convolutions of ``quantized_model`` (QDQ, uint8 activations, int8 weights) with any such channel."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(float_model))
    layers = _layers(onnx.load(str(quantized_model)).graph, model.graph)
    if not layers:
        return {}
    known = {o.name for o in model.graph.output}
    for name in {layer[1] for layer in layers} - known:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    wanted = sorted({layer[1] for layer in layers})
    fractions: dict[str, list[np.ndarray]] = {}
    for image in images:
        values = dict(zip(wanted, session.run(wanted, {input_name: image})))
        for weight_name, x_name, scale, zero_point, matrix, node, kernel in layers:
            codes = np.clip(np.round(values[x_name] / scale) + zero_point, 0, 255).astype(np.uint8)
            fractions.setdefault(weight_name, []).append(
                _overflow_fractions(_im2col(codes, zero_point, node, kernel), matrix))
    flagged = {name: np.mean(f, axis=0) > min_fraction for name, f in fractions.items()}
    return {name: channels for name, channels in flagged.items() if channels.any()}
