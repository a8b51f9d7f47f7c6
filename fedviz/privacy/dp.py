"""Record-level differential privacy for the federated phase, accounted with Google's
`dp-accounting` (Rényi DP accountant).

The mechanism (the Gaussian mechanism inside the encrypted sum):
- each hospital clips every patient's gradient to L2 norm at most `clip` (C) and sums them;
- it adds its share of the noise, N(0, (zC)^2 / n) per coordinate, drawn from the operating
  system's CSPRNG, before encrypting; no one ever decrypts a hospital's share alone;
- the decrypted total therefore carries N(0, (zC)^2): one patient moves it by at most C, so
  each round is a Gaussian mechanism with noise multiplier z, composed over the federated
  rounds (every patient in every round: no subsampling).

Invariants:
- `noise_multiplier(epsilon, delta, rounds)` is the smallest z (to the accountant's tolerance)
  whose composed (epsilon', delta) has epsilon' <= epsilon.
- A coalition of k hospitals knows its own k noise shares: against it only (n - k) / n of
  the variance is left, i.e. noise multiplier z * sqrt((n - k) / n) (`coalition_epsilons`).
- The guarantee needs the federated rounds to start from weights that do not depend on
  private data (cold start): a local model depends on every patient of its hospital.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from fedviz.models import linear

Noise = Callable[[float, int], np.ndarray]
"""Draws `dims` independent N(0, sigma^2) values: `noise(sigma, dims)`."""

_SYSTEM = random.SystemRandom()


def system_noise(sigma: float, dims: int) -> np.ndarray:
    """Gaussian noise from the operating system's CSPRNG (`os.urandom`), fresh every call."""
    return np.array([_SYSTEM.gauss(0.0, sigma) for _ in range(dims)])


@dataclass(frozen=True)
class DpPlan:
    """What every hospital agrees before the federated phase (all public)."""

    epsilon: float
    delta: float
    clip: float
    noise_multiplier: float
    rounds: int
    hospitals: int

    @property
    def sigma(self) -> float:
        """Standard deviation of the noise in the decrypted sum, per coordinate: z * C."""
        return self.noise_multiplier * self.clip

    @property
    def share_sigma(self) -> float:
        """Each hospital's share: N(0, sigma^2 / n), so the n shares sum to N(0, sigma^2)."""
        return self.sigma / math.sqrt(self.hospitals)


def plan(epsilon: float, delta: float, clip: float, rounds: int, hospitals: int) -> DpPlan:
    return DpPlan(epsilon, delta, clip, noise_multiplier(epsilon, delta, rounds), rounds, hospitals)


def _accountant() -> Any:
    from dp_accounting import rdp  # 1.8 s to import (scipy): only when DP is used

    return rdp.RdpAccountant()


def _rounds_event(z: float, rounds: int) -> Any:
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds)


def epsilon_for(z: float, rounds: int, delta: float) -> float:
    """The accountant's epsilon for `rounds` Gaussian mechanisms with noise multiplier z
    (inf for z = 0: no noise, no guarantee)."""
    if z <= 0:
        return math.inf
    accountant = _accountant()
    accountant.compose(_rounds_event(z, rounds))
    return float(accountant.get_epsilon(delta))


@lru_cache(maxsize=256)
def noise_multiplier(epsilon: float, delta: float, rounds: int) -> float:
    """The noise multiplier z that meets (epsilon, delta) over `rounds` rounds (public inputs
    only, so caching it keeps nothing secret)."""
    import dp_accounting

    z = dp_accounting.calibrate_dp_mechanism(
        _accountant,
        lambda z: _rounds_event(z, rounds),
        epsilon,
        delta,
        dp_accounting.ExplicitBracketInterval(1e-4, 1e7),
        tol=1e-6,
    )
    return float(z)


def coalition_epsilons(dp: DpPlan) -> tuple[tuple[int, float], ...]:
    """(k, epsilon) against a coalition of k hospitals, k = 0 .. n - 1: it subtracts its own
    k noise shares, leaving z * sqrt((n - k) / n)."""
    n = dp.hospitals
    return tuple(
        (k, epsilon_for(dp.noise_multiplier * math.sqrt((n - k) / n), dp.rounds, dp.delta)) for k in range(n)
    )


def clipped_sum(
    weights: np.ndarray, X: np.ndarray, y: np.ndarray, clip: float, model: ModuleType = linear
) -> np.ndarray:
    """Sum over rows of each row's gradient (the model's: (w.x - y) x for squared error), each
    scaled down to L2 norm at most `clip`."""
    rows = model.row_gradients(weights, X, y)
    norms = np.linalg.norm(rows, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norms > clip, clip / norms, 1.0)
    return np.asarray((rows * scale[:, None]).sum(axis=0))


def in_words(dp: DpPlan) -> str:
    """What the guarantee means, for a reader who is not a statistician."""
    odds = math.exp(dp.epsilon)
    return (
        f"Whatever anyone concludes from the {dp.rounds} broadcast averages, it would conclude almost "
        f"the same had any one patient not been in the data: the odds of any conclusion change by at "
        f"most a factor e^ε = {odds:.3g}, except with probability δ = {dp.delta:g}."
    )
