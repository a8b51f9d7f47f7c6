"""Fixed-point encodings of a gradient vector into Paillier plaintexts (integers mod n).

Both encodings scale every value by 2**FRACTION_BITS and round once, so the integer sum of
the hospitals' encodings is exact and both decode to the same floats: encryption never
changes learning beyond that single rounding (2**-57 absolute, far below float64 noise on
these gradients).

- `PerValueCodec`: one plaintext per value, negatives as n - |q| (phe's convention), phe
  exponent -14 on every ciphertext (16**-14 == 2**-56). One agreed exponent means the
  exponent travelling in the clear says nothing about each value's magnitude.
- `PackedCodec`: many values in slots of one plaintext. Each value q gets the public offset
  2**(B-1) so slots are non-negative and < 2**B; a slot is B + carry bits wide, where the
  carry bits hold the sum of all hospitals, so adding ciphertexts never spills into the
  next slot. Out-of-range values raise `EncodingOverflow`; nothing is wrapped silently.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fedviz.errors import EncodingOverflow

FRACTION_BITS = 56
"""Binary digits after the point: the fixed-point grid is 2**-56."""
PHE_EXPONENT = -FRACTION_BITS // 4
"""The same scale in phe's base-16 exponent: 16**-14 == 2**-56."""
MIN_INTEGER_BITS = 24
"""The packed layout keeps at least this many bits before the point (|value| < 2**24 ≈ 1.7e7)."""


def to_fixed(value: float) -> int:
    """round(value * 2**56) as an exact integer; non-finite values raise `EncodingOverflow`."""
    if not math.isfinite(value):
        raise EncodingOverflow(f"cannot encode the non-finite value {value}")
    try:
        return round(math.ldexp(value, FRACTION_BITS))
    except OverflowError:
        raise EncodingOverflow(f"cannot encode {value:.3g}: too large") from None


def from_fixed(q: int) -> float:
    """q * 2**-56, correctly rounded to float64 (±inf beyond float64's range)."""
    try:
        return math.ldexp(float(q), -FRACTION_BITS)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


MAX_SCALABLE = math.ldexp(sys.float_info.max, -FRACTION_BITS)
"""Largest |value| whose value * 2**56 is still a finite float (about 2.5e291)."""


def largest_encodable(bound: int) -> float:
    """The largest float whose fixed-point integer is at most `bound`, capped at the largest
    float `to_fixed` can scale (per-value codecs at 2048+ bits allow more than float64 holds)."""
    value = min(from_fixed(bound), MAX_SCALABLE)
    while to_fixed(value) > bound:
        value = math.nextafter(value, 0.0)
    return value


class Codec(Protocol):
    """What the ring agrees on before the first round: how a vector becomes plaintexts."""

    @property
    def name(self) -> str: ...

    @property
    def exponent(self) -> int: ...

    @property
    def ciphertexts(self) -> int: ...

    @property
    def max_abs(self) -> float: ...

    @property
    def plaintext_bound(self) -> int | None: ...

    def encode(self, values: np.ndarray) -> list[int]: ...

    def decode_sum(self, plaintexts: list[int], count: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PerValueCodec:
    """One plaintext per value; sums of up to `hospitals` encodings stay inside phe's
    max_int (about n/3), the range phe itself uses to detect overflow."""

    n: int
    dims: int
    hospitals: int
    name: str = "per-value"
    exponent: int = PHE_EXPONENT

    @property
    def max_int(self) -> int:
        return self.n // 3 - 1

    @property
    def bound(self) -> int:
        """Largest |q| one hospital may send, so that the full sum still decodes."""
        return self.max_int // self.hospitals

    @property
    def ciphertexts(self) -> int:
        return self.dims

    @property
    def max_abs(self) -> float:
        return largest_encodable(self.bound)

    @property
    def plaintext_bound(self) -> int | None:
        """None: negatives wrap to n - |q|, so a plaintext may be anywhere below n."""
        return None

    def encode(self, values: np.ndarray) -> list[int]:
        out = []
        for v in values:
            q = to_fixed(float(v))
            if abs(q) > self.bound:
                raise EncodingOverflow(
                    f"value {float(v):.3g} exceeds the per-value range ±{self.max_abs:.3g}"
                )
            out.append(q % self.n)
        return out

    def decode_sum(self, plaintexts: list[int], count: int) -> np.ndarray:
        values = []
        for x in plaintexts:
            if 0 <= x <= self.max_int:
                q = x
            elif self.n - self.max_int <= x < self.n:
                q = x - self.n
            else:
                raise EncodingOverflow("a decrypted sum lies in phe's overflow band")
            values.append(from_fixed(q))
        return np.array(values)


@dataclass(frozen=True)
class PackedCodec:
    """Slots of `slot_bits` bits, `slots` per plaintext, `ciphertexts` plaintexts per vector.

    Layout (value i lives in plaintext i // slots, at bit (i % slots) * slot_bits):
    slot = q + 2**(value_bits - 1), with 0 <= slot < 2**value_bits for one hospital and
    < 2**slot_bits for the sum of `hospitals` of them; slots * slot_bits < bit length of n,
    so every sum is below n and decrypts exactly.
    """

    n: int
    dims: int
    hospitals: int
    slot_bits: int
    value_bits: int
    slots: int
    name: str = "packed"
    exponent: int = 0

    @classmethod
    def plan(cls, n: int, dims: int, hospitals: int) -> PackedCodec:
        """The widest slots that fit all `dims` values in as few plaintexts as possible while
        keeping at least `MIN_INTEGER_BITS` before the point.

        When every value fits in one plaintext below half the modulus's bits (2048 bits and
        up), that layout is taken: the sum then stays below both primes of the key, so the
        key holder decrypts it with one CRT half, half the work (`plaintext_bound`). The
        grid (2**-56) is the same, so results are identical; the range per value is what the
        next key size down would give (±1.7e10 at 2048 bits instead of ±1.7e38)."""
        half = n.bit_length() // 2 - 1
        for capacity in (half, n.bit_length() - 1):
            codec = cls._fit(n, dims, hospitals, capacity)
            if codec is not None and (capacity != half or codec.ciphertexts == 1):
                return codec
        raise EncodingOverflow(
            f"a {n.bit_length()}-bit key cannot hold even one slot for {hospitals} hospitals"
        )

    @classmethod
    def _fit(cls, n: int, dims: int, hospitals: int, capacity: int) -> PackedCodec | None:
        carry = (hospitals - 1).bit_length()
        for slots in range(dims, 0, -1):
            slot_bits = capacity // slots
            value_bits = slot_bits - carry
            if value_bits - 1 - FRACTION_BITS >= MIN_INTEGER_BITS:
                return cls(n, dims, hospitals, slot_bits, value_bits, slots)
        return None

    @property
    def plaintext_bound(self) -> int:
        """Every plaintext (a sum of up to `hospitals` encodings) is below this."""
        return 1 << (self.slots * self.slot_bits)

    @property
    def carry_bits(self) -> int:
        return self.slot_bits - self.value_bits

    @property
    def offset(self) -> int:
        return 1 << (self.value_bits - 1)

    @property
    def ciphertexts(self) -> int:
        return -(-self.dims // self.slots)

    @property
    def max_abs(self) -> float:
        return largest_encodable(self.offset - 1)

    def encode(self, values: np.ndarray) -> list[int]:
        if len(values) != self.dims:
            raise ValueError(f"expected {self.dims} values, got {len(values)}")
        plaintexts = [0] * self.ciphertexts
        for i, v in enumerate(values):
            q = to_fixed(float(v))
            if abs(q) >= self.offset:
                raise EncodingOverflow(
                    f"value {float(v):.3g} exceeds the packed slot range ±{self.max_abs:.3g}"
                )
            plaintexts[i // self.slots] |= (q + self.offset) << ((i % self.slots) * self.slot_bits)
        return plaintexts

    def decode_sum(self, plaintexts: list[int], count: int) -> np.ndarray:
        """Unpack a sum of `count` encodings (count <= hospitals)."""
        if not 1 <= count <= self.hospitals:
            raise ValueError(f"count must be 1..{self.hospitals}")
        mask = (1 << self.slot_bits) - 1
        values = []
        for i in range(self.dims):
            x = plaintexts[i // self.slots]
            if x >> (self.slots * self.slot_bits):
                raise EncodingOverflow("a decrypted packed sum has bits above its last slot")
            slot = (x >> ((i % self.slots) * self.slot_bits)) & mask
            values.append(from_fixed(slot - count * self.offset))
        return np.array(values)

    def slot_of(self, plaintext: int, slot: int) -> int:
        """The raw slot content (offsets included), for showing the layout."""
        return (plaintext >> (slot * self.slot_bits)) & ((1 << self.slot_bits) - 1)


def make_codec(name: str, n: int, dims: int, hospitals: int) -> PerValueCodec | PackedCodec:
    if name == "packed":
        return PackedCodec.plan(n, dims, hospitals)
    if name == "per-value":
        return PerValueCodec(n, dims, hospitals)
    raise ValueError(f"unknown encoding {name!r}")
