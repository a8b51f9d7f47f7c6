"""Fixed-point codecs: round trips, negatives, the largest sums, overflow never wraps."""

import math

import numpy as np
import pytest
from phe import paillier

from fedviz.crypto.encoding import (
    FRACTION_BITS,
    MAX_SCALABLE,
    MIN_INTEGER_BITS,
    PackedCodec,
    PerValueCodec,
    from_fixed,
    make_codec,
    to_fixed,
)
from fedviz.errors import EncodingOverflow

KEY = paillier.generate_paillier_keypair(n_length=1024)
N = KEY[0].n
RNG = np.random.default_rng(1)


def codecs(hospitals: int, n: int = N):
    return [PackedCodec.plan(n, 11, hospitals), PerValueCodec(n, 11, hospitals)]


def summed(codec, vectors):
    """The plaintext sum mod n, as the ring's homomorphic additions produce it."""
    parts = [codec.encode(v) for v in vectors]
    return [sum(col) % N for col in zip(*parts, strict=True)]


def test_fixed_point_is_one_rounding():
    for v in RNG.normal(0, 1e3, 100):
        assert abs(from_fixed(to_fixed(v)) - v) <= 2.0 ** -(FRACTION_BITS + 1) + abs(v) * 2**-52
    with pytest.raises(EncodingOverflow):
        to_fixed(math.nan)
    with pytest.raises(EncodingOverflow):
        to_fixed(math.inf)


@pytest.mark.parametrize("hospitals", [1, 2, 3, 10, 78])
def test_random_vectors_sum_exactly(hospitals):
    for codec in codecs(hospitals):
        vectors = [RNG.normal(0, 300, 11) * RNG.choice([1, -1], 11) for _ in range(hospitals)]
        expected = [from_fixed(sum(to_fixed(v[i]) for v in vectors)) for i in range(11)]
        for count in range(1, hospitals + 1):  # every prefix of the ring decodes too
            prefix = [from_fixed(sum(to_fixed(v[i]) for v in vectors[:count])) for i in range(11)]
            assert list(codec.decode_sum(summed(codec, vectors[:count]), count)) == prefix
        assert list(codec.decode_sum(summed(codec, vectors), hospitals)) == expected


@pytest.mark.parametrize("hospitals", [2, 3, 7, 78])
def test_the_largest_representable_sums_decode(hospitals):
    for codec in codecs(hospitals):
        top = codec.max_abs
        for sign in (1.0, -1.0):
            vectors = [np.full(11, sign * top) for _ in range(hospitals)]
            got = codec.decode_sum(summed(codec, vectors), hospitals)
            assert np.all(got == from_fixed(hospitals * to_fixed(sign * top)))
        mixed = [np.where(np.arange(11) % 2 == 0, top, -top) for _ in range(hospitals)]
        got = codec.decode_sum(summed(codec, mixed), hospitals)
        assert np.all(np.abs(got) == from_fixed(hospitals * to_fixed(top)))


@pytest.mark.parametrize("hospitals", [2, 3, 78])
def test_overflow_raises_instead_of_wrapping(hospitals):
    for codec in codecs(hospitals):
        too_big = np.zeros(11)
        too_big[4] = codec.max_abs * 1.0001
        with pytest.raises(EncodingOverflow, match="exceeds"):
            codec.encode(too_big)
        with pytest.raises(EncodingOverflow):
            codec.encode(-too_big)
        with pytest.raises(EncodingOverflow):
            codec.encode(np.full(11, np.inf))


def test_packed_layout_follows_key_and_hospitals():
    for bits in (1024, 2048, 3072, 4096):
        n = (1 << (bits - 1)) | 1
        for hospitals in (2, 3, 10, 78):
            c = PackedCodec.plan(n, 11, hospitals)
            assert c.carry_bits == (hospitals - 1).bit_length()
            assert c.slots * c.slot_bits <= bits - 1  # every sum stays below n
            assert c.value_bits - 1 - FRACTION_BITS >= MIN_INTEGER_BITS
            assert c.ciphertexts == math.ceil(11 / c.slots)
    assert PackedCodec.plan(N, 11, 3).ciphertexts == 1  # 1024 bits hold all 11 values


def test_bits_above_the_last_slot_are_reported():
    c = PackedCodec.plan(N, 11, 3)
    with pytest.raises(EncodingOverflow):
        c.decode_sum([1 << (c.slots * c.slot_bits)], 1)
    p = PerValueCodec(N, 11, 3)
    with pytest.raises(EncodingOverflow, match="overflow band"):
        p.decode_sum([N // 2] * 11, 3)


def test_encrypted_packed_sum_decrypts_to_the_plain_sum():
    public, private = KEY
    codec = make_codec("packed", N, 11, 3)
    vectors = [RNG.normal(0, 50, 11) for _ in range(3)]
    total = None
    for v in vectors:
        (m,) = codec.encode(v)
        c = public.raw_encrypt(m)
        total = c if total is None else total * c % public.nsquare
    got = codec.decode_sum([private.raw_decrypt(total)], 3)
    np.testing.assert_allclose(got, np.sum(vectors, axis=0), rtol=1e-14)
    with pytest.raises(ValueError):
        make_codec("zip", N, 11, 3)


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_per_value_range_beyond_float64_is_every_finite_float(bits):
    n = (1 << (bits - 1)) | 1
    codec = PerValueCodec(n, 11, 78)
    assert codec.max_abs == MAX_SCALABLE
    big = np.full(11, -1e290)
    assert (
        list(codec.decode_sum([sum(c) % n for c in zip(codec.encode(big), codec.encode(big))], 2))
        == [from_fixed(2 * to_fixed(-1e290))] * 11
    )
