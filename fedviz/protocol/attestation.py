"""Signed statements that let the key holder check an aggregate holds every hospital's part.

When hospitals are separate parties, the key holder cannot see the ring; it decrypts only
what it is handed. So every hospital signs what it did, and the key holder checks:
- ring: hospital k signs (run, round, k, digest received, digest sent). The statements of
  hospitals 1..n must chain (what k sent is what k+1 received) and end in the aggregate.
  Only hospital k can sign its link, and the only ciphertext that closes a chain of all n
  is the full sum, so a prefix (say hospital 1's lone ciphertext) is refused.
- star: hospital k signs (run, round, k, "", digest of its ciphertext); the key holder gets
  every part, checks each signature and multiplies the parts itself.

Invariants: a statement names its run and round, so none can be replayed in another; the
key holder decrypts at most one aggregate per round (`KeyHolder` keeps the rounds it did).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from fedviz.crypto.sealing import Identity, Roster, SealError, join
from fedviz.protocol.parties import hospital_name


@dataclass(frozen=True)
class Attestation:
    """Hospital `sender`, at ring position `position` (1-based), in `round` of `run`: it
    received ciphertexts with digest `received` (b"" if none) and sent ones with digest
    `sent`, which include its own encrypted gradient."""

    run: str
    round: int
    position: int
    sender: str
    received: bytes
    sent: bytes
    signature: bytes = b""

    def statement(self) -> bytes:
        return join(
            b"fedviz contribution",
            self.run,
            str(self.round),
            str(self.position),
            self.sender,
            self.received,
            self.sent,
        )

    def signed_by(self, identity: Identity) -> Attestation:
        if identity.name != self.sender:
            raise SealError(f"{identity.name} cannot sign for {self.sender}")
        unsigned = Attestation(self.run, self.round, self.position, self.sender, self.received, self.sent)
        return dataclasses.replace(unsigned, signature=identity.sign(unsigned.statement()))


def _check_each(
    attestations: Sequence[Attestation], roster: Roster, run: str, round_: int, hospitals: int
) -> None:
    """Each hospital 1..n exactly once, at its own position, for this run and round, signed."""
    positions = {hospital_name(i): i + 1 for i in range(hospitals)}
    names = [a.sender for a in attestations]
    for name in positions:
        if name not in names:
            raise SealError(f"the aggregate of round {round_} lacks {name}'s contribution")
    if len(names) != hospitals or len(set(names)) != hospitals:
        raise SealError(
            f"round {round_}'s aggregate comes with {len(names)} statements for {hospitals} hospitals"
        )
    for a in attestations:
        if a.run != run or a.round != round_:
            raise SealError(f"{a.sender}'s statement is for another run or round (replayed?)")
        if positions[a.sender] != a.position:
            raise SealError(f"{a.sender}'s statement claims ring position {a.position}")
        roster.verify(a.sender, a.statement(), a.signature)


def check_ring(
    attestations: Sequence[Attestation],
    roster: Roster,
    run: str,
    round_: int,
    hospitals: int,
    aggregate: bytes,
) -> None:
    """Raise `SealError` unless `aggregate` (its digest) closes a signed chain of all hospitals."""
    _check_each(attestations, roster, run, round_, hospitals)
    chain = sorted(attestations, key=lambda a: a.position)
    if chain[0].received != b"":
        raise SealError(f"{chain[0].sender} claims to have received a partial sum")
    for before, after in itertools.pairwise(chain):
        if after.received != before.sent:
            raise SealError(f"{after.sender} did not receive what {before.sender} sent (broken chain)")
    if chain[-1].sent != aggregate:
        raise SealError(
            f"the ciphertext handed to the key holder is not what {chain[-1].sender} sent (a prefix?)"
        )


def check_star(
    attestations: Sequence[Attestation],
    roster: Roster,
    run: str,
    round_: int,
    hospitals: int,
    parts: Sequence[bytes],
) -> None:
    """Raise `SealError` unless `parts` (digests, hospital 1..n) are each signed by their hospital."""
    _check_each(attestations, roster, run, round_, hospitals)
    by_position = {a.position: a for a in attestations}
    if len(parts) != hospitals:
        raise SealError(f"round {round_}'s star brought {len(parts)} parts for {hospitals} hospitals")
    for position, part in enumerate(parts, start=1):
        a = by_position[position]
        if a.received != b"" or a.sent != part:
            raise SealError(f"the part said to be {a.sender}'s is not what it signed")
