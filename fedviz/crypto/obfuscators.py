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

Fast at scale: hs is fixed per key, so each process keeps a fixed-base table of its powers
(`fedviz.crypto.fixedbase`) and hs**a becomes one multiplication per window of a. The table is
a pure function of public values (n, hs); a is drawn exactly as before. Tables grow with use
(`LADDER`): a process's first draws for a key are plain exponentiations (a short run or the
first rounds never wait for a table), then a small table, then a large one once the key has
proved busy. At most `CACHED_KEYS` keys' tables are kept per process (least recent dropped).

Measured with `python -m benchmarks.scale` (gmpy2, 2-core VM; build time and memory are per
process and key; "x" is the speed-up over plain gmpy2.powmod):

| key bits | a bits | plain hs**a | window 5 | window 8 | build w=5 / w=8 | memory w=5 / w=8 |
|---:|---:|---:|---:|---:|---:|---:|
| 1024 | 160 | 0.29 ms | 0.072 ms (4.0x) | 0.054 ms (5.3x) | 3 / 13 ms | 0.3 / 1.5 MB |
| 2048 | 224 | 1.46 ms | 0.257 ms (5.7x) | 0.197 ms (7.4x) | 9 / 49 ms | 0.8 / 4.0 MB |
| 3072 | 256 | 3.17 ms | 0.554 ms (5.7x) | 0.342 ms (9.3x) | 18 / 112 ms | 1.3 / 6.6 MB |
| 4096 | 304 | 5.70 ms | 1.170 ms (4.9x) | 0.853 ms (6.7x) | 43 / 193 ms | 2.0 / 10.3 MB |

This module imports only gmpy2, the standard library and `fixedbase` so pool workers start
quickly.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

import gmpy2

from fedviz.crypto.fixedbase import FixedBaseTable

LADDER: tuple[tuple[int, int], ...] = ((8, 5), (512, 8))
"""(draws already made for a key in this process, window bits of the table from then on).

Before the first rung: plain gmpy2.powmod. Each threshold is about the number of draws after
which that rung's build has paid for itself (rent-or-buy: build once the draws seen so far
would have paid for it): w=5 costs ~6-8 plain exponentiations to build and saves ~80% of
each; w=8 costs 5x more again and saves a further 25-40% (break-even 530-820 draws at
2048-4096 bits). So a 3-hospital, 50-round run builds one w=5 table per worker after a few
rounds (9 ms at 2048 bits, behind the prefetch), and 40 hospitals x 200 rounds at 4096 bits
(4000 draws per worker) spends most draws on w=8."""

CACHED_KEYS = 2
"""Keys whose tables one process keeps (up to ~10 MB each at 4096 bits)."""


@dataclass
class _KeyState:
    draws: int = 0
    table: FixedBaseTable | None = None


_cache: OrderedDict[tuple[int, int, int], _KeyState] = OrderedDict()
_cache_lock = threading.Lock()


def window_for(draws: int) -> int | None:
    """The table window for a key that has had `draws` draws in this process (None: no table)."""
    window = None
    for threshold, bits in LADDER:
        if draws >= threshold:
            window = bits
    return window


def _djn_table(n: int, hs: int, nsquare: gmpy2.mpz, exponent_bits: int) -> FixedBaseTable | None:
    """The table for this key's next draw (built, or upgraded, when the ladder says so)."""
    key = (n, hs, exponent_bits)
    with _cache_lock:
        state = _cache.get(key)
        if state is None:
            state = _cache[key] = _KeyState()
            while len(_cache) > CACHED_KEYS:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        window = window_for(state.draws)
        state.draws += 1
        table = state.table
    if window is not None and (table is None or table.window < window):
        # Built outside the lock: another thread may build the same table meanwhile (wasted
        # work, never a wrong value: both are the same pure function of public values).
        table = FixedBaseTable(hs, nsquare, max(exponent_bits, 1), window)
        with _cache_lock:
            if state.table is None or state.table.window < window:
                state.table = table
    return table


def cached_tables() -> list[tuple[int, int | None]]:
    """(n, table window or None) of each key cached in this process, least recent first."""
    with _cache_lock:
        return [(key[0], s.table.window if s.table else None) for key, s in _cache.items()]


def clear_cache() -> None:
    """Forget every table (tests; frees the memory)."""
    with _cache_lock:
        _cache.clear()


def draw(n: int, hs: int | None, exponent_bits: int, count: int) -> list[int]:
    """`count` fresh obfuscators for the public key n (djn when hs is given)."""
    nsquare = gmpy2.mpz(n) * n
    out: list[int] = []
    if hs is None:
        for _ in range(count):
            while True:
                r = secrets.randbelow(n - 1) + 1
                if gmpy2.gcd(r, n) == 1:
                    break
            out.append(int(gmpy2.powmod(r, n, nsquare)))
        return out
    for _ in range(count):
        table = _djn_table(n, hs, nsquare, exponent_bits)
        a = secrets.randbits(exponent_bits) | 1
        out.append(int(gmpy2.powmod(hs, a, nsquare) if table is None else table.pow(a)))
    return out


def warm_up() -> int:
    """A no-op task that makes a pool start its workers (returns the worker's pid)."""
    import os

    return os.getpid()
