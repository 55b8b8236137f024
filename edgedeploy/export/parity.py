"""Parity: how closely an exported artifact reproduces PyTorch on real images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgedeploy.backends.base import Runner
from edgedeploy.core.errors import ParityError
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.data.synthetic import synthetic_images
from edgedeploy.export.targets import ParityTolerance
from edgedeploy.measure.evaluate import MetricAccumulator, evaluate

__all__ = ["ParityReport", "check_parity", "PARITY_SEED"]

PARITY_SEED = 0


@dataclass(frozen=True)
class ParityReport:
    images: int
    inputs: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    tolerance: ParityTolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": "torch",
            "images": self.images,
            "inputs": self.inputs,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "top1_agreement": self.top1_agreement,
            "max_abs_diff_allowed": self.tolerance.max_abs_diff,
            "min_agreement_allowed": self.tolerance.min_agreement,
        }

    def verify(self, artifact: str) -> None:
        tol = self.tolerance
        if tol.max_abs_diff is not None and self.max_abs_diff > tol.max_abs_diff:
            raise ParityError(
                f"{artifact}: parity failed: max |logit diff| vs PyTorch {self.max_abs_diff:.3g} > "
                f"{tol.max_abs_diff:.3g} on {self.images} images"
            )
        if self.top1_agreement < tol.min_agreement:
            raise ParityError(
                f"{artifact}: parity failed: top-1 agreement with PyTorch {self.top1_agreement:.2f}% < "
                f"{tol.min_agreement:.2f}% on {self.images} images"
            )


def check_parity(
    candidate: Runner, reference: Runner, data: ImageFolder | None, images: int, tolerance: ParityTolerance
) -> ParityReport:
    """Compare ``candidate`` with ``reference`` on ``images`` real images (seeded sample of ``data``).

    Without data, seeded random-pixel images are used and the report says so:
    still a sharp numeric check for float targets, a weak one for top-1 agreement.
    """
    if data is not None:
        res = evaluate(candidate, data.subset(images, seed=PARITY_SEED), reference)
        inputs = f"images from {data.root}"
    else:
        acc = MetricAccumulator()
        # The same random images, each preprocessed as its model expects (they may differ: raw pixels).
        acc.update(candidate.predict(synthetic_images(candidate.io.preprocessing, images, seed=PARITY_SEED)), [None] * images,
                   reference.predict(synthetic_images(reference.io.preprocessing, images, seed=PARITY_SEED)))
        res = acc.result(0, 0.0, with_reference=True)
        inputs = "random pixels (no parity data found)"
    assert res.max_abs_diff is not None and res.agreement is not None and res.mean_abs_diff is not None
    return ParityReport(res.n, inputs, res.max_abs_diff, res.mean_abs_diff, res.agreement, tolerance)
