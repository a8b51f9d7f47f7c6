"""fedviz itself, as it runs: the default ring (packed, DJN, the pool), the star of the Flower
engine's relay and nodes (in this process, without a transport), and the ring with pairwise
masks or differential privacy. Each row is one real run of the engine; its figures come from
the run's own events."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from fedviz.config import Config
from fedviz.events import (
    Event,
    FederatedRound,
    HospitalGradients,
    KeysGenerated,
    MasksAgreed,
    PrivacyBudget,
    RunFinished,
)
from fedviz.protections.base import Measured, Task, Trust
from fedviz.protections.rules import ring_readers

DP_EPSILON = 1.0
"""The DP row's ε when the run itself asks for none."""


@dataclasses.dataclass
class _Folded:
    averages: list[np.ndarray] = dataclasses.field(default_factory=list)
    truth: list[np.ndarray] = dataclasses.field(default_factory=list)
    """Per round, each hospital's noiseless gradient."""
    crypto: list[float] = dataclasses.field(default_factory=list)
    keys: KeysGenerated | None = None
    masks: MasksAgreed | None = None
    budget: PrivacyBudget | None = None
    finished: RunFinished | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, FederatedRound):
            self.averages.append(np.array(event.average_gradient))
            self.crypto.append(event.encrypt_s + event.add_s + event.decrypt_s)
        elif isinstance(event, HospitalGradients):
            self.truth.append(np.array(event.clean if event.clean is not None else event.gradients))
        elif isinstance(event, KeysGenerated):
            self.keys = event
        elif isinstance(event, MasksAgreed):
            self.masks = event
        elif isinstance(event, PrivacyBudget):
            self.budget = event
        elif isinstance(event, RunFinished):
            self.finished = event


def _errors(folded: _Folded) -> tuple[float, ...]:
    return tuple(
        float(np.max(np.abs(a - t.mean(axis=0)))) for a, t in zip(folded.averages, folded.truth, strict=False)
    )


def _scales(folded: _Folded) -> tuple[float, ...]:
    return tuple(float(np.max(np.abs(t.mean(axis=0)))) for t in folded.truth[: len(folded.averages)])


def _row(
    name: str,
    how: str,
    engine: str,
    config: Config,
    folded: _Folded,
    trust: Trust,
    caveats: tuple[str, ...],
    wall: float,
) -> Measured:
    finished, keys = folded.finished, folded.keys
    assert finished is not None and keys is not None
    rounds = config.rounds
    setup_bytes = keys.n.bit_length() // 8 * (2 if config.obfuscator == "djn" else 1)
    if folded.masks is not None:
        setup_bytes += folded.masks.public_bytes
    parameters: list[tuple[str, str]] = [
        ("modulus n", f"{keys.bits} bits (≈{config.security_bits}-bit security)"),
        ("encoding", f"{keys.encoding}, {keys.ciphertexts_per_message} ciphertext(s) a message"),
        ("randomness", "DJN short exponent" if keys.obfuscator == "djn" else "r^n for uniform r"),
    ]
    if folded.budget is not None:
        b = folded.budget
        parameters.append(
            (
                "DP",
                f"ε {b.epsilon:g}, δ {b.delta:g}, clip {b.clip:g}, noise multiplier {b.noise_multiplier:.3g}",
            )
        )
    return Measured(
        name,
        how,
        engine,
        rounds,
        tuple(finished.federated_mse),
        _errors(folded),
        _scales(folded),
        crypto_s=sum(folded.crypto) / rounds,
        round_s=finished.timings.federated / rounds if finished.timings.federated else wall / rounds,
        bytes_per_hospital=finished.bytes_per_round // config.hospitals,
        setup_s=finished.timings.keygen + (folded.masks.seconds if folded.masks else 0.0),
        setup_bytes=setup_bytes,
        parameters=tuple(parameters),
        trust=trust,
        caveats=caveats,
    )


RING_CAVEATS = (
    "the key holder decrypts one total a round; with it, hospital k + 1 reads what hospital k sent (the "
    "ring's weak spot: pairwise masks close it)",
)


class _EngineRow:
    name = ""
    how = ""

    def config(self, task: Task) -> Config:
        return task.config

    def trust(self, config: Config) -> Trust:
        return Trust(
            decryptors="the key holder (the server) alone",
            readers=ring_readers(config.hospitals, masked=config.masks == "pairwise"),
            dropout="no: the ring waits for every hospital's hop (on Flower the run stops, naming the site)",
        )

    caveats: tuple[str, ...] = RING_CAVEATS

    def measure(self, task: Task) -> Measured:
        from fedviz.crypto.pool import shared_pool, warm
        from fedviz.engines.inprocess import run

        config = self.config(task)
        warm(shared_pool())  # the pool's one-off start-up is not a round's cost (the dashboard keeps it)
        folded = _Folded()
        start = time.perf_counter()
        for event in run(config):
            folded.add(event)
        return _row(
            self.name,
            self.how,
            "in-process",
            config,
            folded,
            self.trust(config),
            self.caveats,
            time.perf_counter() - start,
        )


class FedvizRing(_EngineRow):
    name = "fedviz ring"
    how = "fedviz's default: Paillier, 11 values packed in one plaintext, DJN randomness drawn ahead in a process pool, one CRT half to decrypt"


class FedvizMasks(_EngineRow):
    name = "fedviz ring + masks"
    how = "fedviz's ring with pairwise masks (X25519 seeds, SHAKE-256 masks that cancel in the full sum)"
    caveats = ("n − 1 hospitals still read the last one (from the broadcast average)",)

    def config(self, task: Task) -> Config:
        return dataclasses.replace(task.config, masks="pairwise")


class FedvizDP(_EngineRow):
    name = "fedviz ring + DP"
    how = "fedviz's ring with differential privacy inside the encrypted sum (dp-accounting's RDP accountant)"
    caveats = (
        "DP needs a cold start (a local model depends on every one of its patients): this row's scores "
        "start from zero and carry the noise, so they vary from run to run",
    )

    def config(self, task: Task) -> Config:
        epsilon = task.config.dp_epsilon or DP_EPSILON
        return dataclasses.replace(task.config, dp_epsilon=epsilon, warm_start=False)

    def trust(self, config: Config) -> Trust:
        ring = super().trust(config)
        return dataclasses.replace(
            ring,
            readers=f"{ring.readers}; but what they read is each hospital's clipped gradient plus its share of "
            f"the noise (ε = {config.dp_epsilon:g} per patient)",
        )


class FedvizStar(_EngineRow):
    name = "fedviz star"
    how = "the Flower engine's star: every hospital's ciphertext to the relay, which multiplies them; the key holder checks each signed part (relay and nodes in this process, no transport)"
    caveats = (
        "the key holder is handed every part, to check the sum is complete: a curious key holder reads every "
        "gradient (pairwise masks close that)",
    )

    def trust(self, config: Config) -> Trust:
        return Trust(
            decryptors="the key holder alone",
            readers="the key holder alone (it is handed every hospital's part); or the other n − 1 hospitals",
            dropout="no: the relay waits for every part",
        )

    def measure(self, task: Task) -> Measured:
        from fedviz.engines.flower.direct import DirectTransport
        from fedviz.engines.flower.relay import Relay

        config = task.config
        folded = _Folded()
        transport = DirectTransport(config)
        start = time.perf_counter()
        try:
            Relay(transport, config, "star", folded.add).run()
        finally:
            transport.close()
        wall = time.perf_counter() - start
        by_round: dict[int, dict[str, Any]] = {}
        for note in transport.notes:
            if note["kind"] == "gradient":
                by_round.setdefault(int(note["round"]), {})[note["party"]] = note.get("clean", note["values"])
        folded.truth = [
            np.array([r[f"Hospital {i + 1}"] for i in range(config.hospitals)])
            for _, r in sorted(by_round.items())
        ]
        return _row(
            self.name,
            self.how,
            "in-process (relay and nodes without Flower)",
            config,
            folded,
            self.trust(config),
            self.caveats,
            wall,
        )
