"""The TF Object Detection API's SSDLite-MobileNetV2 checkpoint (``model.ckpt.index`` + ``.data-*``) read into the
family's state_dict, variable by variable, by name.

The network's modules are named after the checkpoint's scopes, so the mapping is a renaming plus TF's layouts:
conv filters are HWIO (-> OIHW), depthwise filters H W C 1 (-> C 1 H W), a slim BatchNorm keeps gamma, beta,
moving_mean and moving_variance (-> weight, bias, running_mean, running_var), the predictors' 1x1 convolutions have
``biases``. Two things have no counterpart and are skipped by rule: PyTorch's ``num_batches_tracked`` counters (a
training statistic TF does not keep; they stay 0), and in the checkpoint ``global_step`` plus any training slot
(``.../ExponentialMovingAverage``, the optimizers' ``RMSProp``/``RMSProp_1``, ``Momentum``, ``Adam``/``Adam_1``): the
release holds none of the latter, and a checkpoint trained with moving averages is read by its raw variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedeploy.core.errors import DependencyError, WeightsError
from edgedeploy.models.ssdlite_mobilenet_v2.config import FEATURE_LAYERS, KERNEL_SIZE, SSDLiteMobileNetV2Config
from edgedeploy.models.ssdlite_mobilenet_v2.network import SSDLiteMobileNetV2

__all__ = ["checkpoint_variable_names", "ignored_variable", "read_tf_checkpoint"]

BACKBONE = "FeatureExtractor/MobilenetV2/"
# Checkpoint variables that are not the model's: the step counter, moving-average shadows, optimizer slots.
_IGNORED = re.compile(r"^global_step$|/(ExponentialMovingAverage|RMSProp(_1)?|Momentum|Adam(_1)?)$")
# PyTorch-only buffers (BatchNorm's update counter).
_TORCH_ONLY = "num_batches_tracked"
_BATCH_NORM = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def ignored_variable(name: str) -> bool:
    """Whether a checkpoint variable is training state rather than a weight (skipped when reading)."""
    return bool(_IGNORED.search(name))


def _layer_scopes(model: SSDLiteMobileNetV2) -> dict[str, str]:
    """{module path of each conv -> BatchNorm layer, or bare conv: its variable scope in the checkpoint}."""
    scopes = {"stem": f"{BACKBONE}Conv", "head": f"{BACKBONE}Conv_1"}
    for index, block in enumerate(model.blocks):
        scope = f"{BACKBONE}expanded_conv" + (f"_{index}" if index else "")
        for part in ("expand", "depthwise", "project"):
            if getattr(block, part) is not None:
                scopes[f"blocks.{index}.{part}"] = f"{scope}/{part}"
    base = FEATURE_LAYERS[-1]
    for index, (reduce_ch, out_ch) in enumerate(model.config.extra_channels()):
        # multi_resolution_feature_maps numbers the extra maps after the two backbone ones (2 to 5).
        layer = f"{BACKBONE}{base}_2_Conv2d_{index + 2}_{KERNEL_SIZE}x{KERNEL_SIZE}_s2_{out_ch}"
        scopes[f"extras.{index}.reduce"] = f"{BACKBONE}{base}_1_Conv2d_{index + 2}_1x1_{reduce_ch}"
        scopes[f"extras.{index}.depthwise"] = f"{layer}_depthwise"
        scopes[f"extras.{index}.pointwise"] = layer
    for index in range(len(model.predictors)):
        for part, scope in (("box", "BoxEncodingPredictor"), ("class", "ClassPredictor")):
            scopes[f"predictors.{index}.{part}_depthwise"] = f"BoxPredictor_{index}/{scope}_depthwise"
            scopes[f"predictors.{index}.{'box_encoding' if part == 'box' else 'class_prediction'}"] = \
                f"BoxPredictor_{index}/{scope}"
    return scopes


def checkpoint_variable_names(model: SSDLiteMobileNetV2) -> dict[str, str]:
    """{state_dict key: checkpoint variable name} for every parameter and BatchNorm statistic of ``model``
    (``num_batches_tracked`` aside, which TF does not keep)."""
    modules = dict(model.named_modules())
    names: dict[str, str] = {}
    for path, scope in _layer_scopes(model).items():
        module = modules[path]
        if isinstance(module, nn.Conv2d):  # a predictor's 1x1: weights and biases, no BatchNorm
            names[f"{path}.weight"], names[f"{path}.bias"] = f"{scope}/weights", f"{scope}/biases"
            continue
        kind = "depthwise_weights" if module.conv.groups > 1 else "weights"
        names[f"{path}.conv.weight"] = f"{scope}/{kind}"
        for key, tf_name in _BATCH_NORM.items():
            names[f"{path}.bn.{key}"] = f"{scope}/BatchNorm/{tf_name}"
    missing = [k for k in model.state_dict() if k not in names and not k.endswith(_TORCH_ONLY)]
    if missing:  # a module the scopes above do not name: a bug in this table, not a user error
        raise AssertionError(f"no checkpoint name for {', '.join(missing)}")
    return names


def to_torch_layout(value: np.ndarray, depthwise: bool) -> np.ndarray:
    """A TF filter in PyTorch's layout: HWIO -> OIHW, depthwise H W C 1 -> C 1 H W; vectors unchanged."""
    if value.ndim != 4:
        return value
    return value.transpose(2, 3, 0, 1) if depthwise else value.transpose(3, 2, 0, 1)


def _torch_shape(shape: list[int], depthwise: bool) -> tuple[int, ...]:
    """``to_torch_layout``'s shape arithmetic, without reading the variable."""
    if len(shape) != 4:
        return tuple(shape)
    h, w, i, o = shape
    return (i, o, h, w) if depthwise else (o, i, h, w)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _open(prefix: str) -> tuple[Any, Any]:
    """(tensorflow, a CheckpointReader on ``prefix``: the path without .index / .data-*)."""
    try:
        from edgedeploy.core.logcapture import quiet_tensorflow_env

        quiet_tensorflow_env()
        import tensorflow as tf
    except ImportError:
        raise DependencyError("reading a TF checkpoint needs tensorflow: pip install 'edgedeploy[tflite]'") from None
    try:
        return tf, tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as exc:
        raise WeightsError(f"{prefix}: not a readable TF checkpoint ({_first_line(exc)})") from None


def read_tf_checkpoint(prefix: str | Path, config: SSDLiteMobileNetV2Config | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of ``config``'s network (default: Google's) holding the variables of the TF checkpoint at
    ``prefix`` (``.../model.ckpt``; its ``.index`` file's path is taken too). Every variable is checked by name and
    shape, and a checkpoint with weights this network does not have is refused (another architecture or width),
    all before any weight data is read."""
    prefix = re.sub(r"\.(index|data-\d+-of-\d+)$", "", str(prefix))
    model = SSDLiteMobileNetV2(config)
    name = model.config.name
    tf, reader = _open(prefix)
    shapes = reader.get_variable_to_shape_map()
    names = checkpoint_variable_names(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key, variable in names.items():
        if variable not in shapes:
            raise WeightsError(f"{prefix}: no variable {variable} ({key} of {name}): not this architecture's checkpoint")
        expected = tuple(state[key].shape)
        if _torch_shape(shapes[variable], variable.endswith("depthwise_weights")) != expected:
            raise WeightsError(f"{prefix}: variable {variable} has shape {list(shapes[variable])}, {key} of {name} "
                               f"needs {list(expected)} (transposed from TF's layout)")
    extra = sorted(set(shapes) - set(names.values()) - {v for v in shapes if ignored_variable(v)})
    if extra:
        raise WeightsError(f"{prefix}: {len(extra)} variable(s) {name} does not have (e.g. {extra[0]}): "
                           "not this architecture's checkpoint")
    for key, variable in names.items():
        try:
            value = np.asarray(reader.get_tensor(variable), dtype=np.float32)
        except tf.errors.OpError as exc:  # a missing or damaged .data file
            raise WeightsError(f"{prefix}: cannot read variable {variable} ({_first_line(exc)})") from None
        state[key] = torch.from_numpy(np.ascontiguousarray(to_torch_layout(value, variable.endswith("depthwise_weights"))))
    return state
