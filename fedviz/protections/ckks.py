"""CKKS through TenSEAL, the way NVIDIA FLARE's homomorphic encryption uses it.

FLARE's roles (`nvflare/lighter/impl/he.py`, `nvflare/app_opt/he/`): provisioning makes one
TenSEAL CKKS context (N = 8192, coefficient moduli [60, 40, 40] bits, scale 2^40, symmetric
encryption) and ships it twice: with the secret key to every client, without any key to the
server. Each client encrypts its update, the server adds the ciphertexts it cannot read, and
every client decrypts the encrypted sum it gets back. This row does the same in one process:
the hospitals are the clients, the aggregator the server; the shipped contexts are the real
serialized bytes, each party loads its own, and the aggregator's has no secret key. The
average is the decrypted sum over n (a plaintext division after decryption: the ciphertexts
are only ever added, so no rescaling level is used).

What fits: a ciphertext at the top level lives modulo the product q of the data primes (all
but SEAL's last, special prime), q ≥ 2^(B − 1) for B their bit count (100 here). The sum of n
values decodes correctly while |sum| · scale stays below q/2; fedviz leaves a factor-2 margin
for the noise and has each hospital refuse a value beyond (2^(B − 3) / scale) / n, so no sum of
n can wrap. A value too large (or not finite) makes the row report `error`, never a garbage
sum.

The approximation error (`ERROR_BOUND`): each symmetric ciphertext decrypts to its encoded
plaintext plus one fresh error polynomial whose coefficients SEAL draws from a centred
binomial distribution (|e| ≤ 21; σ = 3.2), and encoding rounds each coefficient (≤ 1/2). A
slot is Σ_k c_k ζ^k / scale with |ζ| = 1, so its error is at most N · (21 + 1/2) / scale per
ciphertext; the sum of n carries at most n times that and the average divides by n. With one
more 1/2 for float64 rounding the average's error is below N · 22 / 2^40 ≈ 1.6e-7 per value
(measured: about 1e-10, the errors being random). That holds while the encoded coefficients
stay below 2^52 (values up to about 1e6 for 11 slots; the diabetes gradients reach ~1e4);
larger values still decode, with float64's relative rounding.

`import tenseal` happens in `measure` only: the dashboard imports this module without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedviz.privacy.attacks import exposed_hospitals
from fedviz.protections.base import Measured, Task, Trust, federate

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 40)
"""FLARE's HEBuilder defaults: the last prime is SEAL's special (key-switching) prime; the
ciphertexts live modulo the first two (100 bits)."""
SCALE_BITS = 40
NOISE_MAX = 21
"""SEAL's centred binomial noise lies in [−21, 21] (σ = 3.2)."""
ERROR_BOUND = POLY_MODULUS_DEGREE * (NOISE_MAX + 1) / 2**SCALE_BITS
"""No value of the decrypted average is further than this from the exact mean (≈ 1.6e-7)."""

HE_STANDARD_MAX_BITS = {128: 218, 192: 152, 256: 118}
"""Largest total coefficient modulus for N = 8192 and a ternary secret, per security level
(HomomorphicEncryption.org standard, Albrecht et al. 2018, as SEAL enforces it in
`native/src/seal/util/hestdparms.h`)."""


def security_level(total_bits: int) -> int:
    """The highest classical security level (bits) of the HE standard that N = 8192 with a
    `total_bits` coefficient modulus meets (0: none)."""
    met = [level for level, most in HE_STANDARD_MAX_BITS.items() if total_bits <= most]
    return max(met, default=0)


class TooLarge(ValueError):
    """A value CKKS cannot carry with these parameters (or one that is not finite)."""


@dataclass(frozen=True)
class Kits:
    """What provisioning ships: the serialized contexts, and each party's loaded copy."""

    hospital: bytes
    """Parameters and the secret key (every hospital's kit)."""
    aggregator: bytes
    """Parameters only: no secret, public or evaluation key."""
    hospital_context: Any
    aggregator_context: Any
    data_bits: int
    """Bits of the data primes' product (the special prime excluded)."""
    total_bits: int
    """Bits of the whole coefficient modulus (what the security level depends on)."""

    def limit(self, hospitals: int) -> float:
        """The largest |value| one hospital may encrypt so that the sum of `hospitals` fits."""
        return float(2 ** (self.data_bits - 3 - SCALE_BITS)) / hospitals


def provision() -> Kits:
    """Make the context as FLARE's provisioning does and load each party's copy from its kit."""
    import tenseal as ts

    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=POLY_MODULUS_DEGREE,
        coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES),
        encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
    )
    context.global_scale = 2**SCALE_BITS
    # Adding needs no evaluation key: neither kit carries the relinearisation or Galois keys
    # (FLARE also ships relinearisation keys, which a sum never uses).
    hospital = context.serialize(
        save_public_key=False, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    aggregator = context.serialize(
        save_public_key=False, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    hospital_context = ts.context_from(hospital)
    aggregator_context = ts.context_from(aggregator)
    if aggregator_context.is_private():
        raise AssertionError("the aggregator's context must not hold the secret key")
    seal = hospital_context.seal_context().data
    return Kits(
        hospital,
        aggregator,
        hospital_context,
        aggregator_context,
        data_bits=int(seal.first_context_data().total_coeff_modulus_bit_count()),
        total_bits=int(seal.key_context_data().total_coeff_modulus_bit_count()),
    )


def readers(n: int) -> str:
    """Who reads hospital 1's gradient, from the rules: the aggregator holds every hospital's
    ciphertext and each hospital the key; without the aggregator, the coalition rules of the
    Privacy page (nothing but the broadcast average and the members' own gradients)."""
    alone = next(
        (size for size in range(1, n) if 1 in exposed_hospitals(frozenset(range(2, 2 + size)), False, n)),
        None,
    )
    said = [
        "the aggregator with any one hospital, or with whoever made the keys (it holds hospital 1's "
        "ciphertext; every hospital holds the secret key)"
    ]
    if alone is not None:
        said.append(
            f"{'the other hospital' if n == 2 else f'the other {alone} hospitals together'} "
            "(n·ā minus their own)"
        )
    return "; ".join(said) + ". The aggregator alone reads nothing (it has no key)"


class Ckks:
    name = "CKKS (TenSEAL)"

    def measure(self, task: Task) -> Measured:
        import tenseal as ts

        config = task.config
        n, rounds = config.hospitals, config.rounds
        how = (
            f"TenSEAL {ts.__version__}, CKKS, poly_modulus_degree {POLY_MODULUS_DEGREE}, "
            f"coeff_mod_bit_sizes {list(COEFF_MOD_BIT_SIZES)}, global scale 2^{SCALE_BITS}: NVIDIA FLARE's "
            "defaults and roles (every hospital holds the secret key, encrypts its gradient as one vector "
            "and decrypts the sum the keyless aggregator adds)"
        )
        began = time.perf_counter()
        kits = provision()
        setup_s = time.perf_counter() - began
        limit = kits.limit(n)
        crypto: list[float] = []
        wire: list[float] = []
        sent: list[int] = []
        back: list[int] = []

        def aggregate(_r: int, gradients: list[np.ndarray]) -> np.ndarray:
            values = np.asarray(gradients, dtype=float)
            if not np.all(np.isfinite(values)) or np.max(np.abs(values)) > limit:
                worst = float(np.max(np.abs(values)))
                raise TooLarge(
                    f"a gradient value ({worst:.3g}) is beyond what CKKS carries here: with scale "
                    f"2^{SCALE_BITS} and {kits.data_bits}-bit data moduli each of {n} hospitals may send "
                    f"at most {limit:.3g}"
                )
            encrypt_s = add_s = decrypt_s = serialize_s = 0.0
            messages = []
            for g in values:  # each hospital encrypts with its own kit and sends the bytes
                t = time.perf_counter()
                vector = ts.ckks_vector(kits.hospital_context, g.tolist())
                encrypt_s += time.perf_counter() - t
                t = time.perf_counter()
                messages.append(vector.serialize())
                serialize_s += time.perf_counter() - t
            sent.append(len(messages[0]))
            t = time.perf_counter()  # the aggregator, keyless: load and add
            received = [ts.ckks_vector_from(kits.aggregator_context, m) for m in messages]
            serialize_s += time.perf_counter() - t
            t = time.perf_counter()
            total = received[0]
            for vector in received[1:]:
                total = total + vector
            add_s += time.perf_counter() - t
            t = time.perf_counter()
            broadcast = total.serialize()
            serialize_s += time.perf_counter() - t
            back.append(len(broadcast))
            sums = []
            for _ in range(n):  # every hospital decrypts the encrypted sum it gets back
                t = time.perf_counter()
                mine = ts.ckks_vector_from(kits.hospital_context, broadcast)
                serialize_s += time.perf_counter() - t
                t = time.perf_counter()
                sums.append(np.array(mine.decrypt()))
                decrypt_s += time.perf_counter() - t
            crypto.append(encrypt_s + add_s + decrypt_s)
            wire.append(serialize_s)
            total_sum = sums[0]
            if not np.all(np.isfinite(total_sum)) or np.max(np.abs(total_sum)) > n * limit:
                raise TooLarge("the decrypted sum is beyond what CKKS carries here: it wrapped")
            return total_sum / n

        start = time.perf_counter()
        try:
            descent = federate(task, aggregate)
        except TooLarge as exc:
            return Measured(self.name, how, "in-process", rounds, error=str(exc))
        round_s = (time.perf_counter() - start) / rounds
        level = security_level(kits.total_bits)
        dims = task.data.dims
        return Measured(
            self.name,
            how,
            "in-process",
            rounds,
            descent.scores,
            descent.errors,
            descent.scales,
            crypto_s=sum(crypto) / rounds,
            round_s=round_s,
            bytes_per_hospital=sent[0],
            setup_s=setup_s,
            setup_bytes=len(kits.hospital),
            parameters=(
                ("poly_modulus_degree", str(POLY_MODULUS_DEGREE)),
                (
                    "coefficient modulus",
                    f"{list(COEFF_MOD_BIT_SIZES)} bits: {kits.total_bits} in all, {kits.data_bits} carry the data",
                ),
                ("global scale", f"2^{SCALE_BITS}"),
                ("slots", f"{POLY_MODULUS_DEGREE // 2} ({dims} used, one vector a hospital)"),
                (
                    "security",
                    f"{level}-bit classical (HE standard, N = {POLY_MODULUS_DEGREE}: at most "
                    f"{HE_STANDARD_MAX_BITS[128]} bits for 128-bit, {HE_STANDARD_MAX_BITS[192]} for "
                    f"192-bit; {kits.total_bits} used)",
                ),
                ("encryption", "symmetric, with the secret key every hospital holds (as FLARE provisions)"),
                ("largest value a hospital may send", f"{limit:.3g} (so a sum of {n} cannot wrap)"),
                ("each hospital's kit", f"{len(kits.hospital):,} bytes (parameters and the secret key)"),
                ("the aggregator's kit", f"{len(kits.aggregator):,} bytes (parameters only, no key)"),
            ),
            trust=Trust(
                decryptors="every hospital (each holds the secret key, as FLARE's provisioning gives every "
                "client) and whoever made the keys; not the aggregator",
                readers=readers(n),
                dropout="not in this row: its sum waits for all n hospitals. CKKS itself needs no quorum: "
                "an aggregator that adds whoever sent (FLARE waits for a minimum of clients) just leaves a "
                "missing hospital's term out and divides by the count",
            ),
            caveats=(
                f"{kits.total_bits}-bit coefficient modulus at N = {POLY_MODULUS_DEGREE}: {level}-bit classical "
                "security by the HE standard's table",
                f"approximate: each round's average is off by up to {max(descent.errors):.1g} (bound "
                f"{ERROR_BOUND:.2g}), so the model differs from the exact one in the last digits",
                "Li and Micciancio (EUROCRYPT 2021): CKKS decryptions handed to someone who holds the "
                "ciphertexts can reveal the secret key unless the decryptor adds noise (noise flooding), "
                "which TenSEAL does not; here the aggregator holds each encrypted sum and sees the average "
                "every hospital steps with (not attempted here)",
            ),
            extra={
                "serialize_s": sum(wire) / rounds,
                "aggregator_kit_bytes": float(len(kits.aggregator)),
                "broadcast_bytes": float(back[0]),
                "error_bound": ERROR_BOUND,
            },
        )
