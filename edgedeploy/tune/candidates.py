"""What ``tune`` tries for a target: its defaults, each other calibration method it offers, the PTQ methods
that prepare the PyTorch model, and (when nothing else fits the budget) the layers ``diagnose`` suggests
keeping in float. Each candidate is a set of target options, as a recipe's target section takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgedeploy.exporter.choices import PtqMethod
from edgedeploy.exporter.targets import Target

__all__ = ["Candidate", "default_candidates", "PTQ_CANDIDATES"]

# PTQ method sets tried, cheapest first: equalization alone (data-free), with bias correction, learned
# rounding alone (per-channel weights need no equalization), and all three.
PTQ_CANDIDATES: tuple[tuple[PtqMethod, ...], ...] = (
    (PtqMethod.CLE,),
    (PtqMethod.CLE, PtqMethod.BIAS_CORRECTION),
    (PtqMethod.ADAROUND,),
    (PtqMethod.CLE, PtqMethod.ADAROUND, PtqMethod.BIAS_CORRECTION),
)


@dataclass(frozen=True)
class Candidate:
    """A named set of target options (a recipe target section's fields)."""

    id: str
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in self.options.items()) \
            or "the target's defaults"


def default_candidates(target: Target, base: dict[str, Any]) -> list[Candidate]:
    """The candidates tried first, each on top of ``base`` (options the user fixed, e.g. weight granularity)."""
    found = [Candidate("default", dict(base))]
    for method in target.calib_methods[1:]:
        found.append(Candidate(f"calib-{method}", {**base, "calib_method": method.value}))
    for methods in PTQ_CANDIDATES:
        if all(m in target.ptq_methods for m in methods):
            found.append(Candidate("ptq-" + "-".join(m.value for m in methods),
                                   {**base, "ptq": [m.value for m in methods]}))
    return found
