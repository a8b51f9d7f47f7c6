"""Paillier obfuscators r**n mod n**2: the expensive, message-independent half of encryption.

A Paillier ciphertext is (1 + m*n) * r**n mod n**2. Only r**n is costly and it does not
depend on m, so a hospital can compute it ahead of time (here: in worker processes) and
encryption on the critical path becomes one multiplication.

Two ways to draw r**n, both from the operating system's CSPRNG (`secrets`):
- "standard": r uniform in [1, n) and one full exponentiation r**n (phe's own method).
- "djn": hs**a with hs = h**n for a public h = -x**2 mod n fixed at key generation, and a
  short random exponent a of 2*kappa bits (kappa = the key's security level). This is the
  short-exponent variant of Damgard, Jurik and Nielsen (2010). Security: hs**a is an n-th
  residue, so ciphertexts stay semantically secure under DCR *provided* hs**a with a short a
  cannot be told from a uniform n-th residue; the best known attacks on that (baby-step
  giant-step, Pollard's lambda) cost 2**(bits(a)/2) = 2**kappa. It is an added assumption,
  stated here and in the README; choose "standard" to rely on DCR alone.

This module imports only gmpy2 and the standard library so pool workers start quickly.
"""

from __future__ import annotations

import secrets

import gmpy2


def draw(n: int, hs: int | None, exponent_bits: int, count: int) -> list[int]:
    """`count` fresh obfuscators for the public key n (djn when hs is given)."""
    nsquare = gmpy2.mpz(n) * n
    out: list[int] = []
    for _ in range(count):
        if hs is None:
            while True:
                r = secrets.randbelow(n - 1) + 1
                if gmpy2.gcd(r, n) == 1:
                    break
            out.append(int(gmpy2.powmod(r, n, nsquare)))
        else:
            a = secrets.randbits(exponent_bits) | 1
            out.append(int(gmpy2.powmod(hs, a, nsquare)))
    return out


def warm_up() -> int:
    """A no-op task that makes a pool start its workers (returns the worker's pid)."""
    import os

    return os.getpid()
