"""Who said it and who may read it: identities, signed cards, sealed hops (with `cryptography`).

On Flower every message passes the relay (the ServerApp), so a ring hop is sealed end to end
from hospital k to hospital k+1, and what a party vouches for is signed.

Invariants:
- A party's `Identity` (a long-term Ed25519 signing key) and its per-run `HopKey` (X25519)
  stay with that party; only their public halves travel. Neither can be pickled or copied.
- A `Roster` maps each party's name to its identity's public key. It is trusted because it
  came out of band (the launcher on loopback, the site administrators across machines),
  never through the relay.
- A `Card` (name, role, run, hop public key) is signed by its party's identity; `Roster.check`
  refuses a card the roster's key did not sign, so a relay that swaps hop keys is caught.
- `seal` binds a payload to its header (run, round, step, sender, receiver) twice: the AES-GCM
  key is derived from the X25519 secret with the header as HKDF info, and the header is the
  associated data. A sealed hop replayed in another round or sent to another party, or a
  single flipped byte, fails `unseal` with a `SealError` naming the sender and receiver.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedviz.errors import FedvizError

NONCE_BYTES = 12
KEY_BYTES = 32


class SealError(FedvizError):
    """A message that failed authentication, unsealing or a signature check."""


def digest(data: bytes) -> bytes:
    """SHA-256: what signed statements name a ciphertext by."""
    return hashlib.sha256(data).digest()


class _Secret:
    """Refuses pickling and copying: secrets never leave their holder by accident."""

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError(f"{type(self).__name__} holds a secret and is never serialised")

    def __copy__(self) -> object:
        raise TypeError(f"{type(self).__name__} holds a secret and is never copied")

    def __deepcopy__(self, memo: object) -> object:
        raise TypeError(f"{type(self).__name__} holds a secret and is never copied")


class Identity(_Secret):
    """A party's long-term signing key."""

    def __init__(self, name: str, key: Ed25519PrivateKey | None = None) -> None:
        self.name = name
        self.__key = key or Ed25519PrivateKey.generate()
        self.public = self.__key.public_key().public_bytes_raw()

    @classmethod
    def load(cls, name: str, path: str) -> Identity:
        """Read the PEM file a site keeps for its party (made by `save_new`)."""
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SealError(f"{path} is not an Ed25519 identity key")
        return cls(name, key)

    @staticmethod
    def save_new(path: str) -> bytes:
        """Make an identity key, write it to `path` readable by its owner only, and return its
        public key (what goes into the roster)."""
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key.public_key().public_bytes_raw()

    def sign(self, statement: bytes) -> bytes:
        return self.__key.sign(statement)

    def __repr__(self) -> str:
        return f"Identity({self.name!r}, private key hidden)"


class HopKey(_Secret):
    """A party's X25519 key for one run: seals to and opens from its ring neighbours."""

    def __init__(self, raw: bytes | None = None) -> None:
        self.__key = X25519PrivateKey.from_private_bytes(raw) if raw else X25519PrivateKey.generate()
        self.public = self.__key.public_key().public_bytes_raw()

    def export_for_own_node(self) -> bytes:
        """The raw key, for the party's own node state only (Flower starts a fresh process per
        message; the node keeps its state between them). Never put it in a message."""
        return self.__key.private_bytes_raw()

    def shared(self, peer_public: bytes) -> bytes:
        return self.__key.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def __repr__(self) -> str:
        return "HopKey(private key hidden)"


@dataclass(frozen=True)
class Card:
    """A party's public hop key for one run, signed by its identity."""

    name: str
    role: str
    run: str
    hop_public: bytes
    signature: bytes

    def statement(self) -> bytes:
        return join(b"fedviz card", self.name, self.role, self.run, self.hop_public)

    @classmethod
    def make(cls, identity: Identity, role: str, run: str, hop: HopKey) -> Card:
        unsigned = cls(identity.name, role, run, hop.public, b"")
        return cls(identity.name, role, run, hop.public, identity.sign(unsigned.statement()))


class Roster:
    """The trusted public identity keys of a run's parties, by name."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = dict(keys)

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def verify(self, name: str, statement: bytes, signature: bytes) -> None:
        """Raise `SealError` unless `name`'s identity signed `statement`."""
        key = self._keys.get(name)
        if key is None:
            raise SealError(f"{name} is not on the roster")
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, statement)
        except InvalidSignature:
            raise SealError(f"a statement said to be from {name} failed its signature check") from None

    def check(self, card: Card, run: str) -> Card:
        """The card, if its party signed it for this run; else `SealError`."""
        if card.run != run:
            raise SealError(f"{card.name}'s hop key is for another run")
        self.verify(card.name, card.statement(), card.signature)
        return card


def header(run: str, round_: int, step: str, sender: str, receiver: str) -> bytes:
    """What a sealed payload is bound to."""
    return join(b"fedviz hop", run, str(round_), step, sender, receiver)


def seal(own: HopKey, receiver: Card, head: bytes, payload: bytes) -> bytes:
    """nonce || AES-256-GCM(payload) under a key only `own` and `receiver` can derive."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_key(own, receiver.hop_public, head)).encrypt(nonce, payload, head)


def unseal(own: HopKey, sender: Card, head: bytes, sealed: bytes, receiver_name: str) -> bytes:
    """The payload `sender` sealed for this party under `head`; `SealError` if anything differs."""
    if len(sealed) < NONCE_BYTES + 16:
        raise SealError(f"the hop from {sender.name} to {receiver_name} is too short to be sealed")
    try:
        return AESGCM(_key(own, sender.hop_public, head)).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], head
        )
    except InvalidTag:
        raise SealError(
            f"the hop from {sender.name} to {receiver_name} failed authentication (tampered, "
            "replayed or sealed for someone else)"
        ) from None


def _key(own: HopKey, peer_public: bytes, head: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=head).derive(
        own.shared(peer_public)
    )


def join(*parts: bytes | str) -> bytes:
    """Length-prefixed concatenation: no two different part lists give the same bytes."""
    out = bytearray()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)
