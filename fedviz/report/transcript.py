"""What travelled on the ring, kept for inspection, within a memory budget.

Invariants:
- Holds only what an eavesdropper on the ring would see: ciphertext integers, their
  exponents, sender, receiver, contribution counts. Never plaintexts, never key material.
- Memory stays bounded: rounds are kept while the budget allows (the first ones), and the
  latest round is always kept, so the inspector can show the start and the end of any run.
- `round_json` uses phe's serialisation: big integers as decimal strings, each ciphertext as
  [ciphertext, exponent], the public key as {"n": ..., "g": ...} with g = n + 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fedviz.events import Event, Exchange, KeysGenerated, PartiesStarted, RingHop, RunStarted
from fedviz.protocol import SERVER_NAME

DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024


@dataclass
class Transcript:
    """A consumer of the event stream that keeps ring hops, round by round."""

    budget_bytes: int = DEFAULT_BUDGET_BYTES
    n: int | None = None
    keys: KeysGenerated | None = None
    hospitals: int = 0
    rounds: dict[int, tuple[RingHop, ...]] = field(default_factory=dict)
    latest: tuple[RingHop, ...] = ()
    dropped: int = 0
    parties: PartiesStarted | None = None
    """A distributed run's parties (None in-process)."""
    exchanges: dict[tuple[int, str], Exchange] = field(default_factory=dict)
    """A distributed run's message exchanges as the relay saw them, by (round, step): a few
    hundred bytes each (a preview of at most 16 bytes, never a plaintext); Flower's seconds
    per message keep their number small."""
    _pending: list[RingHop] = field(default_factory=list)
    _kept_bytes: int = 0

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.hospitals = len(event.patients)
        elif isinstance(event, KeysGenerated):
            self.keys, self.n = event, event.n
        elif isinstance(event, PartiesStarted):
            self.parties = event
        elif isinstance(event, Exchange):
            self.exchanges[(event.round, event.step)] = event
        elif isinstance(event, RingHop):
            self._pending.append(event)
            if event.receiver == SERVER_NAME:  # the last hop of a round (ring or star)
                self._close_round(tuple(self._pending))
                self._pending = []

    def _close_round(self, hops: tuple[RingHop, ...]) -> None:
        self.latest = hops
        size = sum(h.nbytes for h in hops)
        if self._kept_bytes + size <= self.budget_bytes:
            self.rounds[hops[0].round] = hops
            self._kept_bytes += size
        else:
            self.dropped += 1

    @property
    def last_round(self) -> int:
        return self.latest[0].round if self.latest else 0

    def exchange(self, round_: int, step: str) -> Exchange | None:
        return self.exchanges.get((round_, step))

    def hops(self, round_: int) -> tuple[RingHop, ...] | None:
        """The hops of a round, or None when the budget did not keep it."""
        if self.latest and round_ == self.last_round:
            return self.latest
        return self.rounds.get(round_)

    def round_json(self, round_: int) -> str:
        """One round's messages in phe's JSON serialisation."""
        hops = self.hops(round_)
        if hops is None or self.n is None:
            raise KeyError(f"round {round_} is not in the transcript")
        data: dict[str, Any] = {
            "public_key": {"n": str(self.n), "g": str(self.n + 1)},
            "round": round_,
            "encoding": self.keys.encoding if self.keys else None,
            "hops": [
                {
                    "hop": h.hop,
                    "sender": h.sender,
                    "receiver": h.receiver,
                    "sum_of_gradients": h.contributions,
                    "values": [[str(c.value), c.exponent] for c in h.ciphertexts],
                }
                for h in hops
            ],
        }
        return json.dumps(data, indent=1)
