"""The remedies measured against the same attacks: each remedy is applied in a real run of
the in-process engine, and the lab's own attack code is re-run on what that run produced.

A `Variant` is one such run with the collusion handles kept (the key holder, and the
hospitals' mask seeds so a coalition can use its members' seeds); it lives in the caller's
session only. Coalition attempts work in ring positions of each round's order: the member
at position j >= 2 received Enc(c_1 + ... + c_{j-1}) and, with the key holder, decrypts it;
it subtracts every pair mask its members hold, and decodes what is left.

Invariant: every number here comes from running an attack on a run's messages and keys,
scored against that run's noiseless gradients; nothing is a rule of thumb.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from fedviz.config import Config
from fedviz.crypto.encoding import Codec
from fedviz.data import prepared
from fedviz.engines.inprocess import agreed_codec, run
from fedviz.events import KeysGenerated, MasksAgreed, PrivacyBudget, RingHop, RunFinished, RunStarted
from fedviz.privacy import attacks
from fedviz.privacy.openings import KeyHolder, Opener
from fedviz.protocol import Server
from fedviz.protocol.masks import PairwiseMasks

REMEDIES = ("none", "masks", "DP", "masks + DP")
DEFAULT_EPSILON = 1.0
"""The DP columns' epsilon when the run itself has no DP."""
EXACT = 1e-6
"""A recovery error below this (relative to the gradient's size) counts as exact."""
FIT_RECOVERED = 0.01
"""The XᵀX fit counts as recovered within 1 % relative error."""


@dataclass
class Variant:
    """One real run under one remedy, kept for the attacks (session-only: holds a key)."""

    remedy: str
    config: Config
    observations: attacks.Observations = field(default_factory=attacks.Observations)
    hops: dict[int, list[RingHop]] = field(default_factory=dict)
    server: Server | None = None
    masks: list[PairwiseMasks] | None = None
    codec: Codec | None = None
    budget: PrivacyBudget | None = None
    agreement: MasksAgreed | None = None
    finished: RunFinished | None = None

    def __repr__(self) -> str:  # never render the key holder's internals
        return f"Variant({self.remedy!r}, {self.observations.rounds} rounds)"


def variant_config(base: Config, remedy: str, epsilon: float | None = None) -> Config:
    """The base settings under a remedy; every variant starts the federated phase from zero
    (DP needs that), so the four are compared like with like."""
    dp = "DP" in remedy
    return dataclasses.replace(
        base,
        warm_start=False,
        masks="pairwise" if "masks" in remedy else "none",
        dp_epsilon=(epsilon or base.dp_epsilon or DEFAULT_EPSILON) if dp else None,
    )


def run_variant(config: Config, remedy: str = "", pool: str | None = "shared") -> Variant:
    """Run `config` in-process, keeping what the attacks need."""
    server_box: list[Server] = []
    v = Variant(remedy or ", ".join(config.remedies) or "none", config)

    def make_server() -> Server:
        server_box.append(Server(config.key_length, config.obfuscator))
        return server_box[0]

    def keep(masks: list[PairwiseMasks]) -> None:
        v.masks = masks

    dims = 0
    for event in run(config, pool=pool, server=make_server, collude=keep):  # type: ignore[arg-type]
        v.observations.add(event)
        if isinstance(event, RunStarted):
            dims = len(event.features)
        elif isinstance(event, RingHop):
            v.hops.setdefault(event.round, []).append(event)
        elif isinstance(event, KeysGenerated):
            v.codec = agreed_codec(config, event.n, dims)
        elif isinstance(event, PrivacyBudget):
            v.budget = event
        elif isinstance(event, MasksAgreed):
            v.agreement = event
        elif isinstance(event, RunFinished):
            v.finished = event
    v.server = server_box[0]
    return v


# --------------------------------------------------------------------------- coalitions


@dataclass(frozen=True)
class Attempt:
    """A coalition's try at the hospitals outside it in one round."""

    members: frozenset[int]
    """Hospital numbers (1-based) in the coalition."""
    with_server: bool
    round: int
    errors: dict[int, float]
    """{hospital number: largest error of the coalition's estimate of its gradient}, for every
    hospital the coalition's recovery code targets (those it would expose without masks)."""
    recovered: dict[int, np.ndarray] = field(default_factory=dict)
    """{hospital number: the coalition's estimate of its gradient}."""

    def exact(self, k: int, scale: float) -> bool:
        return self.errors[k] <= EXACT * (1.0 + scale)


def known_masks(
    masks: list[PairwiseMasks],
    coalition: frozenset[int],
    inside: Iterable[int],
    round_: int,
    count: int,
    n: int,
) -> list[int]:
    """The part of a prefix's masks the coalition can compute (mod n): those of the pairs the
    prefix cuts with a member at either end. `inside`: 0-based hospitals in the prefix;
    `coalition`: 0-based."""
    inside = set(inside)
    total = [0] * count
    for i in inside:
        for j in range(len(masks)):
            if j in inside:
                continue  # both ends in the prefix: the pair's masks cancel
            holder = i if i in coalition else j if j in coalition else None
            if holder is None:  # neither end is a member: this seed is out of reach
                continue
            other = j if holder == i else i
            sign = masks[i].sign(j)
            for c in range(count):
                total[c] = (total[c] + sign * masks[holder].pair_mask(other, round_, c, n)) % n
    return total


def attempt(v: Variant, members: frozenset[int], with_server: bool, round_: int = 1) -> Attempt:
    """Run the coalition's recovery code on round `round_` of the variant's run."""
    opener = KeyHolder(v.server) if v.server is not None else None
    return coalition_attempt(
        v.observations, v.hops.get(round_, []), opener, v.masks, v.codec, members, with_server, round_
    )


def coalition_attempt(
    obs: attacks.Observations,
    hops: list[RingHop],
    opener: Opener | None,
    masks: list[PairwiseMasks] | None,
    codec: Codec | None,
    members: frozenset[int],
    with_server: bool,
    round_: int,
) -> Attempt:
    """What a coalition (hospital numbers `members`, with or without the key holder) computes
    in round `round_` from what it holds: the key holder (`opener`: live, or what it opened
    when a stored run ran) decrypts the hops its members received (`hops`: that round's ring
    messages, in order; a hop it cannot open is left out), the members subtract the pair
    masks they hold (`masks`: every hospital's seeds, of which only the members' are used)
    and add or subtract their own contributions."""
    n = obs.hospitals
    order = obs.orders[round_ - 1]
    position = {h + 1: p + 1 for p, h in enumerate(order)}  # hospital number -> ring position
    at = {p: h for h, p in position.items()}
    members_pos = frozenset(position[h] for h in members)
    sent = obs.sent[round_ - 1]
    own = {position[h]: sent[h - 1] for h in members}
    prefixes: dict[int, np.ndarray] = {}
    if with_server and opener is not None and codec is not None and hops:
        modulus = opener.modulus
        coalition0 = frozenset(h - 1 for h in members)
        for j in members_pos:
            if j < 2:
                continue
            plain = opener.open_hop(hops[j - 2])  # the member at j received P_{j-1}
            if plain is None:
                continue
            inside = [at[p] - 1 for p in range(1, j)]
            if masks is not None:
                known = known_masks(masks, coalition0, inside, round_, len(plain), modulus)
                plain = [(x - m) % modulus for x, m in zip(plain, known, strict=True)]
            prefixes[j - 1] = attacks.decode_masked(codec, plain, j - 1)
    recovered = attacks.coalition_recovery(members_pos, prefixes, own, obs.averages[round_ - 1], n)
    truth = obs.gradients[round_ - 1]
    errors = {at[p]: float(np.max(np.abs(g - truth[at[p] - 1]))) for p, g in recovered.items()}
    return Attempt(members, with_server, round_, errors, {at[p]: g for p, g in recovered.items()})


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Cell:
    """One threat under one remedy: the attack's error, and whether it recovered exactly."""

    error: float
    exact: bool
    note: str = ""
    verdict: str = ""
    """"recovered", "masked" (the masks left it unreadable), "noisy" (it read what was sent,
    noise included) or "not recovered"."""


THREATS = (
    "server + hospital 2 decrypt hop 1 (hospital 1's gradient)",
    "hospitals 2 … n pool their gradients (hospital 1's)",
    "hospital 1 alone: n·average − own (the others' sum)",
    "anyone: the pooled XᵀX from the broadcasts (relative error)",
)


def threats(v: Variant) -> list[Cell]:
    """Each of `THREATS` run on the variant's round 1 (the XᵀX fit on every broadcast)."""
    obs = v.observations
    n = obs.hospitals
    truth, sent, average = obs.gradients[0], obs.sent[0], obs.averages[0]
    scale = float(np.max(np.abs(truth)))
    out: list[Cell] = []
    a = attempt(v, frozenset({2}), True, 1)
    error = a.errors.get(1, float("nan"))
    out.append(Cell(error, a.exact(1, scale) if 1 in a.errors else False))
    others = n * average - sent[1:].sum(axis=0)
    e = float(np.max(np.abs(others - truth[0])))
    out.append(Cell(e, e <= EXACT * (1 + scale)))
    recovered = n * average - sent[0]
    target = truth[1:].sum(axis=0)
    e = float(np.max(np.abs(recovered - target)))
    out.append(Cell(e, e <= EXACT * (1 + scale), "a sum of others" if n > 2 else "hospital 2's gradient"))
    if v.config.model == "linear":
        data = prepared(v.config)
        A = attacks.true_aggregate_matrix(data.hospital_X, v.config.gradient)
        updates = attacks.cumulative_updates(obs.averages, v.config.learning_rate)
        fit = attacks.fit_aggregate(updates, np.asarray(obs.averages))
        e = attacks.relative_error(fit.A, A)
        out.append(Cell(e, e <= FIT_RECOVERED, f"rank {fit.rank} of {data.dims + 1}"))
    else:  # the log-loss gradient is not affine in the weights: no XᵀX to fit
        out.append(Cell(float("nan"), False, "not defined for logistic regression", "n/a"))
    noisy = v.config.dp_epsilon is not None
    return [
        dataclasses.replace(
            c,
            verdict="recovered"
            if c.exact
            else c.verdict
            if c.verdict
            else "masked"
            if i == 0 and v.masks is not None
            else "noisy"
            if noisy
            else "not recovered",
        )
        for i, c in enumerate(out)
    ]


@dataclass(frozen=True)
class Cost:
    test_mse: float
    """Mean over hospitals of the final federated test MSE."""
    federated_s: float
    masks_s: float
    bytes_per_round: int
    setup_bytes: int
    epsilon: float | None


def cost(v: Variant) -> Cost:
    f = v.finished
    assert f is not None
    return Cost(
        float(np.mean(f.federated_mse)),
        f.timings.federated,
        f.timings.masks,
        f.bytes_per_round,
        v.agreement.public_bytes if v.agreement else 0,
        v.budget.epsilon if v.budget else None,
    )


def measure(base: Config, epsilon: float | None = None) -> dict[str, Variant]:
    """One real run per remedy of `REMEDIES`, on the base settings (cold start)."""
    return {r: run_variant(variant_config(base, r, epsilon), r) for r in REMEDIES}


# --------------------------------------------------------------------------- shuffling


def exposure_counts(v: Variant, members: frozenset[int], with_server: bool) -> dict[int, int]:
    """{hospital number: rounds in which the coalition recovered its gradient exactly}, over
    every round of the variant's run (each round its own order)."""
    counts = {k: 0 for k in range(1, v.observations.hospitals + 1) if k not in members}
    for r in range(1, v.observations.rounds + 1):
        a = attempt(v, members, with_server, r)
        scale = float(np.max(np.abs(v.observations.gradients[r - 1])))
        for k in a.errors:
            if a.exact(k, scale):
                counts[k] += 1
    return counts
