"""Where an int8 model loses accuracy: every layer's quantized output against the float model's.

Both models run on the same real images; each layer is compared in graph order
(``layers.py`` reads the layers of each runtime). Two kinds of figures per layer:

End to end (what the layer's output carries from every quantization before it):
- SQNR (dB): power of the float activations over the power of the error, over all images.
- RMSE in quantization steps: the error against the layer's own int8 step.
- max |error|.

Local (the error this layer's own quantization makes, which is what float fallback removes):
- weights SQNR: the model's dequantized int8 weights against the float model's.
- range SQNR and clipped %: the float model's activations put through this layer's int8
  quantizer (its scale and zero point): a range calibrated on unlike images clips or
  wastes codes, and shows here.
- local noise: the noise-to-signal ratios of the two, added; the layers with the most are
  the suggestions for ``export --keep-float``. Where a runtime gives neither (OpenVINO),
  the increase in end-to-end noise over the layer's inputs stands in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.manifest import read_manifest
from edgedeploy.data.datasets import ImageSet
from edgedeploy.data.preprocess import preprocess
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.runtimes import LoadOptions, load_runner, open_layer_taps, runtime_for
from edgedeploy.runtimes.taps import Layer, LayerTaps
from edgedeploy.tasks import Task, get_task, open_images

__all__ = ["LayerError", "diagnose", "DEFAULT_IMAGES", "DEFAULT_SUGGESTIONS", "plot_layer_errors"]

DEFAULT_IMAGES = 32
DEFAULT_SUGGESTIONS = 3
# Local noise below this (60 dB) is no error worth a float layer (weights exactly on the int8 grid).
NEGLIGIBLE_NOISE = 1e-6
# A layer's range SQNR below this is poor: an int8 range that fits its data gives ~30-45 dB
# (MobileNetV2 on the sample data: median 44, lowest 26).
POOR_RANGE_DB = 20.0
# SQNR of a layer with no error at all (reported as a number: JSON has no infinity).
_EXACT_DB = 150.0
# The int8 target that takes --keep-float for each runtime, for models without a manifest.
_INT8_TARGET = {"litert": "tflite-int8", "onnxruntime": "onnx-int8", "openvino": "openvino-int8"}


@dataclass
class LayerError:
    index: int
    name: str
    op: str
    sqnr_db: float
    rmse_steps: float | None
    max_abs_error: float
    weights_sqnr_db: float | None
    range_sqnr_db: float | None
    clipped_pct: float | None
    local_noise: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _db(signal: float, noise: float) -> float:
    return _EXACT_DB if noise == 0 else min(_EXACT_DB, 10 * math.log10(max(signal, 1e-30) / noise))


def _noise_ratio(db: float | None) -> float:
    return 0.0 if db is None else 10 ** (-db / 10)


class _Sums:
    def __init__(self) -> None:
        self.signal = self.noise = self.max_abs = 0.0
        self.count = 0

    def add(self, quantized: np.ndarray, reference: np.ndarray) -> None:
        error = quantized.astype(np.float64) - reference
        self.signal += float(np.square(reference, dtype=np.float64).sum())
        self.noise += float(np.square(error).sum())
        self.max_abs = max(self.max_abs, float(np.abs(error).max()))
        self.count += error.size

    @property
    def noise_ratio(self) -> float:
        return self.noise / max(self.signal, 1e-30)

    @property
    def sqnr_db(self) -> float:
        return _db(self.signal, self.noise)


def _weights_sqnr(quantized: Layer, reference: Layer) -> float | None:
    """SQNR of the weights from their mean per-output-channel noise ratio: a channel that
    per-tensor scales round to zero counts fully, however small its weights are (a plain
    SQNR over the whole tensor is dominated by the largest channels and hides it)."""
    if quantized.weights is None or reference.weights is None or quantized.weights.shape != reference.weights.shape:
        return None
    axis = quantized.weights_axis
    channels = quantized.weights.shape[axis]
    q = np.moveaxis(quantized.weights, axis, 0).reshape(channels, -1).astype(np.float64)
    r = np.moveaxis(reference.weights, axis, 0).reshape(channels, -1).astype(np.float64)
    noise = np.square(q - r).sum(axis=1)
    ratio = float(np.mean(noise / np.maximum(np.square(r).sum(axis=1), 1e-30)))
    return _db(1.0, ratio)


def _match(quantized: list[Layer], reference: list[Layer]) -> list[tuple[Layer, Layer]]:
    """Pairs of layers: by position when both graphs have the same op sequence (a TFLite int8
    model and its float twin), else by key (tensor or node names the converters keep)."""
    if [q.op for q in quantized] == [r.op for r in reference]:
        return list(zip(quantized, reference))
    by_key = {r.key: r for r in reference}
    return [(q, by_key[q.key]) for q in quantized if q.key in by_key]


def diagnose(
    model: str,
    reference: str,
    data: str | Path,
    images: int = DEFAULT_IMAGES,
    suggestions: int = DEFAULT_SUGGESTIONS,
    threads: int = 1,
    on_progress: Callable[[int], None] | None = None,
    verify: bool = True,
) -> dict[str, Any]:
    """Per-layer error of ``model`` (quantized) against ``reference`` (its float export) on ``data``;
    both are checked against their manifests first unless ``verify`` is False."""
    runtime, reference_runtime = runtime_for(model).name, runtime_for(reference).name
    if runtime != reference_runtime:
        raise ConfigError(f"diagnose compares layers within one runtime: {model} is {runtime}, {reference} is "
                          f"{reference_runtime}; give the float export of the same format (e.g. tflite-fp32 for tflite-int8)")
    if images < 1:
        raise ConfigError(f"--images must be at least 1, got {images}")
    quantized_taps: LayerTaps = open_layer_taps(model, verify)
    task = get_task(quantized_taps.io.task)
    dataset = _images(data, task).subset(images, seed=0)
    reference_taps: LayerTaps = open_layer_taps(reference, verify)
    pairs = _match(quantized_taps.layers, reference_taps.layers)
    if not pairs:
        raise ConfigError(f"no layer of {model} matches a layer of {reference}: are they exports of one model?")
    sums = {q.key: _Sums() for q, _ in pairs}
    # The float activations through each layer's own quantizer: the local range error.
    ranges = {q.key: _Sums() for q, _ in pairs if q.quantizer is not None}
    clipped = dict.fromkeys(ranges, 0)
    seen = 0
    for item in dataset:
        q_out = quantized_taps.run(preprocess(item.image, quantized_taps.io.preprocessing))
        r_out = reference_taps.run(preprocess(item.image, reference_taps.io.preprocessing))
        for q, r in pairs:
            if q_out[q.key].shape != r_out[r.key].shape:
                raise DataError(f"layer {q.name}: shape {q_out[q.key].shape} in {model} but "
                                f"{r_out[r.key].shape} in {reference}: are they exports of one model?")
            sums[q.key].add(q_out[q.key], r_out[r.key])
            if q.quantizer is not None:
                ranges[q.key].add(q.quantizer.fake_quantize(r_out[r.key]), r_out[r.key])
                low, high = q.quantizer.bounds
                clipped[q.key] += int(np.count_nonzero((r_out[r.key] < low) | (r_out[r.key] > high)))
        seen += 1
        if on_progress:
            on_progress(1)
    if seen == 0:
        raise DataError(f"{data}: no image could be decoded")

    layers = []
    # Local figures where the runtime gives them; else (a float-only pair) end-to-end noise growth.
    local_figures = bool(ranges) or any(q.weights is not None and r.weights is not None for q, r in pairs)
    for index, (q, r) in enumerate(pairs):
        s = sums[q.key]
        weights_db = _weights_sqnr(q, r)
        range_db = ranges[q.key].sqnr_db if q.key in ranges else None
        if not local_figures:
            received = max((sums[i].noise_ratio for i in q.inputs if i in sums), default=0.0)
            local = max(0.0, s.noise_ratio - received)
        else:
            local = _noise_ratio(weights_db) + _noise_ratio(range_db)
        layers.append(LayerError(
            index=index, name=q.name, op=q.op, sqnr_db=s.sqnr_db,
            rmse_steps=math.sqrt(s.noise / s.count) / q.step if q.step else None,
            max_abs_error=s.max_abs, weights_sqnr_db=weights_db, range_sqnr_db=range_db,
            clipped_pct=100.0 * clipped[q.key] / ranges[q.key].count if q.key in ranges else None,
            local_noise=local,
        ))
    diagnosis = _diagnosis(layers, suggestions)
    manifest = read_manifest(model)
    target = (manifest.data.get("target") if manifest else None) or _INT8_TARGET[runtime]
    # Only a target that takes --keep-float gets a suggestion (a float model has nothing to keep).
    offers_fallback = target in TARGETS and TARGETS[target].keeps_float
    suggested = _suggest(layers, [q for q, _ in pairs], suggestions) if offers_fallback else []
    options = LoadOptions(threads=threads, verify=verify)
    runner = load_runner(model, options)
    output = evaluate(runner, dataset, reference=load_runner(reference, options))
    return {
        "model": model,
        "reference": reference,
        "runtime": runtime,
        "verified": runner.verification.verified if runner.verification else None,
        "data": str(data),
        "images": seen,
        "output": {task.metric: output.metrics[task.metric], "agreement": output.agreement,
                   "agreement_of": task.agreement_label, "max_abs_diff": output.max_abs_diff},
        "layers_compared": len(pairs),
        "layers_unmatched": len(quantized_taps.layers) - len(pairs),
        "diagnosis": diagnosis,
        "layers": [e.to_dict() for e in layers],
        "suggestions": {
            "layers": suggested,
            "target": target,
            "export_option": " ".join(f"--keep-float '{name}'" for name in suggested),
        },
    }


def _images(data: str | Path, task: Task) -> ImageSet:
    """``data`` as the model's task reads it (labeled: the output's metric is reported too), or, when it is
    not that task's data, just its images (any images show where a model's layers lose precision)."""
    try:
        return task.open_dataset(data)
    except ConfigError:
        return open_images(data)


def _reason(e: LayerError) -> str:
    if e.weights_sqnr_db is None and e.range_sqnr_db is None:
        return f"end-to-end noise grows by {e.local_noise:.3g} of the signal here"
    if _noise_ratio(e.range_sqnr_db) > _noise_ratio(e.weights_sqnr_db):
        return f"its int8 range clips {e.clipped_pct:.1f}% of the float activations (range SQNR {e.range_sqnr_db:.1f} dB)"
    return f"its int8 weights lose detail (per-channel SQNR {e.weights_sqnr_db:.1f} dB)"


def _diagnosis(errors: list[LayerError], count: int) -> str:
    """One sentence: the worst layers and why, and whether the ranges are wrong throughout."""
    worst = sorted((e for e in errors if e.local_noise > NEGLIGIBLE_NOISE), key=lambda e: e.local_noise,
                   reverse=True)[:max(count, 1)]
    text = "; ".join(f"{e.name}: {_reason(e)}" for e in worst) or "no layer adds measurable quantization error"
    ranged = [e for e in errors if e.range_sqnr_db is not None]
    off = [e for e in ranged if e.range_sqnr_db < POOR_RANGE_DB]
    if ranged and len(off) > len(ranged) / 4:
        text += (f". {len(off)} of {len(ranged)} layer ranges are below {POOR_RANGE_DB:g} dB: the calibration images "
                 "do not look like these; re-calibrating fixes that at no cost, keeping layers in float costs size")
    return text


def _suggest(errors: list[LayerError], layers: list[Layer], count: int) -> list[str]:
    """The ``count`` layers with the most local noise, in graph order. Where a layer's range
    (not its weights) is the problem, its consumers join it: a float layer's output is
    quantized again, with the same range, wherever an int8 layer reads it."""
    culprits = sorted((e for e in errors if e.local_noise > NEGLIGIBLE_NOISE), key=lambda e: e.local_noise,
                      reverse=True)[:count]
    consumers: dict[str, list[str]] = {}
    for layer in layers:
        for source in layer.inputs:
            consumers.setdefault(source, []).append(layer.name)
    keys = {layer.name: layer.key for layer in layers}
    chosen = set()
    for e in culprits:
        chosen.add(e.name)
        if _noise_ratio(e.range_sqnr_db) > _noise_ratio(e.weights_sqnr_db):
            chosen.update(consumers.get(keys[e.name], []))
    return [e.name for e in errors if e.name in chosen]


def plot_layer_errors(result: dict[str, Any], path: str | Path) -> Path:
    """End-to-end SQNR and local noise per layer in graph order, the suggested layers in red; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = result["layers"]
    x = [e["index"] for e in layers]
    marked = [e for e in layers if e["name"] in set(result["suggestions"]["layers"])]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    top.plot(x, [e["sqnr_db"] for e in layers], marker=".", lw=1)
    top.scatter([e["index"] for e in marked], [e["sqnr_db"] for e in marked], color="tab:red", zorder=3,
                label="suggested --keep-float")
    top.set_ylabel("SQNR (dB)")
    top.set_title(f"{Path(result['model']).name} vs {Path(result['reference']).name}: "
                  f"{result['images']} images, output agreement {result['output']['agreement']:.1f}%")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    colors = ["tab:red" if e["name"] in set(result["suggestions"]["layers"]) else "tab:blue" for e in layers]
    bottom.bar(x, [max(e["local_noise"], 1e-8) for e in layers], width=0.8, color=colors)
    bottom.set_yscale("log")
    bottom.set_ylabel("local noise / signal")
    bottom.set_xlabel("layer (graph order)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
