"""The int16 pair-sum count behind onnx-int8's 7-bit channels: exhaustive on every layer MobileNetV2, DeepLab and
the SSDs have, a seeded sample (same verdicts) on layers with more sums than MAX_PAIR_SUMS."""

import numpy as np

from edgedeploy.exporter.converters.onnxruntime import ort_saturation
from edgedeploy.exporter.converters.onnxruntime.ort_saturation import MAX_PAIR_SUMS, _overflow_fractions


def _layer(positions: int, k: int, channels: int = 6):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (positions, k), dtype=np.uint8)
    weights = rng.integers(-128, 128, (channels, k), dtype=np.int8)
    # Channel 0 never overflows (small weights), the others do at different rates.
    weights[0] = rng.integers(-30, 30, k)
    weights[1:] = (weights[1:] * np.linspace(0.6, 1.0, channels - 1)[:, None]).astype(np.int8)
    return codes, weights


def test_every_sum_is_counted_below_the_cap():
    codes, weights = _layer(512, 16)
    fractions = _overflow_fractions(codes, weights)
    a = codes.astype(np.int32).reshape(512, 8, 2)
    w = weights.astype(np.int32).reshape(len(weights), 8, 2)
    sums = np.einsum("pkt,okt->pok", a, w)
    exact = ((sums > 32767) | (sums < -32768)).mean(axis=(0, 2))
    np.testing.assert_array_equal(fractions, exact)
    assert fractions[0] == 0 and (fractions[1:] > 0).all()


def test_a_layer_past_the_cap_is_sampled_with_the_same_verdicts(monkeypatch):
    codes, weights = _layer(4096, 64)
    exhaustive = _overflow_fractions(codes, weights)
    monkeypatch.setattr(ort_saturation, "MAX_PAIR_SUMS", 2048 * 32)  # 2048 of the 4096 positions
    sampled = _overflow_fractions(codes, weights)
    assert MAX_PAIR_SUMS == 2**21
    # The rarest channel overflows on 0.08% of its sums: ~50 in the sample, so within 30%.
    assert sampled[0] == 0 and np.allclose(sampled[1:], exhaustive[1:], rtol=0.3)
    assert ((sampled > 1e-4) == (exhaustive > 1e-4)).all()
    np.testing.assert_array_equal(sampled, _overflow_fractions(codes, weights))  # seeded: the same sample
