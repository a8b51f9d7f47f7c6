"""What a finished run's results say in words, decided from its numbers once, so a page's
headline, table and warnings cannot contradict each other.

Invariants:
- A difference is a change only if it shows at the display's precision (`digits` decimals,
  chosen so the smallest score shows at least three significant digits): anything smaller
  is "no change", never "better" or "worse".
- Hospitals tie for best when their final scores agree at that precision; the headline then
  names no single best hospital.
- Why a hospital ended worse is said from the run's settings: under differential privacy it
  is the noise (with its spread when measured), otherwise the hospitals' own data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_DIGITS = 10
SIGNIFICANT = 3
Effect = str
""""better", "worse" or "no change"."""


def display_digits(values: Sequence[float], base: int) -> int:
    """Decimals that show every finite value in `values` with at least three significant
    digits (never fewer than `base`, never more than `MAX_DIGITS`)."""
    small = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not small:
        return base
    needed = SIGNIFICANT - 1 - math.floor(math.log10(min(small)))
    return int(min(MAX_DIGITS, max(base, needed)))


@dataclass(frozen=True)
class Headline:
    digits: int
    """Decimals every score of the run is shown with."""
    mean_local: float
    mean_federated: float
    change: float | None
    """mean federated − mean local, or None when it does not show at `digits` decimals."""
    best: tuple[int, ...]
    """Hospital numbers (1-based) with the lowest final federated score; several = a tie."""
    best_score: float
    effects: tuple[Effect, ...]
    """Per hospital: what federation did to its test score."""
    worse_pct: tuple[tuple[int, float], ...]
    """(hospital number, change in % of its local score) for each hospital made worse."""
    unchanged: str | None
    """When federation changed no hospital's score visibly: why, from the run's numbers."""

    @property
    def tolerance(self) -> float:
        return 0.5 * 10.0**-self.digits

    @property
    def tied(self) -> bool:
        return len(self.best) > 1

    def best_title(self, hospitals: int) -> str:
        """The title of the best final score, as the Training page and the handout give it."""
        if not self.tied:
            return f"Best hospital after federation (Hospital {self.best[0]})"
        who = "Every hospital" if len(self.best) == hospitals else "Best hospitals"
        return f"{who} after federation ({len(self.best)} tied)"


def headline(
    local: Sequence[float],
    federated: Sequence[float],
    base_digits: int,
    averages: Sequence[Sequence[float]] = (),
    learning_rate: float = 0.0,
) -> Headline:
    """The results' verdicts from the final local and federated scores (lower is better);
    `averages` (the broadcast average gradients) and `learning_rate` explain a run that
    changed nothing."""
    digits = display_digits([*local, *federated], base_digits)
    tol = 0.5 * 10.0**-digits
    effects = tuple(
        "no change" if not abs(lo - fe) >= tol else "better" if fe < lo else "worse"
        for lo, fe in zip(local, federated, strict=True)
    )
    mean_local = float(np.mean(local))
    mean_fed = float(np.mean(federated))
    change = mean_fed - mean_local if abs(mean_fed - mean_local) >= tol else None
    best_score = float(min(federated))
    best = tuple(i + 1 for i, v in enumerate(federated) if v - best_score < tol)
    worse = tuple(
        (i + 1, 100.0 * (fe - lo) / abs(lo) if lo else math.inf)
        for i, (lo, fe, e) in enumerate(zip(local, federated, effects, strict=True))
        if e == "worse"
    )
    unchanged = None
    if all(e == "no change" for e in effects):
        largest = float(np.max(np.abs(np.asarray(averages)))) if len(averages) else 0.0
        step = learning_rate * largest
        unchanged = (
            f"the broadcast average gradient never had an entry larger than {largest:.2g}, so each round "
            f"moved the weights by at most η·{largest:.2g} = {step:.2g}"
            + (
                ": the hospitals' local models already sat where the pooled gradient is (nearly) zero"
                if step < 1e-6
                else ", in directions that hardly change the test score"
            )
        )
    return Headline(digits, mean_local, mean_fed, change, best, best_score, effects, worse, unchanged)


def fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"
