"""The server as a party of its own: it decrypts one complete aggregate per round, nothing else.

In-process, the `Server` trusts the ring object that hands it the sum. When the parties are
separate (Flower), the key holder checks the hospitals' signed statements first
(`fedviz.protocol.attestation`): an aggregate that lacks a hospital's contribution, a
prefix of the ring, or a second aggregate for a round it already decrypted is refused with
a `SealError` naming why, and nothing is decrypted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce

import numpy as np
from phe.paillier import EncryptedNumber

from fedviz.crypto.encoding import Codec
from fedviz.crypto.keys import add_vectors
from fedviz.crypto.sealing import Roster, SealError, digest
from fedviz.protocol.attestation import Attestation, check_ring, check_star
from fedviz.protocol.parties import RingMessage, Server, hospital_name
from fedviz.protocol.wire import to_payload


class KeyHolder:
    """Wraps the run's `Server`; `decrypted` are the rounds it has already opened."""

    def __init__(
        self, server: Server, roster: Roster, run: str, hospitals: int, decrypted: Iterable[int] = ()
    ) -> None:
        self._server = server
        self._roster = roster
        self._run = run
        self._hospitals = hospitals
        self._decrypted = set(decrypted)

    @property
    def decrypted(self) -> tuple[int, ...]:
        return tuple(sorted(self._decrypted))

    def _once(self, round_: int) -> None:
        if round_ in self._decrypted:
            raise SealError(f"the key holder already decrypted round {round_}'s aggregate (one per round)")

    def open_ring(
        self,
        round_: int,
        aggregate: Sequence[EncryptedNumber],
        attestations: Sequence[Attestation],
        codec: Codec,
        total: bool = False,
    ) -> np.ndarray:
        """The average gradient (`total`: the sum itself), if `aggregate` closes the signed
        chain of all hospitals."""
        self._once(round_)
        check_ring(
            attestations,
            self._roster,
            self._run,
            round_,
            self._hospitals,
            digest(to_payload(self._server.public, aggregate)),
        )
        return self._average(round_, tuple(aggregate), codec, total)

    def open_star(
        self,
        round_: int,
        parts: Sequence[Sequence[EncryptedNumber]],
        attestations: Sequence[Attestation],
        codec: Codec,
    ) -> np.ndarray:
        """The average gradient of the hospitals' parts (hospital 1..n), each checked against
        its signature and multiplied here."""
        self._once(round_)
        digests = [digest(to_payload(self._server.public, p)) for p in parts]
        check_star(attestations, self._roster, self._run, round_, self._hospitals, digests)
        total = reduce(add_vectors, map(tuple, parts))
        return self._average(round_, total, codec)

    def _average(
        self, round_: int, total: tuple[EncryptedNumber, ...], codec: Codec, summed: bool = False
    ) -> np.ndarray:
        message = RingMessage(hospital_name(self._hospitals - 1), self._server.name, total, self._hospitals)
        if summed:
            out = self._server.total(message, codec, self._hospitals)
        else:
            out = self._server.average(message, codec, self._hospitals)
        self._decrypted.add(round_)
        return out
