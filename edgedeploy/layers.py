"""Every layer's output, in graph order, from a model file: what ``diagnose`` compares.

One reader per runtime (named by the runtime registry's ``layer_taps`` column). A
quantized model's activations come back dequantized to float, so an int8 model and
its float reference can be compared tensor by tensor:

- LiteRT: every op's output, read with ``experimental_preserve_all_tensors`` on the
  builtin kernels (XNNPACK would fuse the ops away and keep no intermediates).
- ONNX Runtime: in a QDQ model, every quantized activation (the output of the
  DequantizeLinear that follows each QuantizeLinear), keyed by the float tensor it
  quantizes, so it meets that tensor in the float graph; run with graph optimizations
  off (simulated quantization: ORT's fused kernels would hide the intermediates).
- OpenVINO: the input and the output of every Convolution, GroupConvolution, MatMul,
  Add, Clamp and ReduceMean, keyed by friendly name (the ONNX node's), which NNCF keeps
  on the int8 IR; the FakeQuantize that reads an output is its quantizer, and int8
  weights are folded from NNCF's Constant -> Convert -> Subtract -> Multiply chain.

``Layer.name`` is what ``export --keep-float`` takes for that runtime's int8 target.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.spec import ModelIO

__all__ = ["Layer", "LayerTaps", "Quantizer", "tflite_layer_name"]


@dataclass(frozen=True, eq=False)
class Quantizer:
    """An int8/uint8 activation quantizer: what the quantized model does to this layer's output.
    Scale and zero point are scalars, or arrays that broadcast over the activation (per channel)."""

    scale: float | np.ndarray
    zero_point: int | np.ndarray
    qmin: int
    qmax: int

    @property
    def bounds(self) -> tuple[float, float]:
        """The float range the quantizer represents; values outside it are clipped."""
        return (self.qmin - self.zero_point) * self.scale, (self.qmax - self.zero_point) * self.scale

    def fake_quantize(self, x: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(x / self.scale) + self.zero_point, self.qmin, self.qmax)
        return ((q - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class Layer:
    # What --keep-float takes to keep this layer in float.
    name: str
    op: str
    # Matches this layer across a quantized model and its float reference.
    key: str
    # How the output is quantized (None: a float output, or not known at this point).
    quantizer: Quantizer | None
    # Keys of the tapped layers that feed this one (the error it received).
    inputs: tuple[str, ...] = ()
    # The weights as the model computes with them (dequantized); None for ops without weights.
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)
    # The weights' output-channel axis.
    weights_axis: int = 0

    @property
    def step(self) -> float | None:
        return float(np.mean(self.quantizer.scale)) if self.quantizer else None


def _dequantize(values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int) -> np.ndarray:
    """Per-tensor or per-channel (along ``axis``) dequantization of stored integer weights."""
    shape = [1] * values.ndim
    if np.size(scales) > 1:
        shape[axis] = -1
    scales, zero_points = np.reshape(scales, shape), np.reshape(zero_points, shape)
    return ((values.astype(np.float32) - zero_points) * scales).astype(np.float32)


class LayerTaps(ABC):
    """A model opened so that one image gives every layer's output."""

    layers: list[Layer]
    io: ModelIO

    @abstractmethod
    def run(self, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
        """One preprocessed image (H, W, C) -> {layer key: float32 activations}."""


_KERAS_PREFIX = re.compile(r"^model(_\d+)?/")


def tflite_layer_name(tensor_name: str) -> str:
    """A TFLite op's stable name: the first of its fused output names, without the Keras
    model prefix (``model_2/``), whose number depends on how many models a process built."""
    return _KERAS_PREFIX.sub("", tensor_name.split(";")[0])


class LiteRTLayerTaps(LayerTaps):
    _SKIP = ("QUANTIZE", "DEQUANTIZE")
    _WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.io = load_runner(str(path), LoadOptions(xnnpack=False), runtime="litert").io
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
            if op["op_name"] in self._SKIP:
                # Look through IO (de)quantization: its consumer is fed by what fed it.
                producer[out] = producer.get(op["inputs"][0], "")
                continue
            key = tflite_layer_name(tensors[out]["name"])
            scale, zero_point = tensors[out]["quantization"]
            info = np.iinfo(tensors[out]["dtype"]) if scale else None
            quantizer = Quantizer(float(scale), int(zero_point), int(info.min), int(info.max)) if info else None
            inputs = tuple(dict.fromkeys(producer[i] for i in op["inputs"] if producer.get(i)))
            weights = None
            if op["op_name"] in self._WEIGHTED:
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
            return _dequantize(values, q["scales"], q["zero_points"], int(q["quantized_dimension"]))
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


class OnnxRuntimeLayerTaps(LayerTaps):
    def __init__(self, path: Path):
        import onnx
        import onnxruntime as ort

        self.io = load_runner(str(path), LoadOptions(), runtime="onnxruntime").io
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
            return _dequantize(array(dq.input[0]), array(dq.input[1]), zero_point, axis)
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
            w = weights(node.input[1]) if node.op_type in ("Conv", "Gemm", "MatMul") else None
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


class OpenVINOLayerTaps(LayerTaps):
    _WEIGHTED = ("Convolution", "GroupConvolution", "MatMul")
    # Where NNCF puts activation FakeQuantizes (after the input, ReLU6, bias and residual adds).
    _TAPPED = (*_WEIGHTED, "Parameter", "Add", "Clamp", "ReduceMean")

    def __init__(self, path: Path):
        import openvino as ov

        from edgedeploy.runtimes.openvino_runtime import read_ir

        self.io = load_runner(str(path), LoadOptions(), runtime="openvino").io
        model = read_ir(path)
        nodes = [op for op in model.get_ordered_ops() if op.get_type_name() in self._TAPPED and not _is_constant(op)]
        names = {op.get_friendly_name() for op in nodes}
        self.layers = []
        for op in nodes:
            weighted = op.get_type_name() in self._WEIGHTED
            weights = _fold(op.input_value(1).get_node()) if weighted else None
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


def _fold(node: Any) -> np.ndarray | None:
    """A weight's value as the model computes with it: NNCF stores int8 weights as
    Constant -> Convert -> (Subtract zero point) -> Multiply scale; fp16 as Constant -> Convert."""
    kind = node.get_type_name()
    if kind == "Constant":
        return node.get_data().astype(np.float32)
    if kind in ("Convert", "Reshape"):
        value = _fold(node.input_value(0).get_node())
        return None if value is None else value.reshape(tuple(node.get_output_shape(0)))
    if kind in ("Subtract", "Multiply"):
        a, b = (_fold(node.input_value(i).get_node()) for i in range(2))
        if a is None or b is None:
            return None
        return (a - b if kind == "Subtract" else a * b).astype(np.float32)
    return None


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
