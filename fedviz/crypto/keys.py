"""Keys and raw Paillier operations, on top of phe.

Invariants:
- Only `ServerKeys` holds the private key; `PublicParams` (what is handed to hospitals)
  holds public values only. `ServerKeys` refuses to be pickled or copied, so the key
  cannot be serialised by accident (e.g. into a process pool or a cache).
- Ciphertexts are phe `EncryptedNumber`s built as (1 + m*n) * obfuscator mod n**2 with a
  fresh obfuscator each (see `fedviz.crypto.obfuscators`), so their `ciphertext(False)` is already
  randomised and phe never re-obfuscates.
"""

from __future__ import annotations

import secrets
import time
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
    def obfuscator(self) -> Obfuscator:
        return "standard" if self.hs is None else "djn"


class ServerKeys:
    """The Paillier keypair; the private half never leaves this object."""

    def __init__(self, key_length: int, obfuscator: Obfuscator) -> None:
        start = time.perf_counter()
        public_key, self.__private_key = paillier.generate_paillier_keypair(n_length=key_length)
        hs = None
        if obfuscator == "djn":
            n = int(public_key.n)
            x = secrets.randbelow(n - 2) + 2
            h = (-x * x) % n
            hs = int(gmpy2.powmod(h, n, public_key.nsquare))
        self.public = PublicParams(public_key, hs, 2 * SECURITY_BITS.get(key_length, 152))
        self.seconds = time.perf_counter() - start

    def decrypt_raw(self, ciphertext: int) -> int:
        """The plaintext integer in [0, n) of one ciphertext (phe's CRT decryption)."""
        return int(self.__private_key.raw_decrypt(ciphertext))

    def __repr__(self) -> str:
        return f"ServerKeys(bits={self.public.public_key.n.bit_length()}, private key hidden)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ServerKeys holds a private key and is never serialised")

    def __copy__(self) -> object:
        raise TypeError("ServerKeys holds a private key and is never copied")

    def __deepcopy__(self, memo: object) -> object:
        raise TypeError("ServerKeys holds a private key and is never copied")


def encrypt_with(
    public: PublicParams, plaintext: int, obfuscator: int, exponent: int
) -> paillier.EncryptedNumber:
    """Encrypt an integer in [0, n) with a precomputed obfuscator."""
    n, nsquare = public.n, public.nsquare
    c = (1 + plaintext * n) % nsquare * obfuscator % nsquare
    return paillier.EncryptedNumber(public.public_key, c, exponent)


def add(a: paillier.EncryptedNumber, b: paillier.EncryptedNumber) -> paillier.EncryptedNumber:
    """Homomorphic addition: Enc(x) * Enc(y) = Enc(x + y). Exponents must agree (phe checks)."""
    if a.exponent != b.exponent:
        raise ValueError("ciphertexts with different exponents cannot be added without re-encoding")
    return a + b
