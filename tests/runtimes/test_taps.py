"""Per-layer outputs read from real artifacts of every runtime, in graph order."""

import numpy as np
import pytest

from edgedeploy.core.errors import ConfigError
from edgedeploy.data.preprocess import preprocess
from edgedeploy.runtimes import LoadOptions, load_runner, open_layer_taps


def _image(val_dir, spec):
    from PIL import Image

    return preprocess(Image.open(next(val_dir.glob("*/*.JPEG"))).convert("RGB"), spec)


def test_tflite_int8_and_fp32_have_the_same_layers(tflite_int8, tflite_fp32):
    q, f = open_layer_taps(str(tflite_int8.path)), open_layer_taps(str(tflite_fp32.path))
    assert [layer.op for layer in q.layers] == [layer.op for layer in f.layers] and len(q.layers) == 69
    assert all(layer.quantizer is not None for layer in q.layers) and all(layer.quantizer is None for layer in f.layers)
    weighted = [layer for layer in q.layers if layer.weights is not None]
    assert len(weighted) == 53 and q.layers[1].inputs == (q.layers[0].key,)


def test_the_last_tflite_layer_is_the_model_output(tflite_int8, val_dir):
    taps = open_layer_taps(str(tflite_int8.path))
    image = _image(val_dir, taps.io.preprocessing)
    logits = taps.run(image)[taps.layers[-1].key].ravel()
    runner = load_runner(str(tflite_int8.path), LoadOptions(xnnpack=False))
    assert np.allclose(logits, runner.predict(image[None])[0], atol=1e-5)


def test_onnx_layers_end_in_the_logits(onnx_artifact, val_dir):
    taps = open_layer_taps(str(onnx_artifact.path))
    assert taps.layers[-1].key == "logits" and taps.layers[0].op == "Conv" and taps.layers[0].weights.shape == (32, 3, 3, 3)
    image = _image(val_dir, taps.io.preprocessing)
    runner = load_runner(str(onnx_artifact.path), LoadOptions())
    assert np.allclose(taps.run(image)["logits"].ravel(), runner.predict(image[None])[0], atol=1e-4)


def test_openvino_layers_are_tapped_with_their_inputs(openvino_fp32, val_dir):
    taps = open_layer_taps(str(openvino_fp32.path))
    assert len(taps.layers) == 153 and taps.layers[0].op == "Parameter" and taps.layers[-1].key == "logits"
    assert sum(layer.weights is not None for layer in taps.layers) == 53
    assert taps.layers[1].inputs == ("input",) and taps.layers[2].inputs == (taps.layers[1].key,)
    out = taps.run(_image(val_dir, taps.io.preprocessing))
    assert out[taps.layers[1].key].shape == (1, 32, 112, 112)
    runner = load_runner(str(openvino_fp32.path), LoadOptions())
    image = _image(val_dir, taps.io.preprocessing)
    assert np.allclose(taps.run(image)["logits"].ravel(), runner.predict(image[None])[0], atol=1e-4)


def test_weights_files_have_no_layers():
    with pytest.raises(ConfigError, match="per-layer outputs are not offered for torch models"):
        open_layer_taps("sample")
