"""What curious parties can infer from what they saw during a run: pure functions, each
scored against the simulation's ground truth.

Vocabulary: `gradients[t][k]` is hospital k's true gradient in federated round t (only
hospital k knows it); `averages[t]` is what the server broadcast in the clear. Everything a
party "saw" is passed in explicitly, so each function states its attacker's knowledge.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from phe.paillier import EncryptedNumber

from fedviz.crypto.encoding import Codec, PackedCodec, from_fixed
from fedviz.events import Event, FederatedRound, HospitalGradients, RingHop, RunStarted
from fedviz.models import linear
from fedviz.protocol import RingMessage, Server


@dataclass
class Observations:
    """A consumer of the event stream keeping what the attacks need (O(rounds x hospitals x 11))."""

    hospitals: int = 0
    learning_rate: float = 0.0
    gradients: list[np.ndarray] = field(default_factory=list)
    """Per round, an array (hospitals, 11) of true (noiseless) gradients: ground truth for
    scoring."""
    sent: list[np.ndarray] = field(default_factory=list)
    """Per round, what each hospital put into the ring: its gradient, or under differential
    privacy its clipped and noised one (what it knows as its own)."""
    averages: list[np.ndarray] = field(default_factory=list)
    """Per round, the broadcast average gradient (public)."""
    orders: list[tuple[int, ...]] = field(default_factory=list)
    """Per round, the ring's order (0-based hospital indices)."""

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.hospitals = len(event.patients)
            self.learning_rate = event.config.learning_rate
        elif isinstance(event, HospitalGradients):
            self.sent.append(np.array(event.gradients))
            self.gradients.append(np.array(event.clean if event.clean is not None else event.gradients))
        elif isinstance(event, FederatedRound):
            self.averages.append(np.array(event.average_gradient))
            self.orders.append(event.order or tuple(range(self.hospitals)))

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
    """Per round, the largest error of the difference attack against the others' true sum:
    the attacker subtracts what it sent itself (under DP its noised gradient), so the error
    is the others' noise, or float rounding without DP."""
    out = []
    for g, sent, avg in zip(obs.gradients, obs.sent, obs.averages, strict=True):
        out.append(difference_attack(sent[attacker], avg, obs.hospitals, g, attacker).error)
    return np.array(out)


# --------------------------------------------------------------------------- coalitions


def _close(members: frozenset[int], known: dict[int, Any], own: dict[int, Any]) -> dict[int, Any]:
    """Extend the known prefix sums {j: P_j} through the members' own gradients: P_k = P_{k-1}
    + g_k and P_{k-1} = P_k - g_k for every member k, until nothing new follows."""
    values = dict(known)
    changed = True
    while changed:
        changed = False
        for k in members:
            if k - 1 in values and k not in values:
                values[k] = values[k - 1] + own[k]
                changed = True
            elif k in values and k - 1 not in values:
                values[k - 1] = values[k] - own[k]
                changed = True
    return values


def _exposed(members: frozenset[int], known: Collection[int], hospitals: int) -> list[int]:
    """Hospitals outside the coalition with both P_{k-1} and P_k known (g_k = P_k - P_{k-1})."""
    return [k for k in range(1, hospitals + 1) if k not in members and k - 1 in known and k in known]


def known_prefixes(members: frozenset[int], with_server: bool, hospitals: int) -> frozenset[int]:
    """Indices j of the prefix sums P_j = g_1 + ... + g_j a coalition knows in the clear.

    Everyone knows P_0 = 0 and P_n = n * average (the broadcast). With the server, the
    coalition decrypts what its members received: member j >= 2 received Enc(P_{j-1}).
    A member k's own gradient links P_{k-1} and P_k, so knowing one gives the other.
    Hospitals are numbered 1..n in ring order.
    """
    start = {0, hospitals} | ({j - 1 for j in members if j >= 2} if with_server else set())
    return frozenset(_close(members, dict.fromkeys(start, 0), dict.fromkeys(members, 0)))


def exposed_hospitals(members: frozenset[int], with_server: bool, hospitals: int) -> frozenset[int]:
    """The hospitals outside the coalition whose gradient it recovers exactly."""
    return frozenset(_exposed(members, known_prefixes(members, with_server, hospitals), hospitals))


def coalition_recovery(
    members: frozenset[int],
    prefixes: dict[int, np.ndarray],
    own: dict[int, np.ndarray],
    average: np.ndarray,
    hospitals: int,
) -> dict[int, np.ndarray]:
    """What the coalition computes, from what it holds: `prefixes` {j: P_j} it decrypted (with
    the server; empty without), its members' `own` gradients, and the broadcast `average`.
    Returns {k: recovered g_k} for every exposed hospital."""
    known = {0: np.zeros_like(average), hospitals: hospitals * np.asarray(average), **prefixes}
    values = _close(members, known, own)
    return {k: values[k] - values[k - 1] for k in _exposed(members, values, hospitals)}


# --------------------------------------------------------------------------- the aggregate


@dataclass(frozen=True)
class AffineFit:
    """G_t = c - A u_t fitted to the broadcasts; u_t = eta * (sum of earlier averages)."""

    A: np.ndarray
    c: np.ndarray
    rank: int
    """Numerical rank of the design [u_t, 1] (full rank is 12 for 11 features)."""
    singular_values: np.ndarray


def cumulative_updates(averages: list[np.ndarray], learning_rate: float) -> np.ndarray:
    """u_t for t = 1..T: how far every hospital's weights have moved before round t.
    Every hospital takes the same broadcast step, so u_t is common knowledge."""
    steps = learning_rate * np.asarray(averages)
    return np.vstack([np.zeros(steps.shape[1]), np.cumsum(steps, axis=0)[:-1]])


def fit_aggregate(updates: np.ndarray, averages: np.ndarray, rcond: float = 1e-10) -> AffineFit:
    """Least-squares fit of G_t = c - A u_t: anyone who saw the broadcasts can do this.
    Rank-deficient designs give the minimum-norm solution (lstsq)."""
    design = np.hstack([updates, np.ones((updates.shape[0], 1))])
    solution, _, rank, sv = np.linalg.lstsq(design, averages, rcond=rcond)
    A = -solution[:-1].T
    return AffineFit(A=A, c=solution[-1], rank=int(rank), singular_values=sv)


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Frobenius-norm error relative to the truth."""
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def aggregate_curve(
    averages: list[np.ndarray], learning_rate: float, truth_A: np.ndarray, start: int = 2
) -> list[tuple[int, int, float]]:
    """(rounds seen, numerical rank, relative error of A) as broadcasts accumulate."""
    updates = cumulative_updates(averages, learning_rate)
    G = np.asarray(averages)
    out = []
    for t in range(start, len(averages) + 1):
        fit = fit_aggregate(updates[:t], G[:t])
        out.append((t, fit.rank, relative_error(fit.A, truth_A)))
    return out


# --------------------------------------------------------------------------- one patient


@dataclass(frozen=True)
class PatientRecovery:
    record: np.ndarray
    """Recovered features, intercept included (x_last == 1)."""
    target: float
    """Recovered y (needs the model weights, which the ring's broadcasts make public)."""


def single_patient_gradient(
    x: np.ndarray, y: float, weights: np.ndarray, model: ModuleType = linear
) -> np.ndarray:
    """The gradient a hospital holding one patient sends: (prediction - y) x, with the
    prediction w.x (linear) or sigmoid(w.x) (logistic)."""
    return np.asarray(model.row_gradients(weights, np.asarray(x)[None, :], np.array([y]))[0])


def recover_single_patient(
    gradient: np.ndarray, weights: np.ndarray, model: ModuleType = linear
) -> PatientRecovery:
    """Invert (prediction - y) x: the intercept entry x_last = 1 gives the scale
    s = prediction - y, so x = g / s and y = prediction(x) - s. Fails only when the
    prediction is exact (s == 0)."""
    scale = float(gradient[-1])
    if scale == 0.0:
        raise ValueError("the model predicts this patient exactly; the gradient is zero")
    record = np.asarray(gradient) / scale
    return PatientRecovery(record, float(model.predict(weights, record[None, :])[0]) - scale)


# --------------------------------------------------------------------------- phe's exponent


def phe_default_exponents(values: np.ndarray, n: int) -> list[int]:
    """The exponent phe's default `EncodedNumber.encode` picks for each value: it travels in
    the clear beside the ciphertext and grows with the value's magnitude."""
    from phe.encoding import EncodedNumber
    from phe.paillier import PaillierPublicKey

    public = PaillierPublicKey(n)
    return [EncodedNumber.encode(public, float(v)).exponent for v in values]


def gram(X: np.ndarray, mode: str) -> np.ndarray:
    """One hospital's part of A: X^T X, divided by its row count in `mean` mode (the gradient's
    own scaling)."""
    return np.asarray(X.T @ X / (len(X) if mode == "mean" else 1))


def true_aggregate_matrix(hospital_X: Sequence[np.ndarray], mode: str) -> np.ndarray:
    """The A of G_t = c - A u_t on the simulation's data: the hospitals' average of their
    `gram` parts. Ground truth for scoring the fit."""
    return np.asarray(sum(gram(X, mode) for X in hospital_X)) / len(hospital_X)


def others_gram(A: np.ndarray, own_X: np.ndarray, hospitals: int, mode: str) -> np.ndarray:
    """Everyone else's pooled part given A (fitted, or the truth): n*A minus hospital k's own."""
    return np.asarray(hospitals * A - gram(own_X, mode))


def open_hop(server: Server, hop: RingHop) -> list[int]:
    """The plaintext integers of a ring message a colluding hospital hands the key holder
    (masks, if any, still on). (Only for showing collusion.)"""
    public = server.public.public_key
    message = RingMessage(
        hop.sender,
        hop.receiver,
        tuple(EncryptedNumber(public, c.value, c.exponent) for c in hop.ciphertexts),
        hop.contributions,
    )
    return server.open(message)


def decrypt_hop(server: Server, hop: RingHop, codec: Codec) -> np.ndarray:
    """What the key holder reads from an unmasked ring message a colluding hospital hands
    it: the prefix sum g_1 + ... + g_k of the hop's sender k. (Only for showing collusion.)"""
    return codec.decode_sum(open_hop(server, hop), hop.contributions)


def decode_masked(codec: Codec, plaintexts: list[int], count: int) -> np.ndarray:
    """What a coalition reads from plaintexts that may still carry masks it cannot remove:
    the codec's decoding, forced into range. Exact when no mask is left; otherwise values
    spread over the codec's whole range (every value equally likely)."""
    if isinstance(codec, PackedCodec):
        return codec.decode_sum([x % codec.plaintext_bound for x in plaintexts], count)
    n = codec.n  # type: ignore[attr-defined]
    return np.array([from_fixed(x if x <= n // 2 else x - n) for x in plaintexts])
