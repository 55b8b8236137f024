"""Which layers of a QDQ model ONNX Runtime's x86 U8S8 kernels would saturate on CPUs without VNNI.

Without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW: each pair of adjacent
products along the reduction axis is added into an int16 with saturation, before the int32 sums. A pair
``a[k] * w[k] + a[k+1] * w[k+1]`` beyond [-32768, 32767] is clipped, so a layer whose raw uint8 inputs (zero
point included) and 8-bit weights are both large computes something else than its quantization says: on
MobileNetV2 2-3 top-1 points, on DeepLab 13% of the pixels (measured under an emulated AVX2 CPU, README).
VNNI (VPDPBUSD) and ARM's dot products accumulate in int32 and do not saturate.

The fix is per output channel: a channel whose pairs overflow on the calibration images gets 7-bit weights (scale
max|w| / 64), which keeps every pair within int16 (2 x 255 x 64 < 32768); the others keep 8 bits (a per-tensor
layer goes 7-bit as a whole: ONNX Runtime's ``reduce_range`` for that initializer). The same artifact then
computes the same on every x86 CPU, with int8 weights and VNNI's speed kept. Depthwise convolutions run in
kernels without pair sums and are not counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["saturating_layers", "PAIR_LIMIT"]

PAIR_LIMIT = 32767


def _overflow_fractions(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per output channel, the fraction of (position, pair) sums beyond int16: ``codes`` (P, K) raw uint8 inputs,
    ``weights`` (O, K) int8, pairs (k, k+1) for even k (an odd K's last element has no partner)."""
    k = codes.shape[1] - codes.shape[1] % 2
    a = codes[:, :k].astype(np.int32).reshape(len(codes), k // 2, 2)
    w = weights[:, :k].astype(np.int32).reshape(len(weights), k // 2, 2)
    over = np.zeros(len(weights), np.int64)
    # (P, O, K/2) pair sums, in chunks of positions to bound memory.
    for start in range(0, len(a), 256):
        sums = np.einsum("pkt,okt->pok", a[start:start + 256], w)
        over += np.count_nonzero((sums > PAIR_LIMIT) | (sums < -PAIR_LIMIT - 1), axis=(0, 2))
    return over / max(len(a) * (k // 2), 1)


def _im2col(codes: np.ndarray, zero_point: int, node: object, kernel: tuple[int, int]) -> np.ndarray:
    attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}  # type: ignore[attr-defined]
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    padded = np.pad(codes, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=zero_point)
    kh, kw = kernel
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, kh, kw)
    n, c, oh, ow = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def saturating_layers(float_model: Path, quantized_model: Path, images: list[np.ndarray],
                      min_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """{weight initializer name (in ``float_model``): per output channel, whether its pair sums overflow int16
    on ``images`` (NCHW float batches of one, as the model takes them) more often than ``min_fraction``} for the
    convolutions of ``quantized_model`` (QDQ, uint8 activations, int8 weights) with any such
    channel."""
    import onnx
    import onnx.numpy_helper
    import onnxruntime as ort

    qgraph = onnx.load(str(quantized_model)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in qgraph.initializer}
    producers = {o: n for n in qgraph.node for o in n.output}
    fgraph = onnx.load(str(float_model)).graph
    float_nodes = {n.name: n for n in fgraph.node}
    layers = []  # (float weight name, float input name, scale, zero point, int8 weights (O, K), node, kernel)
    for node in qgraph.node:
        # Convolutions only: a classifier's Gemm sees pooled, small activations (and its per-channel axis
        # differs); none overflowed on MobileNetV2 or DeepLab.
        if node.op_type != "Conv" or node.name not in float_nodes:
            continue
        x_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
        if x_dq is None or w_dq is None or "DequantizeLinear" not in (x_dq.op_type, w_dq.op_type):
            continue
        if x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        weights = inits.get(w_dq.input[0])
        if weights is None or weights.dtype != np.int8:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1:
            continue  # depthwise / grouped: no pair sums in those kernels
        kernel = tuple(weights.shape[2:])
        matrix = weights.reshape(len(weights), -1)
        scale = float(inits[x_dq.input[1]])
        zero_point = int(inits[x_dq.input[2]]) if len(x_dq.input) > 2 else 0
        source = float_nodes[node.name]
        layers.append((source.input[1], source.input[0], scale, zero_point, matrix, node, kernel))
    if not layers:
        return {}
    model = onnx.load(str(float_model))
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
            rows = _im2col(codes, zero_point, node, kernel)
            fractions.setdefault(weight_name, []).append(_overflow_fractions(rows, matrix))
    flagged = {name: np.mean(f, axis=0) > min_fraction for name, f in fractions.items()}
    return {name: channels for name, channels in flagged.items() if channels.any()}
