"""The fixed-base table gives exactly gmpy2.powmod, and the djn obfuscators drawn through it
are exactly hs**a for the same a; the per-process table cache stays bounded."""

import random
import secrets

import gmpy2
import pytest

from fedviz.crypto import obfuscators
from fedviz.crypto.fixedbase import FixedBaseTable

RNG = random.Random(20240611)


def odd_modulus(bits: int) -> int:
    return RNG.getrandbits(bits) | (1 << (bits - 1)) | 1


def exponents(bits: int) -> list[int]:
    """Edge cases and random exponents of at most `bits` bits."""
    top = (1 << bits) - 1
    edge = [0, 1, 2, top, 1 << (bits - 1), top ^ 1, top >> 1]
    # zero windows in the middle, non-zero at both ends
    edge.append((1 << (bits - 1)) | 1)
    return [e for e in edge if e <= top] + [RNG.getrandbits(bits) for _ in range(25)]


@pytest.mark.parametrize(
    ("modulus_bits", "exponent_bits", "window"),
    [(64, 1, 1), (64, 7, 3), (257, 33, 4), (1024, 160, 5), (2048, 224, 8), (4096, 304, 8), (1024, 100, 7)],
)
def test_pow_equals_powmod(modulus_bits: int, exponent_bits: int, window: int) -> None:
    m = odd_modulus(modulus_bits)
    base = RNG.getrandbits(modulus_bits + 5)  # larger than the modulus: reduced first
    table = FixedBaseTable(base, m, exponent_bits, window)
    assert table.windows == -(-exponent_bits // window)
    for e in exponents(exponent_bits):
        assert table.pow(e) == gmpy2.powmod(base, e, m), e


def test_table_entries_follow_the_invariant() -> None:
    m = odd_modulus(512)
    base = RNG.getrandbits(512)
    table = FixedBaseTable(base, m, 50, 4)
    for i in range(table.windows):
        for j in (0, 1, 2, 7, 15):
            assert table.entry(i, j) == gmpy2.powmod(base, j << (4 * i), m)


def test_exponent_out_of_range_raises() -> None:
    table = FixedBaseTable(3, odd_modulus(128), 20, 6)  # 4 windows cover 24 bits, but 20 declared
    assert table.pow((1 << 20) - 1) == gmpy2.powmod(3, (1 << 20) - 1, table.modulus)
    for bad in (1 << 20, (1 << 24) - 1, 1 << 200, -1):
        with pytest.raises(ValueError, match="exponent"):
            table.pow(bad)


def test_degenerate_bases_and_arguments() -> None:
    m = odd_modulus(100)
    zero = FixedBaseTable(m * 3, m, 16, 4)  # base == 0 mod m
    assert zero.pow(0) == 1
    assert zero.pow(5) == 0
    one = FixedBaseTable(1, m, 16, 4)
    assert all(one.pow(e) == 1 for e in (0, 1, 65535))
    for args in ((2, 1, 8, 4), (2, m, 0, 4), (2, m, 8, 0), (2, m, 8, 17)):
        with pytest.raises(ValueError):
            FixedBaseTable(*args)


def test_memory_estimate_scales_with_the_table() -> None:
    m = odd_modulus(2048)
    small, large = FixedBaseTable(5, m, 64, 4), FixedBaseTable(5, m, 64, 8)
    assert large.windows * 256 == 8 * 256
    # residues of ~2048 bits: at least 256 bytes each for all but the tiny first entries
    assert large.nbytes > 256 * (large.windows * 255)
    assert large.nbytes > 4 * small.nbytes


# --- draw(): the same obfuscators as before, through the table ------------------------------


@pytest.fixture
def fresh_cache():
    obfuscators.clear_cache()
    yield
    obfuscators.clear_cache()


def public_key(bits: int) -> tuple[int, int]:
    n = odd_modulus(bits)
    h = RNG.getrandbits(bits) % n
    return n, int(gmpy2.powmod(h, n, n * n))


def test_djn_draws_equal_hs_to_the_same_exponent(monkeypatch, fresh_cache) -> None:
    n, hs = public_key(512)
    bits = 96
    drawn: list[int] = []
    real = secrets.randbits

    def recording(k: int) -> int:
        assert k == bits
        value = real(k)
        drawn.append(value)
        return value

    monkeypatch.setattr(obfuscators.secrets, "randbits", recording)
    last = obfuscators.LADDER[-1][0]
    # through every rung of the ladder: plain powmod, the small table, the large one
    values = obfuscators.draw(n, hs, bits, 3) + obfuscators.draw(n, hs, bits, last)
    values += [obfuscators.draw(n, hs, bits, 1)[0] for _ in range(5)]
    assert len(values) == len(drawn) == last + 8
    for value, a in zip(values, drawn):
        assert value == gmpy2.powmod(hs, a | 1, n * n)
    assert obfuscators.cached_tables() == [(n, obfuscators.LADDER[-1][1])]


def test_the_exponent_keeps_its_distribution(monkeypatch, fresh_cache) -> None:
    """a = randbits(exponent_bits) | 1 exactly: the top bit is used, the low bit forced."""
    n, hs = public_key(256)
    bits = 40
    for a in (0, (1 << bits) - 1, 1 << (bits - 1), 6):
        monkeypatch.setattr(obfuscators.secrets, "randbits", lambda k, a=a: a)
        for _ in range(obfuscators.LADDER[0][0] + 1):  # before and after the first table
            assert obfuscators.draw(n, hs, bits, 1) == [gmpy2.powmod(hs, a | 1, n * n)]


def test_ladder_starts_without_a_table(fresh_cache) -> None:
    n, hs = public_key(256)
    first_rung, first_window = obfuscators.LADDER[0]
    obfuscators.draw(n, hs, 64, first_rung)
    assert obfuscators.cached_tables() == [(n, None)]
    obfuscators.draw(n, hs, 64, 1)
    assert obfuscators.cached_tables() == [(n, first_window)]
    assert obfuscators.window_for(0) is None
    assert obfuscators.window_for(10**9) == obfuscators.LADDER[-1][1]


def test_cache_is_bounded_and_keeps_the_recent_keys(fresh_cache) -> None:
    keys = [public_key(256) for _ in range(obfuscators.CACHED_KEYS + 3)]
    for n, hs in keys:
        values = obfuscators.draw(n, hs, 64, 4)
        assert len(set(values)) == 4
    cached = [n for n, _ in obfuscators.cached_tables()]
    assert cached == [n for n, _ in keys[-obfuscators.CACHED_KEYS :]]
    # using an older cached key makes it the most recent
    n0, hs0 = keys[-obfuscators.CACHED_KEYS]
    obfuscators.draw(n0, hs0, 64, 1)
    assert obfuscators.cached_tables()[-1][0] == n0


def test_standard_draws_are_nth_residues_and_use_no_table(fresh_cache) -> None:
    p, q = 1000003, 1000033
    n = p * q
    lam = (p - 1) * (q - 1)
    values = obfuscators.draw(n, None, 0, 6)
    assert len(set(values)) == 6
    for v in values:
        assert 0 < v < n * n
        assert pow(v, lam, n * n) == 1  # r**n has order dividing lambda(n) mod n**2
    assert obfuscators.cached_tables() == []
