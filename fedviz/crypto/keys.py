"""Keys and raw Paillier operations, on top of phe.

Invariants:
- Only `ServerKeys` holds the private key; `PublicParams` (what is handed to hospitals)
  holds public values only. `ServerKeys` refuses to be pickled or copied, so the key
  cannot be serialised by accident (e.g. into a process pool or a cache).
- Ciphertexts are phe `EncryptedNumber`s built as (1 + m*n) * obfuscator mod n**2 with a
  fresh obfuscator each (see `fedviz.crypto.obfuscators`), so their `ciphertext(False)` is already
  randomised and phe never re-obfuscates.
- Arithmetic on these sizes goes through gmpy2 (Python's own ints are 5-20x slower at
  2048-4096 bits); results are the same integers phe computes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import gmpy2
from phe import paillier

from fedviz.config import SECURITY_BITS, Obfuscator


@dataclass(frozen=True)
class PublicParams:
    """Everything the server publishes: phe's public key, and for the djn obfuscator the
    public base hs = h**n mod n**2 and the short exponent's length."""

    public_key: paillier.PaillierPublicKey
    hs: int | None
    exponent_bits: int

    @property
    def n(self) -> int:
        return int(self.public_key.n)

    @property
    def nsquare(self) -> int:
        return int(self.public_key.nsquare)

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed wire size of one ciphertext: an integer modulo n**2."""
        return (self.nsquare.bit_length() + 7) // 8

    @property
    def half_bound(self) -> int:
        """2**(bits/2 - 1): below both primes of the key (each has bits/2 bits), so a plaintext
        known to be below it is decrypted by one CRT half (`ServerKeys.decrypt_raw(below=...)`)."""
        return 1 << (self.n.bit_length() // 2 - 1)

    @property
    def obfuscator(self) -> Obfuscator:
        return "standard" if self.hs is None else "djn"


class ServerKeys:
    """The Paillier keypair; the private half never leaves this object."""

    def __init__(self, key_length: int, obfuscator: Obfuscator) -> None:
        start = time.perf_counter()
        public_key, private_key = paillier.generate_paillier_keypair(n_length=key_length)
        hs = None
        if obfuscator == "djn":
            n = int(public_key.n)
            x = secrets.randbelow(n - 2) + 2
            h = (-x * x) % n
            hs = int(gmpy2.powmod(h, n, public_key.nsquare))
        self._hold(public_key, private_key, hs, key_length)
        self.seconds = time.perf_counter() - start

    def _hold(
        self,
        public_key: paillier.PaillierPublicKey,
        private_key: paillier.PaillierPrivateKey,
        hs: int | None,
        key_length: int,
    ) -> None:
        self.__private_key = k = private_key
        self.__crt = tuple(gmpy2.mpz(v) for v in (k.p, k.q, k.psquare, k.qsquare, k.hp, k.hq, k.p_inverse))
        self.public = PublicParams(public_key, hs, 2 * SECURITY_BITS.get(key_length, 152))
        if min(k.p, k.q) <= self.public.half_bound:  # phe draws both primes with key_length/2 bits
            raise RuntimeError("a prime of the key is shorter than half the key length")

    def export_for_own_node(self) -> dict[str, bytes]:
        """p, q and hs as bytes, for the key holder's own node state only.

        On Flower a node runs each message in a fresh process and keeps its state between
        them inside the node; this is how the key survives from one message to the next. It
        must never be put into a message, a log or a file (tests check the relay never sees it)."""
        k = self.__private_key
        hs = self.public.hs
        return {
            "p": _to_bytes(int(k.p)),
            "q": _to_bytes(int(k.q)),
            "hs": b"" if hs is None else _to_bytes(hs),
        }

    @classmethod
    def restore_on_own_node(cls, state: dict[str, bytes], seconds: float) -> ServerKeys:
        """The keys `export_for_own_node` gave, back in the key holder's next process."""
        p, q = (int.from_bytes(state[k], "big") for k in ("p", "q"))
        public_key = paillier.PaillierPublicKey(p * q)
        keys = cls.__new__(cls)
        hs = int.from_bytes(state["hs"], "big") if state["hs"] else None
        keys._hold(public_key, paillier.PaillierPrivateKey(public_key, p, q), hs, (p * q).bit_length())
        keys.seconds = seconds
        return keys

    def decrypt_raw(self, ciphertext: int, below: int | None = None) -> int:
        """The plaintext integer in [0, n) of one ciphertext: phe's CRT decryption, in gmpy2.

        m_p = L_p(c**(p-1) mod p**2) * hp mod p, the same modulo q, joined by the CRT; the two
        exponentiations (exponent |p| bits modulo p**2) are all of its cost.

        `below`: a bound the caller guarantees for the plaintext. When it is at most
        `PublicParams.half_bound` (public, and below both primes), the plaintext equals
        m_p and the q half is skipped: half the cost. A plaintext that breaks the promise
        decrypts to its residue mod p, not to an error."""
        p, q, psquare, qsquare, hp, hq, p_inverse = self.__crt
        c = gmpy2.mpz(ciphertext)
        if below is not None and below <= self.public.half_bound:
            return int(_crt_half(c, p, psquare, hp))
        other = _halves().submit(_crt_half, c, q, qsquare, hq)
        mp = _crt_half(c, p, psquare, hp)
        mq = other.result()
        return int(mp + (mq - mp) * p_inverse % q * p)

    def __repr__(self) -> str:
        return f"ServerKeys(bits={self.public.public_key.n.bit_length()}, private key hidden)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ServerKeys holds a private key and is never serialised")

    def __copy__(self) -> object:
        raise TypeError("ServerKeys holds a private key and is never copied")

    def __deepcopy__(self, memo: object) -> object:
        raise TypeError("ServerKeys holds a private key and is never copied")


_halves_lock = threading.Lock()
_halves_pool: ThreadPoolExecutor | None = None


def _to_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _halves() -> ThreadPoolExecutor:
    """One thread, in this process, that computes the q half of a decryption while the
    caller computes the p half (both release the GIL): a decryption costs about one half's
    time on two cores. Only the call's arguments pass through it; it keeps nothing."""
    global _halves_pool
    with _halves_lock:
        if _halves_pool is None:
            _halves_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedviz-crt")
        return _halves_pool


def _crt_half(c: gmpy2.mpz, p: gmpy2.mpz, psquare: gmpy2.mpz, hp: gmpy2.mpz) -> gmpy2.mpz:
    """m mod p = L_p(c**(p-1) mod p**2) * hp mod p.

    The exponentiation releases the GIL: meanwhile the process pool's result thread can hand
    over the next rounds' obfuscators (measured: the default run's wait for them halves)."""
    with gmpy2.context(allow_release_gil=True):
        x = gmpy2.powmod(c, p - 1, psquare)
    return (x - 1) // p * hp % p


def encrypt_with(
    public: PublicParams, plaintext: int, obfuscator: int, exponent: int
) -> paillier.EncryptedNumber:
    """Encrypt an integer in [0, n) with a precomputed obfuscator r (an n-th residue mod n**2).

    (1 + m*n) * r == r + n * (m*r mod n)  (mod n**2): one product modulo n instead of a full
    product modulo n**2, and the sum is below 2*n**2."""
    n, nsquare = gmpy2.mpz(public.n), gmpy2.mpz(public.nsquare)
    r = gmpy2.mpz(obfuscator) % nsquare
    c = r + n * (plaintext * (r % n) % n)
    if c >= nsquare:
        c -= nsquare
    return paillier.EncryptedNumber(public.public_key, int(c), exponent)


def add(a: paillier.EncryptedNumber, b: paillier.EncryptedNumber) -> paillier.EncryptedNumber:
    """Homomorphic addition: Enc(x) * Enc(y) = Enc(x + y). Exponents must agree (phe checks)."""
    if a.exponent != b.exponent:
        raise ValueError("ciphertexts with different exponents cannot be added without re-encoding")
    return a + b


def add_vectors(
    a: Sequence[paillier.EncryptedNumber], b: Sequence[paillier.EncryptedNumber]
) -> tuple[paillier.EncryptedNumber, ...]:
    """Element-wise homomorphic addition of two equally long ciphertext vectors."""
    return tuple(add(x, y) for x, y in zip(a, b, strict=True))
