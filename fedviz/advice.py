"""What learning rate would work: the largest one the plaintext preflight accepts, and the
sentence a UI or the command line shows when it refuses one.

`largest_stable_learning_rate` searches on the grid of two-significant-digit numbers
(0.013, 0.014, ..., 0.099, 0.10, 0.11, ...). Divergence is monotone in the learning rate
in practice (beyond the stability limit each round multiplies the error by |1 - eta*lambda|,
which grows with eta), so a bracket and a bisection find the last grid value that passes.

The search runs on a vectorised copy of `preflight`'s arithmetic (all hospitals in one array;
about 40 ms for 78 hospitals and 1000 rounds where `preflight` itself takes seconds), and the
answer is then checked with `fedviz.engines.inprocess.preflight` itself: what is suggested
always passes the engine's own prediction. Should the two ever disagree, the search steps
down with `preflight` alone (a bounded number of calls).
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache

import numpy as np

from fedviz.config import Config
from fedviz.data import prepared
from fedviz.engines.inprocess import planned_codec, preflight
from fedviz.errors import TrainingDiverged
from fedviz.models import for_kind, linear

DIGITS = 2
"""Significant digits of a suggested learning rate."""
_LEAD: int = 10 ** (DIGITS - 1)
"""The smallest mantissa: 10 (grid values are 10..99 times a power of ten)."""
_STEPS = 9 * _LEAD
"""Grid values per decade: 90."""
_LOWEST_DECADE = -30
"""The search gives up below 1e-30 (no valid setting diverges there: the first gradients
are about 1e3)."""
_HIGHEST_DECADE = 300
_MAX_VERIFY_CALLS = 6
"""`preflight` calls allowed when checking the answer (1 unless the copy disagrees)."""


def largest_stable_learning_rate(config: Config) -> float:
    """The largest learning rate with two significant digits (rounded down, so it is safe)
    for which `preflight` predicts no divergence, the other settings unchanged; 0.0 if none
    above 1e-30 does (no valid configuration does that)."""
    return _largest(replace(config, learning_rate=1.0))


def refusal(config: Config, problem: TrainingDiverged) -> str:
    """The sentence that refuses `config`'s learning rate, given the divergence `problem`
    that `preflight` (or a run) reported, with what would work instead, e.g. "Learning rate
    0.02 makes training diverge (federated round 39: the gradients grow beyond what the
    encryption can hold). Use at most 0.016." """
    where = f"{problem.phase} round {problem.round}" if problem.round > 0 else problem.phase
    what = _WHY.get(problem.cause, "the numbers grow out of range")
    sentence = f"Learning rate {format_rate(config.learning_rate)} makes training diverge ({where}: {what})."
    best = largest_stable_learning_rate(config)
    if best <= 0:
        return f"{sentence} No learning rate works with these settings."
    if best >= config.learning_rate:
        return f"{sentence} Try a smaller learning rate."
    return f"{sentence} Use at most {format_rate(best)}."


_WHY = {
    "encoding": "the gradients grow beyond what the encryption can hold",
    "non-finite": "the weights grow beyond the largest number a computer can store",
}


def format_rate(value: float) -> str:
    """A learning rate as people write it: 0.013, 3.3, 1e6, 1.5e-7 (up to 6 digits)."""
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


# --------------------------------------------------------------------------- the search


def grid_value(index: int) -> float:
    """The `index`-th two-digit number: index 0 is 1.0, 1 is 1.1, ..., 89 is 9.9, 90 is 10,
    -1 is 0.99; exactly the float nearest the decimal (so 0.013 prints as 0.013)."""
    decade, step = divmod(index, _STEPS)
    return float(Decimal(_LEAD + step).scaleb(decade - (DIGITS - 1)))


def grid_index_at_most(value: float) -> int:
    """The index of the largest grid value <= `value` (value > 0)."""
    decade = math.floor(math.log10(value))
    index = decade * _STEPS + int(value / 10.0**decade * _LEAD) - _LEAD
    while grid_value(index) > value:  # log10 and the division may be off by one ulp
        index -= 1
    while grid_value(index + 1) <= value:
        index += 1
    return index


@lru_cache(maxsize=64)
def _largest(config: Config) -> float:
    model = _Model(config)
    start = grid_index_at_most(model.stable_below())

    def passes(index: int) -> bool:
        return model.first_failure(grid_value(index)) is None

    # Bracket: lo passes, hi fails (decade steps from the classical stability limit).
    lo = start
    while not passes(lo):
        lo -= _STEPS
        if lo < _LOWEST_DECADE * _STEPS:
            return 0.0
    hi = lo + _STEPS
    while passes(hi):
        lo, hi = hi, hi + _STEPS
        if hi > _HIGHEST_DECADE * _STEPS:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return _verified(config, lo)


def _verified(config: Config, index: int) -> float:
    """The grid value at `index` if `preflight` accepts it, else the largest below it that
    `preflight` accepts (steps 1, 2, 4, ... grid values down; never expected to be needed)."""
    step = 1
    for _ in range(_MAX_VERIFY_CALLS):
        value = grid_value(index)
        if preflight(replace(config, learning_rate=value)) is None:
            return value
        index -= step
        step *= 2
    return 0.0


class _Model:
    """`preflight`'s plaintext arithmetic with the hospitals stacked in arrays (equal blocks,
    linear model: the common case, vectorised) or one hospital at a time (any other)."""

    def __init__(self, config: Config) -> None:
        data = prepared(config)
        self.model = for_kind(config.model)
        self.stacked = config.model == "linear" and len(set(data.patients)) == 1
        self.blocks = list(zip(data.hospital_X, data.hospital_y, strict=True))
        if self.stacked:
            self.X = np.stack(data.hospital_X)  # (hospitals, patients, features)
            self.y = np.stack(data.hospital_y)
            self.XT = self.X.transpose(0, 2, 1).copy()
        self.mean = config.gradient == "mean"
        self.mode = config.gradient
        self.rounds = config.rounds
        self.warm_start = config.warm_start
        self.dims = data.dims
        self.limit = planned_codec(config, data.dims).max_abs

    def gradients(self, weights: np.ndarray) -> np.ndarray:
        if not self.stacked:
            return np.array(
                [
                    self.model.gradient(w, X, y, self.mode)
                    for w, (X, y) in zip(weights, self.blocks, strict=True)
                ]
            )
        delta = (self.X @ weights[:, :, None])[:, :, 0] - self.y
        g = (self.XT @ delta[:, :, None])[:, :, 0]
        out: np.ndarray = g / self.X.shape[1] if self.mean else g  # model.gradient's arithmetic
        return out

    def stable_below(self) -> float:
        """2 / the largest curvature of any hospital's loss: below it no phase can grow (the
        log-loss curves at most a quarter as much as the squared error)."""
        share = 0.25 if self.model is not linear else 1.0
        worst = 0.0
        for X, _ in self.blocks:
            curvature = share * float(np.linalg.eigvalsh(X.T @ X)[-1])
            worst = max(worst, curvature / len(X) if self.mean else curvature)
        return 2.0 / worst

    def first_failure(self, eta: float) -> tuple[str, int] | None:
        """(phase, round) of the first divergence `preflight` would report, or None."""
        weights = np.zeros((len(self.blocks), self.dims))
        with np.errstate(all="ignore"):
            for r in range(1, self.rounds + 1):
                weights = weights - eta * self.gradients(weights)
                if not np.isfinite(weights).all():
                    return ("local", r)
            if not self.warm_start:
                weights = np.zeros_like(weights)
            for r in range(1, self.rounds + 1):
                g = self.gradients(weights)
                if not (np.abs(g) <= self.limit).all():  # also catches nan
                    return ("federated", r)
                weights = weights - eta * g.mean(axis=0)
                if not np.isfinite(weights).all():
                    return ("federated", r)
        return None
