"""Learned rounding is portable: exported with ``--ptq adaround``, every route's converter stores exactly the
integers AdaRound chose (each artifact's dequantized weights equal the prepared model's, layer by layer and
channel by channel). Documented exceptions, both NNCF's (OpenVINO): the first convolution gets 7-bit weights
(its "overflow fix" for CPUs without VNNI), and a depthwise layer's weakest channels (max |w| below ~0.4x the
layer's median) get a larger scale of NNCF's choosing; both are re-rounded on NNCF's grid. And ONNX Runtime's
(onnx-int8): the channels whose 8-bit pair sums would saturate x86 kernels without VNNI get 7-bit weights
(ort_saturation.py), rounded to nearest on that grid."""

import numpy as np
import pytest

from edgedeploy.core.sample_data import CALIB_DIR
from edgedeploy.data.calibration import load_calibration
from edgedeploy.exporter.choices import PtqMethod
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.ptq import prepare
from edgedeploy.exporter.ptq.graph import weighted_layers
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.runtimes import LoadOptions, open_layer_taps
from edgedeploy.runtimes.torch.runner import TorchRunner

pytestmark = [pytest.mark.slow, pytest.mark.data]

# The off-grid weights (a float-trained model's rounding residual) at a small input: the integers AdaRound picks
# differ from nearest rounding, so each route must really keep them.
CONFIG = MobileNetV2Config(resolution=96)
WEIGHTS = "sample-offgrid"
CALIB = 16
ROUTES = {"tflite-int8": "onnx2tf", "onnx-int8": "onnxruntime", "openvino-int8": "openvino",
          "litert-int8": "litert_torch"}
# Layers a route re-quantizes on a grid of its own (index in forward order), and the share of a layer's median
# max |w| below which it may rescale a channel.
REQUANTIZED_LAYERS = {"openvino-int8": {0}}
WEAK_CHANNELS = {"openvino-int8": 0.4}
# Routes that may store a channel on a 7-bit grid (max |w| / 64) instead.
SEVEN_BIT = {"onnx-int8"}


def per_channel(weights: np.ndarray, axis: int) -> np.ndarray:
    """Each output channel's values, sorted: comparable whatever layout a runtime stores them in."""
    channels = np.moveaxis(weights, axis, 0)
    return np.sort(channels.reshape(channels.shape[0], -1), axis=1)


@pytest.fixture(scope="module")
def learned(data_root):
    """The weights AdaRound chooses for the model every route exports (the pipeline's own cached preparation)."""
    reference = TorchRunner(WEIGHTS, LoadOptions(threads=2, architecture=Architecture(resolution=CONFIG.resolution)))
    images = load_calibration(data_root / CALIB_DIR, reference.io.preprocessing, CALIB).images
    prepared, _ = prepare(reference.model, (PtqMethod.ADAROUND,), images, per_channel=True)
    return [per_channel(m.weight.detach().numpy(), 0) for _, m in weighted_layers(prepared)]


@pytest.mark.parametrize("target", list(ROUTES))
def test_each_route_stores_the_learned_integers(target, learned, tmp_path, data_root):
    pytest.importorskip(ROUTES[target], reason=f"{target} needs its extra")
    # NNCF's fast bias correction and 7-bit first layer (not in the host simulation) put openvino-int8 at 8.3 dB
    # from it at 96 px with AdaRound (100% top-1 agreement): this test is about the stored integers, not fidelity.
    result = export(ExportRequest(target=target, config=CONFIG, weights=WEIGHTS, out_dir=tmp_path, threads=2,
                                  calib_size=CALIB, ptq=("adaround",), parity_images=4, parity_min_agreement=0.0,
                                  parity_min_fidelity_db=0.0 if target == "openvino-int8" else None))
    assert result.details["ptq"]["methods"] == ["adaround"]
    stored = [per_channel(layer.weights, layer.weights_axis) for layer in open_layer_taps(str(result.path)).layers
              if layer.weights is not None]
    assert len(learned) == len(stored) == 53
    for index, (ours, theirs) in enumerate(zip(learned, stored)):
        if index in REQUANTIZED_LAYERS.get(target, set()):
            continue
        assert ours.shape == theirs.shape, f"{target}: layer {index}"
        ranges = np.abs(ours).max(axis=1)
        same = np.all(np.abs(theirs - ours) <= 1e-3 * ranges[:, None] / 127 + 1e-12, axis=1)
        weak = ranges < WEAK_CHANNELS.get(target, 0.0) * np.median(ranges)
        step = ranges[:, None] / 64
        seven = np.all(np.abs(theirs - np.round(ours / np.maximum(step, 1e-30)) * step) <= 1e-3 * step + 1e-12,
                       axis=1) & (target in SEVEN_BIT)
        assert np.all(same | weak | seven), f"{target}: layer {index}: channels {np.flatnonzero(~same)[:5]} differ"
