"""Parity: how an exported artifact compares with PyTorch on real images, as two checks that fail for
different reasons.

- *Conversion fidelity*: does the artifact compute what it should? A float artifact is compared with the
  float model (largest |logit difference|). A quantized artifact is compared with its own quantization
  simulated on the host (edgedeploy.exporter.simulation: the source model with int8 weights on the grid every
  converter uses and int8 activations calibrated on the same images), as an SQNR in dB. A faithful
  conversion stays close to that simulation however lossy the quantization is (per-tensor MobileNetV2, 6%
  agreement with float, is 20 dB from its simulation); a wrong layout, normalization, operator or a broken
  converter is not (measured: docs/int8.md).
- *Quantization cost*: agreement with the float model (the task's argmax: top-1 per image or class per
  pixel) and the logit differences, with a bootstrap interval over the images. For a quantized artifact it
  fails only when even the interval's upper end is below the floor that marks the model unusable; how much
  accuracy a user can give away is their call (``--max-drop`` with ``--val``, or ``edgedeploy tune``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import DataError, ParityError
from edgedeploy.core.io_spec import Outputs, Preprocessing
from edgedeploy.core.outputs import output_arrays
from edgedeploy.core.stats import Interval
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.data.preprocess import preprocess
from edgedeploy.data.synthetic import synthetic_pil_images
from edgedeploy.exporter.tolerance import ParityTolerance
from edgedeploy.measure.evaluate import accumulate
from edgedeploy.measure.reference_cache import reference_outputs
from edgedeploy.runtimes.base import Runner
from edgedeploy.tasks import get_task

__all__ = ["ParityReport", "FidelityReport", "check_parity", "PARITY_SEED", "sqnr_db"]

PARITY_SEED = 0
# SQNR reported for outputs that match exactly (JSON has no infinity).
_EXACT_DB = 150.0
# How much closer to its simulation than to the float model a conversion below the fidelity floor must be (dB).
CLOSER_MARGIN_DB = 3.0
# How far below the fidelity floor such a conversion may sit (dB).
BELOW_FLOOR_DB = 5.0
# Outputs whose spread over the classes is below this (absolute, or 1e-4 of their size) are flat.
_FLAT_OUTPUTS = 1e-6


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise), capped for exact matches."""
    return _EXACT_DB if noise <= 0 else round(min(_EXACT_DB, 10 * math.log10(max(signal, 1e-30) / noise)), 3)


@dataclass(frozen=True)
class FidelityReport:
    """The artifact against its quantization simulated on the host, on the parity images."""

    sqnr_db: float
    agreement: float
    max_abs_diff: float
    simulation: str
    # The same SQNR against the float model: a faithful artifact is closer to its simulation than to float.
    float_sqnr_db: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"against": self.simulation, "sqnr_db": self.sqnr_db, "agreement": self.agreement,
                "max_abs_diff": self.max_abs_diff, "sqnr_vs_float_db": self.float_sqnr_db}

    def faithful(self, floor: float) -> bool:
        """At the floor or above; or within 5 dB below it and at least 3 dB closer to the simulation than to
        the float model (a route whose own choices, e.g. NNCF's 7-bit first layer or its range estimator,
        move it off the simulation, while a broken conversion is as far from one as from the other)."""
        return self.sqnr_db >= floor or (self.sqnr_db >= floor - BELOW_FLOOR_DB
                                         and self.sqnr_db >= self.float_sqnr_db + CLOSER_MARGIN_DB)


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
    # The agreement's bootstrap interval over the images (None: fewer than two images).
    agreement_interval: Interval | None = None
    # Quantized artifacts: the fidelity check against the host simulation (None: float, or not simulated).
    fidelity: FidelityReport | None = None
    # Why a quantized artifact has no fidelity figure.
    fidelity_skipped: str | None = field(default=None)
    # A model with several outputs: each output's differences, checked against the tolerance one by one.
    outputs: dict[str, dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "images": self.images,
            "inputs": self.inputs,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "agreement": self.agreement,
            "agreement_of": self.agreement_of,
            "agreement_interval": self.agreement_interval.to_dict() if self.agreement_interval else None,
            "max_abs_diff_allowed": self.tolerance.max_abs_diff,
            "min_agreement_allowed": self.tolerance.min_agreement,
            "min_agreement_judged_on": "interval upper end" if self.tolerance.quantized else "estimate",
            "fidelity": (self.fidelity.to_dict() if self.fidelity else
                         {"skipped": self.fidelity_skipped} if self.fidelity_skipped else None),
            "min_fidelity_db_allowed": self.tolerance.min_fidelity_db,
            **({"outputs": self.outputs} if self.outputs else {}),
        }

    @property
    def _against(self) -> str:
        return "PyTorch" if self.reference == "torch" else "ONNX Runtime (the source model)"

    @property
    def _interval(self) -> str:
        i = self.agreement_interval
        return f" (95% CI [{i.low:.1f}, {i.high:.1f}])" if i else ""

    def enforce(self, artifact: str) -> None:
        """Raise ParityError naming the check that failed: fidelity first (a broken conversion makes the
        cost meaningless), then the cost."""
        tol = self.tolerance
        fidelity = self.fidelity
        # NaN compares false with every bound: without this a NaN output would pass every check below.
        figures = [self.max_abs_diff, self.mean_abs_diff,
                   *(value for diffs in (self.outputs or {}).values() for value in diffs.values())]
        if not all(math.isfinite(value) for value in figures):
            raise ParityError(
                f"{artifact}: parity failed: the outputs are not finite (NaN or infinity) on {self.images} images, "
                f"in the artifact or in {self._against} (the model itself): nothing can be compared")
        if fidelity is not None and tol.min_fidelity_db is not None and not fidelity.faithful(tol.min_fidelity_db):
            raise ParityError(
                f"{artifact}: conversion fidelity failed: the artifact is {fidelity.sqnr_db:.1f} dB from its own "
                f"quantization simulated on the host (< {tol.min_fidelity_db:.1f} dB, and no closer to it than to the "
                f"float model: {fidelity.float_sqnr_db:.1f} dB; {self.agreement_of} {fidelity.agreement:.1f}%) on "
                f"{self.images} images: the conversion computes something else (layout, normalization, an operator "
                "or the converter), not just a lossy int8 model")
        for name, diffs in (self.outputs or {"": {"max_abs_diff": self.max_abs_diff}}).items():
            if tol.max_abs_diff is not None and diffs["max_abs_diff"] > tol.max_abs_diff:
                what = f"output {name}" if name else "logit"
                raise ParityError(
                    f"{artifact}: parity failed: max |{what} diff| vs {self._against} {diffs['max_abs_diff']:.3g} > "
                    f"{tol.max_abs_diff:.3g} on {self.images} images"
                )
        if tol.quantized:
            high = self.agreement_interval.high if self.agreement_interval else self.agreement
            if high < tol.min_agreement:
                raise ParityError(
                    f"{artifact}: quantization cost: {self.agreement_of} with {self._against} {self.agreement:.2f}%"
                    f"{self._interval} on {self.images} images is below the {tol.min_agreement:.0f}% that marks a "
                    f"model unusable (try --weight-granularity per-channel, --ptq, or edgedeploy tune)")
        elif self.agreement < tol.min_agreement:
            raise ParityError(
                f"{artifact}: parity failed: {self.agreement_of} with {self._against} {self.agreement:.2f}% < "
                f"{tol.min_agreement:.2f}% on {self.images} images"
            )


@dataclass
class _RandomPixels(ImageSet):
    """Seeded random-pixel images of ``size`` x ``size`` standing in for a data set (each model
    preprocesses them its own way)."""

    size: int = 256
    from_files = False

    def __iter__(self) -> Iterator[LabeledImage]:
        images = synthetic_pil_images(len(self.files), self.size, PARITY_SEED)
        for (path, _), image in zip(self.files, images):
            yield LabeledImage(path, None, image)


class _FidelitySums:
    """Streams the artifact's outputs against the simulation's on the same images (SQNR, agreement), per output:
    a model with several outputs (a detector's boxes and scores) is as faithful as its least faithful one."""

    def __init__(self, simulation: Runner, reference: Runner, cached: bool):
        self.simulation, self.reference, self.cached = simulation, reference, cached
        self.sums: dict[str, dict[str, float]] = {}
        self.max_abs = 0.0
        self.agree = self.compared = 0

    def add(self, scores: Outputs, batch: list[LabeledImage]) -> None:
        def inputs(spec: Preprocessing) -> np.ndarray:
            return np.stack([preprocess(item.image, spec) for item in batch])

        expected = output_arrays(self.simulation.predict(inputs(self.simulation.io.preprocessing)))
        # The float outputs come from (and go to) the reference cache: the parity pass reads them back.
        floats = output_arrays(reference_outputs(self.reference, batch, inputs, self.cached))
        got = output_arrays(scores)
        for name, values in got.items():
            if expected[name].shape != values.shape:
                raise DataError(f"the artifact's outputs {values.shape[1:]} and its simulation's "
                                f"{expected[name].shape[1:]} differ in shape")
            sums = self.sums.setdefault(name, dict.fromkeys(("signal", "noise", "energy", "values", "float_signal",
                                                             "float_noise"), 0.0))
            sums["float_signal"] += _centred_energy(floats[name])
            sums["float_noise"] += _centred_energy(values.astype(np.float64) - floats[name])
            # Centred over the last axis (classes), signal and error alike: a constant offset of every logit
            # changes no prediction (softmax, argmax) and is not an error.
            sums["signal"] += _centred_energy(expected[name])
            sums["noise"] += _centred_energy(values.astype(np.float64) - expected[name])
            sums["energy"] += float(np.square(expected[name], dtype=np.float64).sum())
            sums["values"] += expected[name].size
            self.max_abs = max(self.max_abs, float(np.abs(values - expected[name]).max()))
        # Agreement on the class scores: the model's last output (a detector's per-anchor class logits).
        last = list(got)[-1]
        agree = got[last].argmax(-1) == expected[last].argmax(-1)
        self.agree += int(agree.sum())
        self.compared += agree.size

    @property
    def degenerate(self) -> bool:
        """Outputs that do not vary across classes (an untrained model's): an SQNR against them means nothing."""
        return any(bool(np.sqrt(s["signal"] / max(s["values"], 1)) <= max(_FLAT_OUTPUTS, 1e-4 * np.sqrt(
            s["energy"] / max(s["values"], 1)))) for s in self.sums.values())

    def report(self, name: str) -> FidelityReport:
        worst = min(self.sums.values(), key=lambda s: sqnr_db(s["signal"], s["noise"]))
        return FidelityReport(sqnr_db(worst["signal"], worst["noise"]),
                              round(100.0 * self.agree / max(self.compared, 1), 4), self.max_abs, name,
                              sqnr_db(worst["float_signal"], worst["float_noise"]))


def _centred_energy(values: np.ndarray) -> float:
    centred = values.astype(np.float64) - values.mean(axis=-1, keepdims=True)
    return float(np.square(centred).sum())


def check_parity(
    candidate: Runner, reference: Runner, data: ImageSet | None, images: int, tolerance: ParityTolerance,
    simulation: Runner | None = None, simulation_skipped: str | None = None,
) -> ParityReport:
    """Compare ``candidate`` with ``reference`` (and, for a quantized artifact, with ``simulation``) on
    ``images`` real images (seeded sample of ``data``, labels unused).

    Without data, seeded random-pixel images are used and the report says so:
    still a sharp numeric check for float targets, a weak one for agreement.
    """
    if data is not None:
        dataset, inputs = data.unlabeled().subset(images, seed=PARITY_SEED), f"images from {data.root}"
    else:
        dataset = _RandomPixels(Path("."), [(Path(f"random-{i}"), None) for i in range(images)], "random pixels",
                                size=reference.io.preprocessing.resize)
        inputs = "random pixels (no parity data found)"
    fidelity = _FidelitySums(simulation, reference, dataset.from_files) if simulation is not None else None
    acc = accumulate(candidate, dataset, reference, on_scores=fidelity.add if fidelity else None)
    res = acc.result(0, 0.0, True)
    assert res.max_abs_diff is not None and res.agreement is not None and res.mean_abs_diff is not None
    task = get_task(reference.io.task)
    interval = task.agreement_interval(acc.records(), 0.95) if res.n > 1 else None
    if fidelity is not None and fidelity.degenerate:
        fidelity, simulation_skipped = None, ("the simulated outputs barely vary across classes (an untrained model?): "
                                              "their SQNR means nothing")
    return ParityReport(res.n, inputs, res.max_abs_diff, res.mean_abs_diff, res.agreement, task.agreement_label,
                        tolerance, reference.runtime, interval,
                        fidelity.report(getattr(simulation, "describe", "host simulation")) if fidelity else None,
                        simulation_skipped, res.metrics.get("output_diffs") or None)
