"""What differential privacy costs in accuracy: test MSE against epsilon, measured.

Each point trains the federated phase in plaintext with the ring's exact arithmetic:
encryption and masks change no number the hospitals see (tested), so the plaintext ring
gives the test MSE the encrypted one would. Under DP the federated phase starts from zero
and every hospital takes the same broadcast step, so all hospitals hold the same weights;
the sum of their clipped sums is then the clipped sum over all their rows, and their n
noise shares N(0, sigma^2 / n) add up to one N(0, sigma^2) (`pooled_average` is tested
equal to the per-hospital ring with the noise switched off).

The noise here comes from numpy's generator seeded by the operating system: a curve is an
estimate, not a protection, and a point repeats `repeats` runs to show the spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedviz.config import Config
from fedviz.data import Split, prepared
from fedviz.models import for_kind
from fedviz.privacy.dp import clipped_sum, noise_multiplier

EPSILONS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""The default sweep (log-spaced, 0.1 to 100)."""


@dataclass(frozen=True)
class UtilityPoint:
    epsilon: float
    noise_multiplier: float
    mse: tuple[float, ...]
    """Final test MSE of each repeat (sorted)."""

    @property
    def median(self) -> float:
        return float(np.median(self.mse))


@dataclass(frozen=True)
class UtilityCurve:
    points: tuple[UtilityPoint, ...]
    no_dp: float
    """The same settings without DP (cold start, no clipping, no noise)."""
    clipped_only: float
    """Clipping at C but no noise: what DP's clipping alone does to the descent (it can help or
    hurt on a given test set, before any noise)."""
    optimum: float
    """The least-squares optimum on the pooled training data (test MSE)."""
    delta: float
    clip: float
    rounds: int


def pooled_average(
    weights: np.ndarray, data: Split, config: Config, clip: float | None, noise: np.ndarray | None
) -> np.ndarray:
    """The broadcast average of one federated round when every hospital holds `weights`:
    the sum of the hospitals' contributions (clipped if `clip`, plus `noise` for all their
    shares together) divided by the hospital count, in the configured gradient mode."""
    model = for_kind(config.model)
    X, y = data.X_pooled, data.y_pooled
    total = (
        clipped_sum(weights, X, y, clip, model) if clip is not None else model.gradient(weights, X, y, "sum")
    )
    if noise is not None:
        total = total + noise
    if config.gradient == "mean":  # equal blocks (DP refuses the mean gradient otherwise)
        total = total / data.patients[0]
    return np.asarray(total / config.hospitals)


def final_mse(config: Config, data: Split, sigma: float | None, rng: np.random.Generator) -> float:
    """The test metric after the federated rounds from zero; `sigma` None means no DP at all,
    0 clipping without noise."""
    weights = np.zeros(data.X_pooled.shape[1])
    clip = None if sigma is None else config.dp_clip
    with np.errstate(all="ignore"):
        for _ in range(config.rounds):
            noise = None if not sigma else rng.normal(0.0, sigma, weights.shape[0])
            weights = weights - config.learning_rate * pooled_average(weights, data, config, clip, noise)
    return float(for_kind(config.model).score(weights, data.X_test, data.y_test))


def curve(
    config: Config,
    epsilons: Sequence[float] = EPSILONS,
    repeats: int = 5,
    rng: np.random.Generator | None = None,
) -> UtilityCurve:
    """Test MSE against epsilon for the config's hospitals, rounds, learning rate, clip and delta
    (`rng`: the noise's generator, fresh from the operating system unless a test fixes it)."""
    data = prepared(config)
    rng = rng or np.random.default_rng()
    points = []
    for eps in epsilons:
        z = noise_multiplier(float(eps), config.dp_delta, config.rounds)
        runs = sorted(final_mse(config, data, z * config.dp_clip, rng) for _ in range(repeats))
        points.append(UtilityPoint(float(eps), z, tuple(runs)))
    model = for_kind(config.model)
    optimum = float(model.score(model.optimum(data.X_pooled, data.y_pooled), data.X_test, data.y_test))
    return UtilityCurve(
        tuple(points),
        final_mse(config, data, None, rng),
        final_mse(config, data, 0.0, rng),
        optimum,
        config.dp_delta,
        config.dp_clip,
        config.rounds,
    )


@dataclass(frozen=True)
class Spread:
    """How much a DP run's result owes to its particular draw of noise."""

    draws: tuple[float, ...]
    """Final test metric of fresh draws of the noise at the run's epsilon (sorted)."""
    clipped_only: float
    """The same descent with clipping and no noise."""


def spread(config: Config, repeats: int = 5, rng: np.random.Generator | None = None) -> Spread:
    """`repeats` plaintext reruns of a DP config's federated phase, each with fresh noise
    (cheap: no keys, the pooled rows once per round)."""
    assert config.dp_epsilon is not None, "only a differentially private run has noise to draw"
    data = prepared(config)
    rng = rng or np.random.default_rng()
    sigma = noise_multiplier(config.dp_epsilon, config.dp_delta, config.rounds) * config.dp_clip
    draws = sorted(final_mse(config, data, sigma, rng) for _ in range(repeats))
    return Spread(tuple(draws), final_mse(config, data, 0.0, rng))
