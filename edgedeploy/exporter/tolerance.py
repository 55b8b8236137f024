"""What an exported artifact must meet against PyTorch on the parity images (edgedeploy.exporter.parity).

Float targets: the largest |logit difference| and the agreement with the float model. Quantized targets:
conversion fidelity (SQNR against the host simulation of their quantization) and a floor on agreement with
the float model that marks the model unusable, judged on the upper end of its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ParityTolerance", "FLOAT_PARITY", "FP16_PARITY", "QUANTIZED_PARITY", "MIN_FIDELITY_DB", "UNUSABLE_AGREEMENT"]

# Faithful int8 conversions of MobileNetV2 and DeepLab sit 16-27 dB from their host simulation, per-tensor
# collapse included; broken ones (wrong mean/std, swapped channels, a zeroed layer) at 6.3 dB and below
# (docs/int8.md has the table).
MIN_FIDELITY_DB = 10.0
# Below this agreement with the float model (even at the interval's upper end) an int8 model is unusable:
# per-tensor MobileNetV2 collapses to 5-7%; a usable int8 model agrees on 90% or more.
UNUSABLE_AGREEMENT = 50.0


@dataclass(frozen=True)
class ParityTolerance:
    """How close an artifact must stay to PyTorch on the parity images."""

    # Largest allowed |logit difference| (None: not checked, e.g. for int8 targets).
    max_abs_diff: float | None
    # Smallest allowed agreement, percent: the estimate for float targets, the interval's upper end for
    # quantized ones (a quantized model below it is unusable).
    min_agreement: float
    # Quantized targets: smallest SQNR (dB) of the artifact against its quantization simulated on the host.
    min_fidelity_db: float | None = None

    @property
    def quantized(self) -> bool:
        return self.min_fidelity_db is not None


QUANTIZED_PARITY = ParityTolerance(max_abs_diff=None, min_agreement=UNUSABLE_AGREEMENT, min_fidelity_db=MIN_FIDELITY_DB)
# fp32 kernels differ only in summation order: ~1e-5 on logits of magnitude ~20.
FLOAT_PARITY = ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0)
# fp16 rounding of weights moves logits by ~0.05; near-ties may flip.
FP16_PARITY = ParityTolerance(max_abs_diff=0.5, min_agreement=95.0)
