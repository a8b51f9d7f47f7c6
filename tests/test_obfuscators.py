"""Encryption with drawn obfuscators and fedviz's gmpy2 decryption give exactly phe's integers."""

import secrets

import pytest

from fedviz.crypto import obfuscators
from fedviz.crypto.keys import ServerKeys, encrypt_with


@pytest.fixture(scope="module", params=["djn", "standard"])
def keys(request) -> ServerKeys:
    return ServerKeys(1024, request.param)


def test_encrypt_with_is_the_paillier_formula_and_decrypts_back(keys: ServerKeys) -> None:
    public = keys.public
    n, nsquare = public.n, public.nsquare
    plaintexts = [0, 1, 2, n - 1, n // 2] + [secrets.randbelow(n) for _ in range(10)]
    rs = obfuscators.draw(n, public.hs, public.exponent_bits, len(plaintexts))
    for m, r in zip(plaintexts, rs):
        c = encrypt_with(public, m, r, -14)
        assert c.exponent == -14
        assert c.ciphertext(False) == (1 + m * n) * r % nsquare
        assert keys.decrypt_raw(c.ciphertext(False)) == m


def test_encrypt_with_reduces_out_of_range_inputs_like_the_formula(keys: ServerKeys) -> None:
    public = keys.public
    n, nsquare = public.n, public.nsquare
    r = obfuscators.draw(n, public.hs, public.exponent_bits, 1)[0]
    for m, obf in ((n + 5, r), (-3, r), (7, r + nsquare)):
        assert encrypt_with(public, m, obf, 0).ciphertext(False) == (1 + m * n) * obf % nsquare


def test_decrypt_raw_equals_phe_on_any_ciphertext(keys: ServerKeys) -> None:
    private = keys._ServerKeys__private_key  # type: ignore[attr-defined]
    nsquare = keys.public.nsquare
    for c in [1, 2, nsquare - 1] + [secrets.randbelow(nsquare) for _ in range(10)]:
        assert keys.decrypt_raw(c) == private.raw_decrypt(c)


def test_one_crt_half_when_the_plaintext_is_known_to_be_small(keys: ServerKeys) -> None:
    public = keys.public
    private = keys._ServerKeys__private_key  # type: ignore[attr-defined]
    bound = public.half_bound
    assert bound.bit_length() == public.n.bit_length() // 2
    assert bound < min(private.p, private.q)
    r = obfuscators.draw(public.n, public.hs, public.exponent_bits, 3)
    for m in (0, 1, bound - 1, secrets.randbelow(bound)):
        c = encrypt_with(public, m, r[0], 0).ciphertext(False)
        assert keys.decrypt_raw(c, below=bound) == m
    big = public.n - 5
    c = encrypt_with(public, big, r[1], 0).ciphertext(False)
    assert keys.decrypt_raw(c, below=public.n) == big  # a bound above half_bound: the full CRT
    assert keys.decrypt_raw(c, below=bound) == big % private.p  # a broken promise: m mod p
