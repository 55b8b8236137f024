"""Every quantized activation of a QDQ ONNX model (the output of the DequantizeLinear that follows
each QuantizeLinear), keyed by the float tensor it quantizes so it meets that tensor in the float
graph; run with graph optimizations off (simulated quantization: ORT's fused kernels would hide
the intermediates). A float model gives every node's output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.onnxruntime.graph import WEIGHTED_OPS
from edgedeploy.runtimes.onnxruntime.runner import OnnxRuntimeRunner
from edgedeploy.runtimes.taps import Layer, LayerTaps, Quantizer, dequantize

__all__ = ["OnnxRuntimeLayerTaps"]


class OnnxRuntimeLayerTaps(LayerTaps):
    def __init__(self, path: Path):
        import onnx
        import onnxruntime as ort

        self.io = OnnxRuntimeRunner(str(path), LoadOptions()).io
        model = onnx.load(str(path))
        graph = model.graph
        producers = {o: n for n in graph.node for o in n.output}
        initializers = {i.name: i for i in graph.initializer}
        consumers: dict[str, list[Any]] = {}
        for n in graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        # QDQ: X -> QuantizeLinear -> DequantizeLinear -> X': X' is X as the int8 model sees it.
        def array(name: str) -> np.ndarray:
            return onnx.numpy_helper.to_array(initializers[name])

        dequantized_as = {}
        quantizers: dict[str, Quantizer] = {}
        for q in (n for n in graph.node if n.op_type == "QuantizeLinear"):
            dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None)
            if dq is not None and q.input[0] not in initializers:
                dequantized_as[dq.output[0]] = q.input[0]
                zero_point = array(q.input[2])
                info = np.iinfo(zero_point.dtype)
                quantizers[q.input[0]] = Quantizer(float(array(q.input[1])), int(zero_point), int(info.min), int(info.max))

        def weights(name: str) -> np.ndarray | None:
            """An initializer, or the dequantized int8 initializer behind a DequantizeLinear."""
            if name in initializers:
                return array(name).astype(np.float32)
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in initializers:
                return None
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            zero_point = array(dq.input[2]) if len(dq.input) > 2 else np.zeros(1)
            return dequantize(array(dq.input[0]), array(dq.input[1]), zero_point, axis)
        quantized = bool(dequantized_as)
        self.layers, self._fetch = [], []
        for node in graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
                continue
            inputs = tuple(dequantized_as.get(i, i) for i in node.input
                           if dequantized_as.get(i, i) in producers or dequantized_as.get(i, i) in quantizers)
            # ORT names the float tensor it quantizes at the graph output "<output>_QuantizeLinear_Input".
            key = node.output[0].removesuffix("_QuantizeLinear_Input")
            if quantized:
                if node.output[0] not in quantizers:
                    continue
                fetch = next(dq for dq, x in dequantized_as.items() if x == node.output[0])
            else:
                fetch = key
            w = weights(node.input[1]) if node.op_type in WEIGHTED_OPS else None
            axis = 1 if node.op_type == "MatMul" else 0  # MatMul weights are (in, out)
            self.layers.append(Layer(node.name, node.op_type, key, quantizers.get(node.output[0]), inputs, w, axis))
            self._fetch.append(fetch)
        tapped = {layer.key for layer in self.layers}
        self.layers = [replace(layer, inputs=tuple(i for i in layer.inputs if i in tapped)) for layer in self.layers]
        known_outputs = {o.name for o in graph.output}
        for name in self._fetch:
            if name not in known_outputs:
                graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._fetch, {self._input: self.io.input.feed(image_hwc[None])})
        return {layer.key: v.astype(np.float32) for layer, v in zip(self.layers, values)}
