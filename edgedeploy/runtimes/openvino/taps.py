"""The input and output of every Convolution, GroupConvolution, MatMul, Add, Clamp and ReduceMean of
an IR, keyed by friendly name (the ONNX node's), which NNCF keeps on the int8 IR; the FakeQuantize
that reads an output is its quantizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.openvino.graph import WEIGHTED_OPS, folded_weights
from edgedeploy.runtimes.openvino.runner import OpenVINORunner, read_ir
from edgedeploy.runtimes.taps import Layer, LayerTaps, Quantizer

__all__ = ["OpenVINOLayerTaps"]


class OpenVINOLayerTaps(LayerTaps):
    # Where NNCF puts activation FakeQuantizes (after the input, ReLU6, bias and residual adds).
    _TAPPED = (*WEIGHTED_OPS, "Parameter", "Add", "Clamp", "ReduceMean")

    def __init__(self, path: Path):
        import openvino as ov

        self.io = OpenVINORunner(str(path), LoadOptions()).io
        model = read_ir(path)
        nodes = [op for op in model.get_ordered_ops() if op.get_type_name() in self._TAPPED and not _is_constant(op)]
        names = {op.get_friendly_name() for op in nodes}
        self.layers = []
        for op in nodes:
            weighted = op.get_type_name() in WEIGHTED_OPS
            weights = folded_weights(op.input_value(1).get_node()) if weighted else None
            axis = 1 if op.get_type_name() == "MatMul" and not op.get_transpose_b() else 0
            self.layers.append(Layer(op.get_friendly_name(), op.get_type_name(), op.get_friendly_name(),
                                     _fake_quantizer_after(op), tuple(_tapped_ancestors(op, names)), weights, axis))
        # The input is fed, not computed: it is read back from the feed.
        self._parameters = {op.get_friendly_name() for op in nodes if op.get_type_name() == "Parameter"}
        computed = [op for op in nodes if op.get_friendly_name() not in self._parameters]
        model.add_outputs([op.output(0) for op in computed])
        # Output index per tapped op (an op that already was a model output keeps its index).
        self._outputs: dict[str, int] = {}
        for index, result in enumerate(model.outputs):
            self._outputs.setdefault(result.get_node().input_value(0).get_node().get_friendly_name(), index)
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self._request = compiled.create_infer_request()

    def run(self, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
        feed = self.io.input.feed(image_hwc[None])
        self._request.infer({0: feed})
        return {layer.key: feed.astype(np.float32) if layer.key in self._parameters
                else self._request.get_output_tensor(self._outputs[layer.key]).data.astype(np.float32)
                for layer in self.layers}


def _is_constant(op: Any) -> bool:
    """An Add of two constants (folded weights arithmetic) is not an activation."""
    return op.get_input_size() > 0 and all(
        op.input_value(i).get_node().get_type_name() == "Constant" for i in range(op.get_input_size()))


def _fake_quantizer_after(op: Any) -> Quantizer | None:
    """The activation FakeQuantize that reads ``op``'s output directly, as a Quantizer."""
    for target in op.output(0).get_target_inputs():
        fq = target.get_node()
        if fq.get_type_name() == "FakeQuantize" and target.get_index() == 0:
            # Per-tensor, or per-channel (NNCF quantizes depthwise inputs per channel): arrays that
            # broadcast over NCHW. A dead channel's range is empty: a tiny scale keeps it zero.
            low, high = (np.asarray(fq.input_value(i).get_node().get_data(), dtype=np.float64) for i in (1, 2))
            levels = int(fq.get_levels())
            scale = np.maximum((high - low) / (levels - 1), 1e-12)
            return Quantizer(scale, np.round(-low / scale), 0, levels - 1)
    return None


def _tapped_ancestors(op: Any, tapped: set[str], depth: int = 12) -> list[str]:
    """The tapped layers whose outputs reach ``op``'s data input through untapped nodes."""
    found: list[str] = []

    def walk(node: Any, d: int) -> None:
        if node.get_friendly_name() in tapped and node is not op:
            found.append(node.get_friendly_name())
            return
        if d == 0 or node.get_type_name() in ("Constant", "Parameter"):
            return
        ports = range(node.get_input_size()) if node is not op else range(1)  # op's weights are not activations
        for i in ports:
            walk(node.input_value(i).get_node(), d - 1)

    walk(op, depth)
    return list(dict.fromkeys(found))
