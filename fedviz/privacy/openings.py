"""What the key holder reads when a colluding hospital hands it a ring message: opened live
with the run's private key, or read back from what was opened when the run ran.

The privacy lab shows collusion by really decrypting (`Opener.open_hop`). A stored run has no
key (it never leaves its holder), so the run store keeps, for the rounds it keeps hops of,
what the key holder opened from each hop a hospital received (`KeptOpenings`). Those values
are partial sums of gradients the run's events already carry (each hospital's own gradient),
so keeping them reveals nothing the pages do not show.

Invariants:
- `KeptOpenings` holds plaintext integers mod n and the public n: never a key.
- A masked run's openings are never kept (`keep` returns None): what a coalition removes
  from them depends on the mask seeds it holds, and seeds never leave their run.
- A hop without a kept opening opens to None: the lab then says it did not measure it,
  never shows a guess.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fedviz.events import RingHop
from fedviz.privacy.attacks import open_hop
from fedviz.protocol import SERVER_NAME, Server

MAX_OPENED = 600
"""When a run is stored, the key holder opens hops for at most about this many 2048-bit
decryptions' worth of work (about 0.7 s on one core; a 4096-bit decryption counts 8): the
first round and the last always, and the rounds in between from the start while they fit."""


class Opener(Protocol):
    """Whoever can say what a ring message decrypts to."""

    @property
    def modulus(self) -> int: ...

    def open_hop(self, hop: RingHop) -> list[int] | None:
        """The plaintext integers of `hop` (mod n), or None when they are not known."""
        ...


class KeyHolder:
    """The run's key holder itself (this session's `Server`): opens any hop."""

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def modulus(self) -> int:
        return int(self._server.public.n)

    def open_hop(self, hop: RingHop) -> list[int] | None:
        return open_hop(self._server, hop)

    def __repr__(self) -> str:  # never render the server's internals
        return "KeyHolder()"


def _key(hop: RingHop) -> str:
    return f"{hop.round}/{hop.hop}"


@dataclass(frozen=True)
class KeptOpenings:
    """What the key holder opened from the kept hops, when the run ran."""

    modulus: int
    values: Mapping[str, tuple[int, ...]]
    """{"round/hop": plaintext integers}."""

    def open_hop(self, hop: RingHop) -> list[int] | None:
        got = self.values.get(_key(hop))
        return list(got) if got is not None else None

    @property
    def rounds(self) -> list[int]:
        return sorted({int(k.split("/")[0]) for k in self.values})

    def to_bytes(self) -> bytes:
        data = {
            "n": format(self.modulus, "x"),
            "v": {k: [format(x, "x") for x in v] for k, v in self.values.items()},
        }
        return zlib.compress(json.dumps(data, separators=(",", ":")).encode("ascii"), 1)

    @classmethod
    def from_bytes(cls, blob: bytes) -> KeptOpenings:
        """Raises ValueError (or zlib.error) for bytes that are not kept openings."""
        data = json.loads(zlib.decompress(blob).decode("ascii"))
        values = {str(k): tuple(int(x, 16) for x in v) for k, v in data["v"].items()}
        return cls(int(data["n"], 16), values)


def _work(hops: list[RingHop], bits: int) -> float:
    """Decrypting these hops, in 2048-bit decryptions (a decryption costs about bits³)."""
    return sum(len(h.ciphertexts) for h in hops) * (bits / 2048) ** 3


def keep(
    server: Server | None, hops: Iterable[RingHop], masked: bool, limit: float = MAX_OPENED
) -> KeptOpenings | None:
    """Open the hops a hospital received (not the last, which goes to the server): the first
    and the last round always, the rounds between from the start while the work stays within
    `limit` (see `MAX_OPENED`); None without a key holder or for a masked run (see the module)."""
    if server is None or masked:
        return None
    by_round: dict[int, list[RingHop]] = {}
    for hop in hops:
        if hop.receiver != SERVER_NAME:
            by_round.setdefault(hop.round, []).append(hop)
    if not by_round:
        return None
    holder = KeyHolder(server)
    bits = holder.modulus.bit_length()
    rounds = sorted(by_round)
    chosen = sorted({rounds[0], rounds[-1]})
    work = sum(_work(by_round[r], bits) for r in chosen)
    for r in rounds[1:-1]:
        work += _work(by_round[r], bits)
        if work > limit:
            break
        chosen.append(r)
    values = {_key(h): tuple(holder.open_hop(h) or ()) for r in sorted(chosen) for h in by_round[r]}
    return KeptOpenings(holder.modulus, values)


__all__ = ["MAX_OPENED", "KeptOpenings", "KeyHolder", "Opener", "keep"]
