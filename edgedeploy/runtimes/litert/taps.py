"""Every op's output of a .tflite model, read with ``experimental_preserve_all_tensors`` on the
builtin kernels (XNNPACK would fuse the ops away and keep no intermediates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.litert.graph import IO_OPS, WEIGHTED_OPS, layer_name
from edgedeploy.runtimes.litert.runner import LiteRTRunner
from edgedeploy.runtimes.taps import Layer, LayerTaps, Quantizer, dequantize

__all__ = ["LiteRTLayerTaps"]


class LiteRTLayerTaps(LayerTaps):
    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.io = LiteRTRunner(str(path), LoadOptions(xnnpack=False)).io
        self._interpreter = Interpreter(
            model_path=str(path), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._interpreter.allocate_tensors()
        tensors = {t["index"]: t for t in self._interpreter.get_tensor_details()}
        producer: dict[int, str] = {}
        ops = self._interpreter._get_ops_details()  # LiteRT's only op listing
        # fp16 weights are float16 constants behind a DEQUANTIZE.
        dequantized_from = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
        self.layers, self._index, self._quant = [], {}, {}
        for op in ops:
            out = op["outputs"][0]
            if op["op_name"] in IO_OPS:
                # Look through IO (de)quantization: its consumer is fed by what fed it.
                producer[out] = producer.get(op["inputs"][0], "")
                continue
            key = layer_name(tensors[out]["name"])
            scale, zero_point = tensors[out]["quantization"]
            info = np.iinfo(tensors[out]["dtype"]) if scale else None
            quantizer = Quantizer(float(scale), int(zero_point), int(info.min), int(info.max)) if info else None
            inputs = tuple(dict.fromkeys(producer[i] for i in op["inputs"] if producer.get(i)))
            weights = None
            if op["op_name"] in WEIGHTED_OPS:
                w = dequantized_from.get(op["inputs"][1], op["inputs"][1])
                weights = self._weights(tensors[w])
            axis = 3 if op["op_name"] == "DEPTHWISE_CONV_2D" else 0  # TFLite depthwise filters are 1HWC
            self.layers.append(Layer(key, op["op_name"], key, quantizer, inputs, weights, axis))
            self._index[key], self._quant[key] = out, (float(scale), int(zero_point))
            producer[out] = key
        self._input = self._interpreter.get_input_details()[0]["index"]

    def _weights(self, tensor: dict[str, Any]) -> np.ndarray:
        values = self._interpreter.get_tensor(tensor["index"])
        q = tensor["quantization_parameters"]
        if np.dtype(tensor["dtype"]).kind in "iu" and len(q["scales"]):
            return dequantize(values, q["scales"], q["zero_points"], int(q["quantized_dimension"]))
        return values.astype(np.float32)

    def run(self, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input, self.io.input.feed(image_hwc[None]))
        self._interpreter.invoke()
        out = {}
        for key, index in self._index.items():
            value = self._interpreter.get_tensor(index).astype(np.float32)
            scale, zero_point = self._quant[key]
            out[key] = (value - zero_point) * scale if scale else value
        return out
