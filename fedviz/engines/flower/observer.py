"""The loopback demo's observer: completes the relay's events with what only the parties saw.

The relay yields the in-process engine's events from what it sees, which by design is not
everything. On loopback the launcher can read each party's own notebook (files the parties
write on their own machine, never sent through the relay), and so show what the in-process
engine shows:
- `ReferenceComputed` and the reference MSE in `RunFinished`: computed here from the public
  data set (in a real deployment nobody holds the pooled data; this is a yardstick only);
- the ciphertexts inside each sealed ring hop, from the notebook of the party that opened it;
- each hospital's own gradient (`HospitalGradients`), from its notebook;
- the SuperLink's and the SuperNodes' process ids in `PartiesStarted`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fedviz.config import Config
from fedviz.data import split
from fedviz.engines.inprocess import reference
from fedviz.events import (
    Ciphertext,
    Event,
    FederatedRound,
    HospitalGradients,
    PartiesStarted,
    Party,
    ReferenceComputed,
    RingHop,
    RunFinished,
    RunStarted,
)
from fedviz.protocol import hospital_name


class Observer:
    def __init__(self, config: Config, notebooks: Path | None, pids: dict[str, int]) -> None:
        self.config = config
        self.notebooks = notebooks
        self.pids = pids
        self.reference: ReferenceComputed | None = None
        self._read: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def _notes(self, party: str) -> list[dict[str, Any]]:
        """The party's notes so far (each file read once, then only what was appended)."""
        if self.notebooks is None:
            return []
        offset, notes = self._read.get(party, (0, []))
        try:
            with open(self.notebooks / f"{party}.jsonl", encoding="utf-8") as f:
                f.seek(offset)
                text = f.read()
        except FileNotFoundError:
            return notes
        complete = text[: text.rfind("\n") + 1]
        notes = notes + [json.loads(line) for line in complete.splitlines() if line.strip()]
        self._read[party] = (offset + len(complete.encode()), notes)
        return notes

    def complete(self, event: Event) -> Iterator[Event]:
        """The event as the in-process engine would have yielded it, plus what follows it."""
        if isinstance(event, RunStarted):
            yield event
            self.reference = reference(self.config, split(self.config.hospitals, self.config.seed))
            yield self.reference
        elif isinstance(event, PartiesStarted):
            parties = tuple(dataclasses.replace(p, pid=self.pids.get(p.name, p.pid)) for p in event.parties)
            link = (
                [Party("SuperLink", "superlink", self.pids["SuperLink"], None)]
                if "SuperLink" in self.pids
                else []
            )
            yield dataclasses.replace(event, parties=(*link, *parties))
        elif isinstance(event, RingHop) and not event.ciphertexts:
            yield dataclasses.replace(event, ciphertexts=self._opened(event))
        elif isinstance(event, FederatedRound):
            gradients = self._gradients(event.round, "values")
            if gradients is not None:
                yield HospitalGradients(event.round, gradients, self._gradients(event.round, "clean"))
            yield event
        elif isinstance(event, RunFinished) and self.reference is not None:
            yield dataclasses.replace(
                event,
                centralized_mse=self.reference.centralized_mse[-1]
                if self.reference.centralized_mse
                else event.centralized_mse,
                optimum_mse=self.reference.optimum_mse,
            )
        else:
            yield event

    def _opened(self, hop: RingHop) -> tuple[Ciphertext, ...]:
        for note in self._notes(hop.receiver):
            if note["kind"] == "opened" and note["round"] == hop.round and note["hop"] == hop.hop:
                return tuple(Ciphertext(int(v), int(e)) for v, e in note["ciphertexts"])
        return ()

    def _gradients(self, round_: int, field: str) -> tuple[tuple[float, ...], ...] | None:
        """Each hospital's note `field` for the round ("values": what it put into the ring,
        "clean": its noiseless gradient under DP); None if any hospital lacks it."""
        out = []
        for i in range(self.config.hospitals):
            found = [
                n[field]
                for n in self._notes(hospital_name(i))
                if n["kind"] == "gradient" and n["round"] == round_ and field in n
            ]
            if not found:
                return None
            out.append(tuple(map(float, found[-1])))
        return tuple(out)
