"""The ring: hospitals in order add their encrypted contributions, then the server.

Invariants: each hop carries Enc(c_1 + ... + c_k) of the first k hospitals in this round's
order and its contribution count k; only the last hop (k = hospitals) reaches the server,
which decrypts nothing else. The order is the hospitals' own unless a public permutation
(`shuffled_order`) is given for the round; integer addition does not care, so the average
is the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedviz.crypto.encoding import Codec
from fedviz.protocol.masks import PairwiseMasks
from fedviz.protocol.parties import Hospital, RingMessage, Server


@dataclass(frozen=True)
class RoundResult:
    """One federated round: the hops in order, the broadcast average and the phase times.

    `gradients[k]` is what hospital k put into the ring (its contribution, in hospital
    order); `clean[k]` its noiseless gradient when differential privacy added noise."""

    messages: tuple[RingMessage, ...]
    average: np.ndarray
    gradients: tuple[np.ndarray, ...]
    encrypt_s: float
    add_s: float
    decrypt_s: float
    order: tuple[int, ...]
    mask_s: float = 0.0
    clean: tuple[np.ndarray, ...] | None = None


def shuffled_order(seed: int, round_: int, hospitals: int) -> tuple[int, ...]:
    """The ring's public order for a round: a permutation anyone can compute from the run's
    public seed and the round number (announced, not secret: it spreads exposure, it hides
    nothing by itself)."""
    rng = np.random.default_rng([seed, round_, 0x5EED])
    return tuple(int(i) for i in rng.permutation(hospitals))


class Ring:
    """Hospitals in their fixed order (or a round's public permutation), then the server."""

    def __init__(
        self,
        hospitals: Sequence[Hospital],
        server: Server,
        codec: Codec,
        masks: Sequence[PairwiseMasks] | None = None,
    ) -> None:
        self.hospitals = tuple(hospitals)
        self.server = server
        self.codec = codec
        for i, hospital in enumerate(self.hospitals):
            hospital.join(server.public, codec, masks[i] if masks else None)

    def receiver_of(self, position: int, order: Sequence[int] | None = None) -> str:
        if position == len(self.hospitals) - 1:
            return self.server.name
        nxt = order[position + 1] if order is not None else position + 1
        return self.hospitals[nxt].name

    def run_round(
        self,
        obfuscators: Sequence[Sequence[int]],
        learning_rate: float,
        round_: int = 0,
        order: Sequence[int] | None = None,
    ) -> RoundResult:
        """Each hospital encrypts its contribution, the ring adds in order, the server
        decrypts, all step. `obfuscators[k]` belongs to hospital k."""
        n = len(self.hospitals)
        sequence = tuple(order) if order is not None else tuple(range(n))
        noisy = any(h.adds_noise for h in self.hospitals)
        clean = tuple(h.gradient() for h in self.hospitals) if noisy else None
        gradients = tuple(h.contribution() for h in self.hospitals)
        masked_before = sum(h.mask_seconds for h in self.hospitals)
        start = time.perf_counter()
        encrypted = [
            h.encrypt(g, r, round_) for h, g, r in zip(self.hospitals, gradients, obfuscators, strict=True)
        ]
        encrypt_s = time.perf_counter() - start
        mask_s = sum(h.mask_seconds for h in self.hospitals) - masked_before
        start = time.perf_counter()
        messages: list[RingMessage] = []
        incoming: RingMessage | None = None
        for position, k in enumerate(sequence):
            incoming = self.hospitals[k].forward(incoming, encrypted[k], self.receiver_of(position, sequence))
            messages.append(incoming)
        add_s = time.perf_counter() - start
        start = time.perf_counter()
        assert incoming is not None
        average = self.server.average(incoming, self.codec, n)
        decrypt_s = time.perf_counter() - start
        for hospital in self.hospitals:
            hospital.step(average, learning_rate)
        return RoundResult(
            tuple(messages), average, gradients, encrypt_s, add_s, decrypt_s, sequence, mask_s, clean
        )
