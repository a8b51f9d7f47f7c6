"""Summing a public-shape vector of statistics through the encrypted ring (federated
standardisation's counts, sums and sums of squares).

Exactly the gradients' path: each hospital encodes its vector on the agreed fixed-point grid
(one ciphertext per value, the per-value layout, whose range n/3 holds sums of squares of
any realistic data), encrypts it with fresh randomness, adds it to what it received and
passes it on; the key holder decrypts only the complete total. No party sees another's
statistics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedviz.crypto import obfuscators
from fedviz.crypto.encoding import PerValueCodec
from fedviz.crypto.keys import add_vectors, encrypt_with
from fedviz.protocol.parties import RingMessage, Server, hospital_name


@dataclass(frozen=True)
class RingTotal:
    total: np.ndarray
    ciphertexts: int
    """Ciphertexts each hospital sent."""
    seconds: float


def total_through_ring(parts: Sequence[np.ndarray], server: Server) -> RingTotal:
    """The sum of the hospitals' `parts` (in hospital order), as the key holder decrypts it."""
    start = time.perf_counter()
    public = server.public
    n = len(parts)
    codec = PerValueCodec(public.n, len(parts[0]), n)
    message: RingMessage | None = None
    for k, part in enumerate(parts):
        drawn = obfuscators.draw(public.n, public.hs, public.exponent_bits, codec.ciphertexts)
        own = tuple(
            encrypt_with(public, m, r, codec.exponent) for m, r in zip(codec.encode(part), drawn, strict=True)
        )
        receiver = server.name if k == n - 1 else hospital_name(k + 1)
        summed = own if message is None else add_vectors(message.ciphertexts, own)
        message = RingMessage(hospital_name(k), receiver, summed, k + 1)
    assert message is not None
    total = server.total(message, codec, n)
    return RingTotal(total, codec.ciphertexts, time.perf_counter() - start)
