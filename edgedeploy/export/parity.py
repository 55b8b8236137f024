"""Parity: how closely an exported artifact reproduces PyTorch on real images.

What agrees is the task's argmax (edgedeploy.tasks): the top-1 class per image, or the class per pixel
of a dense output; the logit differences are over every output value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.backends.base import Runner
from edgedeploy.core.errors import ParityError
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.data.synthetic import synthetic_pil_images
from edgedeploy.export.targets import ParityTolerance
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.tasks import get_task

__all__ = ["ParityReport", "check_parity", "PARITY_SEED"]

PARITY_SEED = 0


@dataclass(frozen=True)
class ParityReport:
    images: int
    inputs: str
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    # What agreement counts: "top-1 agreement" (images) or "pixel agreement".
    agreement_of: str
    tolerance: ParityTolerance
    # The reference's runtime: torch, or onnxruntime for ONNX in.
    reference: str = "torch"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "images": self.images,
            "inputs": self.inputs,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "agreement": self.agreement,
            "agreement_of": self.agreement_of,
            "max_abs_diff_allowed": self.tolerance.max_abs_diff,
            "min_agreement_allowed": self.tolerance.min_agreement,
        }

    @property
    def _against(self) -> str:
        return "PyTorch" if self.reference == "torch" else "ONNX Runtime (the source model)"

    def verify(self, artifact: str) -> None:
        tol = self.tolerance
        if tol.max_abs_diff is not None and self.max_abs_diff > tol.max_abs_diff:
            raise ParityError(
                f"{artifact}: parity failed: max |logit diff| vs {self._against} {self.max_abs_diff:.3g} > "
                f"{tol.max_abs_diff:.3g} on {self.images} images"
            )
        if self.agreement < tol.min_agreement:
            raise ParityError(
                f"{artifact}: parity failed: {self.agreement_of} with {self._against} {self.agreement:.2f}% < "
                f"{tol.min_agreement:.2f}% on {self.images} images"
            )


@dataclass
class _RandomPixels(ImageSet):
    """Seeded random-pixel images of ``size`` x ``size`` standing in for a data set (each model
    preprocesses them its own way)."""

    size: int = 256

    def __iter__(self) -> Iterator[LabeledImage]:
        images = synthetic_pil_images(len(self.files), self.size, PARITY_SEED)
        for (path, _), image in zip(self.files, images):
            yield LabeledImage(path, None, image)


def check_parity(
    candidate: Runner, reference: Runner, data: ImageSet | None, images: int, tolerance: ParityTolerance
) -> ParityReport:
    """Compare ``candidate`` with ``reference`` on ``images`` real images (seeded sample of ``data``,
    labels unused).

    Without data, seeded random-pixel images are used and the report says so:
    still a sharp numeric check for float targets, a weak one for agreement.
    """
    if data is not None:
        dataset, inputs = data.unlabeled().subset(images, seed=PARITY_SEED), f"images from {data.root}"
    else:
        dataset = _RandomPixels(Path("."), [(Path(f"random-{i}"), None) for i in range(images)], "random pixels",
                                size=reference.io.preprocessing.resize)
        inputs = "random pixels (no parity data found)"
    res = evaluate(candidate, dataset, reference)
    assert res.max_abs_diff is not None and res.agreement is not None and res.mean_abs_diff is not None
    return ParityReport(res.n, inputs, res.max_abs_diff, res.mean_abs_diff, res.agreement,
                        get_task(reference.io.task).agreement_label, tolerance, reference.runtime)
