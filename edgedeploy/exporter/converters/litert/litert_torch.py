"""PyTorch -> TFLite directly: litert-torch converts the module, AI Edge Quantizer quantizes it.

The route Ultralytics moved to from onnx2tf: ``litert_torch.convert`` lowers the
``torch.export`` graph to TFLite (NHWC inside, no ONNX in between); with
``to_channel_last_io`` the input is NHWC too, so the graph starts without a TRANSPOSE.
Integer variants come from Google's AI Edge Quantizer on that float model: static int8
(``static_wi8_ai8``) or 16x8 (``static_wi8_ai16``: int16 activations, int8 weights),
calibrated on the same images as every other int8 target. Its models take and return the
quantized type (int8 or int16); the manifest records the scale and zero point.

Both tools print progress to stdout (litert-torch's "[ DONE]" lines, the quantizer's tqdm
bars): they run with their output captured into the artifact's log.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.logcapture import captured_output, quiet_tensorflow_env
from edgedeploy.exporter.choices import CalibMethod, InputLayout, WeightGranularity
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure, litert_artifact_io
from edgedeploy.runtimes.litert.graph import graph_ops, layer_name

__all__ = ["to_litert_fp32", "to_litert_int8", "to_litert_a16w8", "TOOLS"]

TOOLS = ("litert-torch", "ai-edge-quantizer", "ai-edge-litert")
QUANTIZER = "AI Edge Quantizer"


def _convert_float(dst: Path, ctx: ExportContext) -> InputLayout:
    """``ctx.torch_model`` as an fp32 .tflite at ``dst``; returns the input layout it was given."""
    import torch

    layout = ctx.options.input_layout or InputLayout.NHWC
    size = ctx.config.resolution
    quiet_tensorflow_env()
    with captured_output(ctx.log_path):
        import litert_torch

        model = ctx.torch_model
        sample = torch.zeros(1, 3, size, size)
        if layout is InputLayout.NHWC:
            # Moves the NCHW->NHWC permute to the input, where the converter folds it away.
            model = litert_torch.to_channel_last_io(model, args=[0])
            sample = torch.zeros(1, size, size, 3)
        try:
            litert_torch.convert(model.eval(), (sample,)).export(str(dst))
        except Exception as exc:
            raise conversion_failure("litert-torch (torch.export -> TFLite)", exc, ctx.log_path) from exc
    return layout


def to_litert_fp32(src: Path | None, dst: Path, ctx: ExportContext) -> Conversion:
    layout = _convert_float(dst, ctx)
    return Conversion(io=litert_artifact_io(dst, ctx),
                      details={"converter": "litert-torch", "exporter": "torch.export", "weights": "float32",
                               "input_layout": layout.value}, tools=TOOLS)


def to_litert_int8(src: Path | None, dst: Path, ctx: ExportContext) -> Conversion:
    """Static int8: int8 weights (per-channel or per-tensor) and int8 activations."""
    return _quantized(dst, ctx, "static_wi8_ai8", activations="int8")


def to_litert_a16w8(src: Path | None, dst: Path, ctx: ExportContext) -> Conversion:
    """16x8: int16 activations, int8 weights, for the layers where int8 activations cost accuracy."""
    return _quantized(dst, ctx, "static_wi8_ai16", activations="int16")


def _quantized(dst: Path, ctx: ExportContext, recipe_name: str, activations: str) -> Conversion:
    from ai_edge_quantizer import quantizer, recipe

    calibration = ctx.required_calibration()
    float_path = ctx.workdir / "litert_float32.tflite"
    layout = _convert_float(float_path, ctx)
    granularity = ctx.options.weight_granularity or WeightGranularity.PER_CHANNEL
    keep_float = ctx.options.keep_float
    rows = _recipe(getattr(recipe, recipe_name)(), granularity, _keep_float_patterns(float_path, keep_float))
    images = calibration.images if layout is InputLayout.NHWC else calibration.images.transpose(0, 3, 1, 2)
    method = ctx.options.calib_method or CalibMethod.MINMAX
    (signature, names), = _signature_inputs(float_path).items()
    samples = [{names[0]: np.ascontiguousarray(images[i : i + 1])} for i in range(len(images))]
    with captured_output(ctx.log_path):
        try:
            q = quantizer.Quantizer(str(float_path))
            q.load_quantization_recipe(rows)
            q.quantize(_calibrated(float_path, rows, {signature: samples}, method)).export_model(str(dst),
                                                                                               overwrite=True)
        except Exception as exc:
            raise conversion_failure(QUANTIZER, exc, ctx.log_path) from exc
    io = litert_artifact_io(dst, ctx)
    return Conversion(
        io=io,
        details={"converter": f"litert-torch + {QUANTIZER} ({recipe_name})", "exporter": "torch.export",
                 "weights": f"int8 {granularity}", "activations": activations, "input_layout": layout.value,
                 "io_dtype": io.input.dtype, "calib_method": method.value, "calibration": calibration.describe(),
                 **({"keep_float": list(keep_float)} if keep_float else {})},
        tools=TOOLS,
    )


def _calibrated(float_path: Path, rows: list[dict[str, Any]], samples: dict[str, list[dict[str, np.ndarray]]],
                method: CalibMethod) -> dict[str, Any]:
    """Activation ranges from the calibration samples, merged by ``method``.

    ``Quantizer.calibrate`` always merges samples with a moving average (factor 0.95), which
    shrinks rare large values: on MobileNetV2 it clipped the logits at 9.3 where PyTorch reaches
    13. ``minmax`` runs the quantizer's own Calibrator with its absolute min/max merge instead.
    """
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rows)
    merge = qsv_utils.min_max_update if method is CalibMethod.MINMAX else qsv_utils.moving_average_update
    calib = calibrator.Calibrator(float_path.read_bytes(), qsv_update_func=merge)
    calib.calibrate(samples, manager)
    qsvs: dict[str, Any] = calib.get_model_qsvs()
    return qsvs


def _signature_inputs(path: Path) -> dict[str, list[str]]:
    """{signature key: its input names} of a .tflite (litert-torch writes one, ``serving_default``)."""
    from edgedeploy.runtimes.litert.runner import open_interpreter

    signatures = open_interpreter(path, xnnpack=False).get_signature_list()
    return {key: list(sig["inputs"]) for key, sig in signatures.items()}


def _recipe(rows: list[dict[str, Any]], granularity: WeightGranularity,
            keep_float: list[str]) -> list[dict[str, Any]]:
    """The quantizer's recipe with the weight granularity set and the kept layers left unquantized.

    Later rows override earlier ones for the ops they match (the quantizer's documented order).
    """
    rows = copy.deepcopy(rows)
    for row in rows:
        weights = row.get("op_config", {}).get("weight_tensor_config")
        if weights is not None:
            weights["granularity"] = "CHANNELWISE" if granularity is WeightGranularity.PER_CHANNEL else "TENSORWISE"
    rows += [{"regex": pattern, "operation": "*", "algorithm_key": "no_quantize"} for pattern in keep_float]
    return rows


def _keep_float_patterns(float_path: Path, keep_float: tuple[str, ...]) -> list[str]:
    """An exact-match regex per kept layer, checked against the layer names `diagnose` prints for
    this route (the quantizer ignores a regex that matches nothing: a typo would quantize all)."""
    if not keep_float:
        return []
    ops, tensors = graph_ops(float_path)
    names = {layer_name(tensors[op["outputs"][0]]["name"]): tensors[op["outputs"][0]]["name"] for op in ops}
    unknown = [name for name in keep_float if name not in names]
    if unknown:
        raise ConfigError(f"--keep-float: no layer named {', '.join(map(repr, unknown))} in this model; "
                          f"`edgedeploy diagnose` lists the layer names (e.g. {next(iter(names))!r})")
    # The quantizer matches an op's scope: its output names, each followed by ";".
    return [f"^{re.escape(names[name])};" for name in keep_float]
