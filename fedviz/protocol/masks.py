"""Pairwise masks (the SecAgg idea, on top of Paillier).

Every pair of hospitals {i, j} agrees a seed by X25519 key agreement (each holds its own
private key and the other's public key; HKDF-SHA256 turns the shared secret into the seed).
Each round, SHAKE-256 expands a seed into one integer m_ij below the modulus n per ciphertext.
The lower-numbered hospital of the pair adds m_ij to its encoded plaintexts, the higher one
subtracts it, mod n, before encrypting.

Invariants:
- Over all hospitals the masks sum to 0 mod n, for every round and ciphertext index: the
  ring's full sum decrypts to exactly the unmasked sum, whatever the ring order.
- A prefix Enc(g_1 + ... + g_k), k < n, carries the masks of every pair with one member
  inside and one outside it: to anyone missing one of those seeds it is uniform mod n.
- A seed lives only with its two hospitals: `PairwiseMasks` refuses pickling and copying.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedviz.crypto.sealing import HopKey, _Secret, join

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
"""What each hospital publishes for the agreement: its X25519 public key."""


class PairwiseMasks(_Secret):
    """Hospital `own`'s seeds with every other hospital (0-based indices), and its masks."""

    def __init__(self, own: int, key: HopKey, peers: Mapping[int, bytes], context: bytes) -> None:
        self.own = own
        self.peers = tuple(sorted(j for j in peers if j != own))
        self.__seeds = {j: _seed(key, peers[j], context, own, j) for j in self.peers}

    def sign(self, peer: int) -> int:
        """+1 if this hospital adds the pair's mask, -1 if it subtracts it."""
        return 1 if self.own < peer else -1

    def pair_mask(self, peer: int, round_: int, index: int, n: int) -> int:
        """m for the pair {own, peer} in this round at ciphertext `index` (unsigned, below n)."""
        return expand(self.__seeds[peer], round_, index, n)

    def mask(self, round_: int, count: int, n: int) -> list[int]:
        """This hospital's total mask per ciphertext: the signed sum of its pairs' masks mod n."""
        return [
            sum(self.sign(j) * self.pair_mask(j, round_, i, n) for j in self.peers) % n for i in range(count)
        ]

    def apply(self, plaintexts: list[int], round_: int, n: int) -> list[int]:
        """The plaintexts with this hospital's mask added, mod n."""
        return [(m + x) % n for m, x in zip(plaintexts, self.mask(round_, len(plaintexts), n), strict=True)]

    def __repr__(self) -> str:
        return f"PairwiseMasks(hospital {self.own + 1}, {len(self.peers)} seeds hidden)"


def _seed(key: HopKey, peer_public: bytes, context: bytes, a: int, b: int) -> bytes:
    low, high = sorted((a, b))
    info = join(b"fedviz pair mask", context, str(low), str(high))
    return HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None, info=info).derive(
        key.shared(peer_public)
    )


def expand(seed: bytes, round_: int, index: int, n: int) -> int:
    """A pseudo-random integer below n from the seed (128 extra bits make the bias negligible)."""
    size = (n.bit_length() + 128 + 7) // 8
    stream = hashlib.shake_256(join(seed, str(round_), str(index))).digest(size)
    return int.from_bytes(stream, "big") % n


@dataclass(frozen=True)
class Agreement:
    """What the in-process agreement cost (the masks themselves stay with their hospitals)."""

    pairs: int
    seconds: float
    public_bytes: int
    """Bytes published: one X25519 public key per hospital."""


def agree(hospitals: int, context: bytes) -> tuple[list[PairwiseMasks], Agreement]:
    """Every hospital makes an X25519 key, publishes the public half, and derives a seed with
    each other hospital. In one process this plays all parties; on Flower each node does its
    own part with the hop key its card already publishes."""
    start = time.perf_counter()
    keys = [HopKey() for _ in range(hospitals)]
    public = {i: k.public for i, k in enumerate(keys)}
    masks = [PairwiseMasks(i, k, public, context) for i, k in enumerate(keys)]
    seconds = time.perf_counter() - start
    return masks, Agreement(hospitals * (hospitals - 1) // 2, seconds, hospitals * PUBLIC_KEY_BYTES)
