"""Input/output specs for third-party models that come without a manifest."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.core.errors import ConfigError, InputFileError
from edgedeploy.core.io_spec import InputSpec, ModelIO, OutputSpec, Preprocessing, Quantization
from edgedeploy.runtimes.base import LoadOptions

__all__ = ["infer_model_io"]

# TF-slim classifiers have 1001 outputs: index 0 is "background".
BACKGROUND_CLASSES = 1001


def infer_model_io(
    path: Path,
    input_name: str,
    input_shape: tuple[int, ...],
    input_dtype: str,
    output_name: str,
    num_outputs: int,
    output_is_softmax: bool,
    options: LoadOptions,
    input_quantization: Quantization | None = None,
    output_dtype: str = "float32",
    output_quantization: Quantization | None = None,
) -> ModelIO:
    """Derive how to feed a model from its graph alone, plus explicit user options.

    Layout comes from where the 3 channels sit; float inputs need explicit
    ``--mean/--std`` (guessing normalization silently is the classic way to lose
    20 points of accuracy); integer inputs take raw pixels unless told otherwise.
    """
    if len(input_shape) != 4 or 3 not in (input_shape[1], input_shape[3]):
        raise InputFileError(f"{path}: input {input_name!r} has shape {list(input_shape)}; expected an RGB image tensor")
    layout = "NCHW" if input_shape[1] == 3 else "NHWC"
    height, width = (input_shape[2], input_shape[3]) if layout == "NCHW" else (input_shape[1], input_shape[2])
    if height != width or height <= 0:
        raise InputFileError(f"{path}: input {input_name!r} is {height}x{width}; expected a fixed square image")
    integer_input = input_dtype in ("uint8", "int8")
    if options.mean is not None and options.std is not None:
        preprocessing = Preprocessing.for_resolution(height, options.mean, options.std, options.raw_pixels)
    elif options.raw_pixels or (integer_input and input_quantization is None) or input_dtype == "uint8":
        preprocessing = Preprocessing.for_resolution(height, raw_pixels=True)
    else:
        raise ConfigError(
            f"{path.name} has no manifest ({path.name}.manifest.json): pass --mean and --std "
            "(e.g. --mean 0.5 0.5 0.5 --std 0.5 0.5 0.5) or --raw-pixels"
        )
    if preprocessing.raw_pixels:
        # Raw pixels go in as they are: the model's own input quantization is folded into it.
        input_quantization = None
    return ModelIO(
        input=InputSpec(input_name, input_shape, input_dtype, layout, input_quantization),
        output=OutputSpec(
            output_name,
            num_outputs - 1 if num_outputs == BACKGROUND_CLASSES else num_outputs,
            background_class=num_outputs == BACKGROUND_CLASSES,
            probabilities=output_is_softmax,
            dtype=output_dtype,
            quantization=output_quantization,
        ),
        preprocessing=preprocessing,
    )
