"""Fixed-base windowed exponentiation: many powers of one base, one multiplication per window.

When the base never changes (the DJN base hs of a public key), its powers can be tabulated
once and every later exponentiation becomes a product of table entries: with windows of w
bits, an exponent of k bits costs ceil(k / w) multiplications modulo m instead of about k
squarings. The price is memory: ceil(k / w) * 2**w residues of m's size.

This module imports only gmpy2 and the standard library (process-pool workers load it).
"""

from __future__ import annotations

import gmpy2


class FixedBaseTable:
    """Powers of `base` modulo `modulus` for exponents of at most `exponent_bits` bits.

    Invariant: with w = `window` and `windows` = ceil(exponent_bits / w) rows,
    ``table[i][j] == base**(j * 2**(w*i)) % modulus`` for 0 <= i < windows, 0 <= j < 2**w.
    Writing e in base 2**w as digits e_i (e = sum e_i * 2**(w*i)), for every
    0 <= e < 2**exponent_bits:  ``pow(base, e, modulus) == prod(table[i][e_i]) % modulus``,
    which `pow` computes with one multiplication per non-zero digit.

    Memory: windows * 2**w residues of modulus.bit_length() bits each (see `nbytes`).
    Building costs about windows * 2**w multiplications modulo m.
    The table holds only powers of the (public) base: nothing in it is secret.
    """

    __slots__ = ("_mask", "_rows", "exponent_bits", "modulus", "window")

    def __init__(self, base: int, modulus: int, exponent_bits: int, window: int) -> None:
        if modulus < 2:
            raise ValueError("the modulus must be at least 2")
        if exponent_bits < 1:
            raise ValueError("exponent_bits must be at least 1")
        if not 1 <= window <= 16:
            raise ValueError("the window must be 1..16 bits")
        self.modulus = gmpy2.mpz(modulus)
        self.exponent_bits = exponent_bits
        self.window = window
        self._mask = (1 << window) - 1
        m = self.modulus
        one = gmpy2.mpz(1)
        step = gmpy2.mpz(base) % m  # base**(2**(w*i)) for the row being built
        rows: list[list[gmpy2.mpz]] = []
        for _ in range(-(-exponent_bits // window)):
            row = [one, step]
            for _ in range(self._mask - 1):
                row.append(row[-1] * step % m)
            rows.append(row)
            step = row[-1] * step % m
        self._rows = rows

    @property
    def windows(self) -> int:
        return len(self._rows)

    def entry(self, i: int, j: int) -> int:
        """table[i][j] == base**(j * 2**(window*i)) % modulus."""
        return int(self._rows[i][j])

    @property
    def nbytes(self) -> int:
        """Memory held by the table's residues (an estimate: limbs plus each object's header)."""
        return sum(entry.__sizeof__() for row in self._rows for entry in row)

    def pow(self, exponent: int) -> gmpy2.mpz:
        """base**exponent % modulus for 0 <= exponent < 2**exponent_bits."""
        if exponent < 0 or exponent >> self.exponent_bits:
            raise ValueError(f"the exponent must be in [0, 2**{self.exponent_bits})")
        m, mask, w = self.modulus, self._mask, self.window
        acc: gmpy2.mpz | None = None
        for row in self._rows:
            digit = exponent & mask
            if digit:
                acc = row[digit] if acc is None else acc * row[digit] % m
            exponent >>= w
            if not exponent:
                break
        return gmpy2.mpz(1) % m if acc is None else acc
