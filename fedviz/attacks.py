"""What curious parties can infer from what they saw during a run: pure functions, each
scored against the simulation's ground truth.

Vocabulary: `gradients[t][k]` is hospital k's true gradient in federated round t (only
hospital k knows it); `averages[t]` is what the server broadcast in the clear. Everything a
party "saw" is passed in explicitly, so each function states its attacker's knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedviz.events import Event, FederatedRound, HospitalGradients, RunStarted


@dataclass
class Observations:
    """A consumer of the event stream keeping what the attacks need (O(rounds x hospitals x 11))."""

    hospitals: int = 0
    learning_rate: float = 0.0
    gradients: list[np.ndarray] = field(default_factory=list)
    """Per round, an array (hospitals, 11) of true gradients: ground truth for scoring."""
    averages: list[np.ndarray] = field(default_factory=list)
    """Per round, the broadcast average gradient (public)."""

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.hospitals = len(event.patients)
            self.learning_rate = event.config.learning_rate
        elif isinstance(event, HospitalGradients):
            self.gradients.append(np.array(event.gradients))
        elif isinstance(event, FederatedRound):
            self.averages.append(np.array(event.average_gradient))

    @property
    def rounds(self) -> int:
        return len(self.averages)


@dataclass(frozen=True)
class DifferenceAttack:
    """Hospital `attacker` subtracts its own gradient from the broadcast sum."""

    attacker: int
    recovered: np.ndarray
    """n * average - own gradient: the sum of every other hospital's gradient."""
    target: np.ndarray
    """The true sum of the others' gradients (for n = 2: the other hospital's gradient)."""
    others: int
    """How many hospitals that sum covers; 1 means one hospital's gradient is exposed."""

    @property
    def error(self) -> float:
        """Largest absolute difference between what was recovered and the truth."""
        return float(np.max(np.abs(self.recovered - self.target)))

    @property
    def exposes_a_hospital(self) -> bool:
        return self.others == 1


def difference_attack(
    own: np.ndarray, average: np.ndarray, hospitals: int, truth: np.ndarray, attacker: int
) -> DifferenceAttack:
    """What one hospital learns from its own gradient and the broadcast average.

    `truth` is the (hospitals, 11) array of true gradients, used only to score the result.
    """
    recovered = hospitals * np.asarray(average) - np.asarray(own)
    target = np.delete(truth, attacker, axis=0).sum(axis=0)
    return DifferenceAttack(attacker, recovered, target, hospitals - 1)


def alternative_split(truth: np.ndarray, attacker: int, rng: np.random.Generator) -> np.ndarray:
    """Another assignment of gradients to the other hospitals that fits exactly what the
    attacker saw (same own gradient, same sum): proof that, with two or more others, the
    observations do not determine any single hospital's gradient.

    Moves a random vector z from one other hospital to another: g_a + z and g_b - z.
    """
    others = [k for k in range(truth.shape[0]) if k != attacker]
    if len(others) < 2:
        raise ValueError("with one other hospital the split is unique: the attack is exact")
    a, b = others[0], others[1]
    z = rng.normal(0.0, np.abs(truth[a]).mean() + 1.0, truth.shape[1])
    fake = truth.copy()
    fake[a] = truth[a] + z
    fake[b] = truth[b] - z
    return fake


def difference_errors(obs: Observations, attacker: int = 0) -> np.ndarray:
    """Per round, the largest error of the difference attack against the sum of the others."""
    out = []
    for g, avg in zip(obs.gradients, obs.averages, strict=True):
        out.append(difference_attack(g[attacker], avg, obs.hospitals, g, attacker).error)
    return np.array(out)
