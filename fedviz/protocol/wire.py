"""Ciphertexts as bytes, for engines that move messages between processes.

Invariant: every ciphertext is written as exactly `PublicParams.ciphertext_bytes` big-endian
bytes (an integer below n**2), so a payload's length says how many ciphertexts it holds and
nothing about their values; the exponent is the codec's, agreed in public, never sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from phe.paillier import EncryptedNumber

from fedviz.crypto.keys import PublicParams


def to_payload(public: PublicParams, ciphertexts: Sequence[EncryptedNumber]) -> bytes:
    width = public.ciphertext_bytes
    return b"".join(int(c.ciphertext(False)).to_bytes(width, "big") for c in ciphertexts)


def from_payload(public: PublicParams, payload: bytes, exponent: int) -> tuple[EncryptedNumber, ...]:
    """The ciphertexts of a payload; `ValueError` if it is not a whole number of them or one is
    not below n**2."""
    width = public.ciphertext_bytes
    if not payload or len(payload) % width:
        raise ValueError(
            f"a payload of {len(payload)} bytes is not a whole number of {width}-byte ciphertexts"
        )
    values = [int.from_bytes(payload[i : i + width], "big") for i in range(0, len(payload), width)]
    if any(v >= public.nsquare or v == 0 for v in values):
        raise ValueError("a ciphertext is out of range for this key")
    return tuple(EncryptedNumber(public.public_key, v, exponent) for v in values)
