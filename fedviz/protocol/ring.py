"""The ring: hospitals in their fixed order add their encrypted gradients, then the server.

Invariant: each hop carries Enc(g_1 + ... + g_k) and its contribution count k; only the
last hop (k = hospitals) reaches the server, which decrypts nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedviz.crypto.encoding import Codec
from fedviz.protocol.parties import Hospital, RingMessage, Server


@dataclass(frozen=True)
class RoundResult:
    """One federated round: the hops in order, the broadcast average and the phase times."""

    messages: tuple[RingMessage, ...]
    average: np.ndarray
    gradients: tuple[np.ndarray, ...]
    encrypt_s: float
    add_s: float
    decrypt_s: float


class Ring:
    """Hospitals in their fixed order, then the server."""

    def __init__(self, hospitals: Sequence[Hospital], server: Server, codec: Codec) -> None:
        self.hospitals = tuple(hospitals)
        self.server = server
        self.codec = codec
        for hospital in self.hospitals:
            hospital.join(server.public, codec)

    def receiver_of(self, position: int) -> str:
        last = position == len(self.hospitals) - 1
        return self.server.name if last else self.hospitals[position + 1].name

    def run_round(self, obfuscators: Sequence[Sequence[int]], learning_rate: float) -> RoundResult:
        """Each hospital encrypts, the ring adds in order, the server decrypts, all step."""
        gradients = tuple(h.gradient() for h in self.hospitals)
        start = time.perf_counter()
        encrypted = [h.encrypt(g, r) for h, g, r in zip(self.hospitals, gradients, obfuscators, strict=True)]
        encrypt_s = time.perf_counter() - start
        start = time.perf_counter()
        messages: list[RingMessage] = []
        incoming: RingMessage | None = None
        for position, (hospital, own) in enumerate(zip(self.hospitals, encrypted, strict=True)):
            incoming = hospital.forward(incoming, own, self.receiver_of(position))
            messages.append(incoming)
        add_s = time.perf_counter() - start
        start = time.perf_counter()
        assert incoming is not None
        average = self.server.average(incoming, self.codec, len(self.hospitals))
        decrypt_s = time.perf_counter() - start
        for hospital in self.hospitals:
            hospital.step(average, learning_rate)
        return RoundResult(tuple(messages), average, gradients, encrypt_s, add_s, decrypt_s)
