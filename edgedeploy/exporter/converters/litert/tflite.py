"""Simplified ONNX -> TFLite: onnx2tf builds the TensorFlow graph, TF's converter quantizes it.

onnx2tf (NCHW ONNX -> NHWC TensorFlow without transpose chains) runs once per
distinct ONNX graph; its SavedModel and float tflite files are cached by the ONNX
file's hash. Quantized variants come from ``tf.lite.TFLiteConverter`` on that
SavedModel, so only the requested variant is built (onnx2tf's own int8 path
builds every variant, several times slower).

onnx2tf downloads a sample-image file into its working directory when none is
there; it runs here in a private folder that already holds one, made from real
images, so conversion never touches the network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.cache import cache_dir, content_key
from edgedeploy.core.errors import ConfigError, ConversionError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.logcapture import captured_output, log_tail, quiet_tensorflow_env
from edgedeploy.exporter.choices import WeightGranularity
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure, litert_artifact_io
from edgedeploy.runtimes.litert.graph import graph_summary, layer_name

__all__ = ["to_tflite_fp32", "to_tflite_fp16", "to_tflite_dynamic", "to_tflite_int8", "TOOLS"]

TOOLS = ("tensorflow", "onnx2tf", "ai-edge-litert")
TFLITE_CONVERTER = "TFLite converter"
# The file onnx2tf fetches from the internet if its working directory lacks it.
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLE_SHAPE = (20, 128, 128, 3)
_FINISHED = "complete"


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _onnx2tf_sample(ctx: ExportContext) -> np.ndarray:
    """20 real images at 128x128, pixels in [0, 1], as onnx2tf expects its sample file."""
    from edgedeploy.core.io_spec import Preprocessing
    from edgedeploy.data.preprocess import preprocess
    from edgedeploy.data.synthetic import synthetic_pil_images

    spec = Preprocessing.for_resolution(128, raw_pixels=True)
    if ctx.sample_images is not None:
        images = [item.image for _, item in zip(range(ONNX2TF_SAMPLE_SHAPE[0]), ctx.sample_images)]
    else:
        images = []
    # Pad with seeded random pixels if fewer than 20 real images exist (onnx2tf only validates with them).
    images += synthetic_pil_images(ONNX2TF_SAMPLE_SHAPE[0] - len(images), 146, seed=0)
    return (np.stack([preprocess(im, spec) for im in images]) / 255.0).astype(np.float32)


def _tensorflow_graph(src: Path, ctx: ExportContext) -> Path:
    """onnx2tf output (SavedModel + float32/float16 tflite) for ``src``, built once per graph."""
    key = content_key(sha256_file(src), {t: metadata.version(t) for t in ("onnx2tf", "tensorflow")})
    done = cache_dir("onnx2tf") / key
    if (done / _FINISHED).is_file():
        _append_log(ctx, f"onnx2tf: reused cached conversion {done}\n")
        return done
    quiet_tensorflow_env()
    build = Path(tempfile.mkdtemp(prefix=".tmp-", dir=done.parent))
    try:
        work = build / "work"
        work.mkdir()
        np.save(work / ONNX2TF_SAMPLE, _onnx2tf_sample(ctx))
        shutil.copyfile(src, work / "model.onnx")
        with captured_output(ctx.log_path), _cwd(work):
            import onnx2tf

            try:
                onnx2tf.convert(
                    input_onnx_file_path="model.onnx",
                    output_folder_path=str(build / "out"),
                    copy_onnx_input_output_names_to_tflite=True,
                    output_signaturedefs=True,
                    not_use_onnxsim=True,  # already simplified
                    non_verbose=True,
                )
            except SystemExit as exc:  # onnx2tf exits the process on conversion errors
                raise ConversionError(f"onnx2tf failed (exit {exc.code}): {log_tail(ctx.log_path)}") from exc
            except Exception as exc:
                raise conversion_failure("onnx2tf", exc, ctx.log_path) from exc
        for name in ("model_float32.tflite", "model_float16.tflite", "saved_model.pb"):
            if not (build / "out" / name).is_file():
                raise ConversionError(f"onnx2tf produced no {name}: {log_tail(ctx.log_path)}")
        (build / "out" / _FINISHED).write_text(key)
        shutil.rmtree(done, ignore_errors=True)
        os.replace(build / "out", done)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return done


def _append_log(ctx: ExportContext, text: str) -> None:
    with ctx.log_path.open("a") as f:
        f.write(text)


def _check_batch(ctx: ExportContext) -> None:
    if ctx.onnx_io.input.shape[0] != 1:
        raise ConfigError("TFLite targets need a fixed batch of 1: drop --dynamic-batch")


def _copy_float(variant: str) -> Callable[[Path, Path, ExportContext], Conversion]:
    def convert(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
        _check_batch(ctx)
        shutil.copyfile(_tensorflow_graph(src, ctx) / f"model_{variant}.tflite", dst)
        return Conversion(io=litert_artifact_io(dst, ctx), details={"converter": "onnx2tf", "weights": variant},
                          tools=TOOLS)

    return convert


to_tflite_fp32 = _copy_float("float32")
to_tflite_fp16 = _copy_float("float16")


def _quantize(src: Path, dst: Path, ctx: ExportContext, configure: Callable[[Any, Any], None], recipe: dict[str, Any],
              keep_float: tuple[str, ...] = ()) -> None:
    """Run TF's TFLiteConverter on the cached SavedModel with ``configure(converter, tf)`` applied.

    ``recipe`` names everything ``configure`` depends on (variant, calibration key, IO
    dtype); with the SavedModel's key it addresses the cached result. ``keep_float``
    layers (``diagnose`` names) stay float through TFLite's own selective quantization.
    """
    saved_model = _tensorflow_graph(src, ctx)
    cached = cache_dir("tflite") / f"{content_key(saved_model.name, recipe)}.tflite"
    if cached.is_file():
        _append_log(ctx, f"TFLiteConverter: reused cached result {cached}\n")
        shutil.copyfile(cached, dst)
        return
    quiet_tensorflow_env()
    with captured_output(ctx.log_path):
        import tensorflow as tf

        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        except Exception as exc:
            raise conversion_failure(TFLITE_CONVERTER, exc, ctx.log_path) from exc
        configure(converter, tf)
        if keep_float:
            model = _selectively_quantized(converter, tf, keep_float, ctx.log_path)
        else:
            try:
                model = converter.convert()
            except Exception as exc:
                raise conversion_failure(TFLITE_CONVERTER, exc, ctx.log_path) from exc
    dst.write_bytes(model)
    with atomic_path(cached) as tmp:
        shutil.copyfile(dst, tmp)


def _selectively_quantized(converter: Any, tf: Any, keep_float: tuple[str, ...], log_path: Path) -> bytes:
    """TFLite's QuantizationDebugger calibrates once, then re-quantizes with the named layers
    denylisted: they compute in float between a DEQUANTIZE and a QUANTIZE. Its models keep
    float32 IO (``Target.keep_float_io_dtype``)."""
    with warnings.catch_warnings():
        # The debugger runs TF's own (deprecated) interpreter internally: not the user's concern.
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        debug_options = tf.lite.experimental.QuantizationDebugOptions
        try:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=converter.representative_dataset, debug_options=debug_options())
        except Exception as exc:
            raise conversion_failure(TFLITE_CONVERTER, exc, log_path) from exc
        by_layer = _output_tensors_by_layer(debugger.calibrated_model)
        unknown = [name for name in keep_float if name not in by_layer]
        if unknown:
            raise ConfigError(f"--keep-float: no layer named {', '.join(map(repr, unknown))} in this model; "
                              f"`edgedeploy diagnose` lists the layer names (e.g. {next(iter(by_layer))!r})")
        debugger.options = debug_options(denylisted_nodes=[t for name in keep_float for t in by_layer[name]])
        try:
            model: bytes = debugger.get_nondebug_quantized_model()
        except Exception as exc:
            raise conversion_failure(TFLITE_CONVERTER, exc, log_path) from exc
        return model


def _output_tensors_by_layer(model: bytes) -> dict[str, list[str]]:
    """{layer name as diagnose prints it: the full output tensor names TFLite's denylist takes}."""
    from ai_edge_litert.interpreter import Interpreter


    interpreter = Interpreter(model_content=model)
    outputs = {i for op in interpreter._get_ops_details() for i in op["outputs"]}  # LiteRT's only op listing
    by_layer: dict[str, list[str]] = {}
    for t in interpreter.get_tensor_details():
        if t["index"] in outputs:
            by_layer.setdefault(layer_name(t["name"]), []).append(t["name"])
    return by_layer


def to_tflite_dynamic(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """int8 weights, float activations (dynamic-range quantization): no calibration needed."""
    _check_batch(ctx)

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    _quantize(src, dst, ctx, configure, {"variant": "dynamic"})
    return Conversion(io=litert_artifact_io(dst, ctx), details={"converter": "onnx2tf + TFLiteConverter",
                                                          "weights": "int8", "activations": "float32"}, tools=TOOLS)


def to_tflite_int8(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """Full-integer PTQ: int8 weights (per-channel, or per-tensor), int8 activations, integer-only builtin ops."""
    _check_batch(ctx)
    calibration = ctx.required_calibration()
    io_dtype = ctx.options.io_dtype
    granularity = ctx.options.weight_granularity or WeightGranularity.PER_CHANNEL
    per_channel = granularity is WeightGranularity.PER_CHANNEL
    images = calibration.images

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for i in range(len(images)):
            yield [images[i : i + 1]]

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Integer-only builtins: conversion fails instead of silently keeping a float op.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype.value)
        converter.inference_output_type = getattr(tf, io_dtype.value)
        # TFLite's only switch for per-tensor weights (EdgeTPU-style); private but long-standing.
        converter._experimental_disable_per_channel = not per_channel

    keep_float = ctx.options.keep_float
    _quantize(src, dst, ctx, configure, {"variant": "int8", "calibration": calibration.key,
                                         "io_dtype": io_dtype.value, "keep_float": keep_float,
                                         **({} if per_channel else {"weights": granularity.value})}, keep_float)
    summary = graph_summary(dst)
    io = litert_artifact_io(dst, ctx)
    q = io.input.quantization
    return Conversion(
        io=io,
        details={
            "converter": "onnx2tf + TFLiteConverter",
            "weights": f"int8 {granularity}",
            "activations": "int8",
            "io_dtype": io_dtype.value,
            "integer_only": not summary["float_ops"],
            "raw_pixel_input": bool(ctx.onnx_io.preprocessing.raw_pixels and q and abs(q.scale - 1.0) < 1e-6
                                    and q.zero_point == 0),
            "calibration": calibration.describe(),
            **({"keep_float": list(keep_float)} if keep_float else {}),
        },
        tools=TOOLS,
    )
