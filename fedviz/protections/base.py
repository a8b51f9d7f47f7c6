"""The one small interface every compared protection meets, and the figures each reports.

A protection trains the task (`Task`: the run's model, data, split, rounds and learning rate,
and every hospital's local model when federated rounds start warm) for its federated rounds,
summing the hospitals' gradients its own way, and reports a `Measured`. Protections that only
change how the round's average is computed share `federate`, a plaintext gradient descent
whose each round's average comes from the protection; a protection with its own engine (the
fedviz engines, Flower's SecAgg+) runs that and reports the same figures.

Invariants: every figure of a `Measured` is measured in the call that made it (nothing is
copied from another row or estimated); a protection that cannot run says why in `error`
and reports no figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fedviz.config import Config
from fedviz.data.table import Split
from fedviz.models import for_kind

ROUNDING_ULPS = 64
"""An aggregate this close to the plaintext one (in units in the last place of the round's
largest value) is exact: the float sums of n gradients differ by that much whatever the order."""


@dataclass(frozen=True)
class Trust:
    """Who a protection trusts, in words computed from its rules."""

    decryptors: str
    """Who holds a decryption key or could unmask a contribution."""
    readers: str
    """Which coalitions read one hospital's contribution."""
    dropout: str
    """Whether a hospital can drop out mid-round and the run continue."""


@dataclass(frozen=True)
class Measured:
    protection: str
    how: str
    """The real library and mode (e.g. "TenSEAL 0.3.18, CKKS, N = 8192")."""
    engine: str
    """Where the parties ran: "in-process", "Flower 1.42 loopback deployment", ..."""
    rounds: int
    scores: tuple[float, ...] = ()
    """Each hospital's test metric after the federated phase."""
    aggregate_errors: tuple[float, ...] = ()
    """Per round, the largest |protected average − plaintext average| over the values."""
    aggregate_scales: tuple[float, ...] = ()
    """Per round, the largest |plaintext average| (what float rounding is relative to)."""
    crypto_s: float = 0.0
    """Seconds per round spent in the protection's own cryptography (encrypt, add, decrypt,
    mask, share, ...), summed over the parties."""
    exchange_s: float | None = None
    """Seconds per round of the whole exchange where a transport carries it (None in-process)."""
    round_s: float = 0.0
    """Wall seconds per federated round, whatever they were spent on."""
    bytes_per_hospital: int = 0
    """Bytes a hospital sends per round."""
    setup_s: float = 0.0
    setup_bytes: int = 0
    parameters: tuple[tuple[str, str], ...] = ()
    """Key and parameter sizes, in words (("modulus n", "2048 bits"), ...)."""
    trust: Trust | None = None
    caveats: tuple[str, ...] = ()
    error: str | None = None
    """Why this protection could not run here (then no figure is reported)."""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.aggregate_errors) if self.aggregate_errors else float("nan")

    @property
    def changed_model(self) -> bool:
        """Whether the protection changed the model: in some round the aggregate differed from
        the plaintext one by more than float rounding (`ROUNDING_ULPS` units in the last place
        of that round's largest value)."""
        if not self.aggregate_errors:
            return False
        if not self.aggregate_scales:
            return self.max_error > 1e-9
        return any(
            e > ROUNDING_ULPS * math.ulp(max(s, 1e-300))
            for e, s in zip(self.aggregate_errors, self.aggregate_scales, strict=True)
        )


@dataclass(frozen=True)
class Task:
    """What every protection trains: the same model, data, split and rounds."""

    config: Config
    data: Split
    start: tuple[np.ndarray, ...]
    """Each hospital's weights when the federated phase begins."""

    @classmethod
    def of(cls, config: Config) -> Task:
        """The config's data, standardised in plaintext for data in its own units (the fedviz
        engines standardise through the ring: the same numbers to 2^-56), and the local phase
        run once (or zero weights for a cold start)."""
        from fedviz.data import prepared

        data = prepared(config)
        model = for_kind(config.model)
        start = []
        for X, y in zip(data.hospital_X, data.hospital_y, strict=True):
            w = np.zeros(X.shape[1])
            if config.warm_start:
                with np.errstate(all="ignore"):
                    for _ in range(config.rounds):
                        w = w - config.learning_rate * model.gradient(w, X, y, config.gradient)
            start.append(w)
        return cls(config, data, tuple(start))

    def gradients(self, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        model = for_kind(self.config.model)
        return [
            np.asarray(model.gradient(w, X, y, self.config.gradient))
            for w, X, y in zip(weights, self.data.hospital_X, self.data.hospital_y, strict=True)
        ]

    def scores(self, weights: Sequence[np.ndarray]) -> tuple[float, ...]:
        model = for_kind(self.config.model)
        return tuple(float(model.score(w, *self.data.test_of(i))) for i, w in enumerate(weights))


Aggregate = Callable[[int, list[np.ndarray]], np.ndarray]
"""(round, each hospital's gradient) -> the round's average, computed the protection's way."""


@dataclass(frozen=True)
class Descent:
    scores: tuple[float, ...]
    errors: tuple[float, ...]
    seconds: tuple[float, ...]
    """Wall seconds of each round's aggregate call."""
    scales: tuple[float, ...] = ()
    """Per round, the largest |plaintext average|."""


def federate(task: Task, aggregate: Aggregate) -> Descent:
    """The federated phase in plaintext, each round's average from `aggregate`; every hospital
    takes the same step from its own weights (the fedviz engines' arithmetic)."""
    weights = [w.copy() for w in task.start]
    errors, seconds, scales = [], [], []
    eta = task.config.learning_rate
    for r in range(1, task.config.rounds + 1):
        gradients = task.gradients(weights)
        exact = np.mean(gradients, axis=0)
        t = time.perf_counter()
        average = np.asarray(aggregate(r, gradients), dtype=float)
        seconds.append(time.perf_counter() - t)
        errors.append(float(np.max(np.abs(average - exact))))
        scales.append(float(np.max(np.abs(exact))))
        weights = [w - eta * average for w in weights]
    return Descent(task.scores(weights), tuple(errors), tuple(seconds), tuple(scales))


class Protection(Protocol):
    """One compared protection: a name, and one call that trains the task and measures."""

    name: str

    def measure(self, task: Task) -> Measured: ...
