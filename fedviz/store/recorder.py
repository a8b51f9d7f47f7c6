"""What the run store keeps of a run's event stream: a consumer, like `RunRecord`, that
decides as the run goes.

Invariants:
- Kept: every event but `EncryptionProgress` (a live progress note), in stream order, so
  folding the kept events through `RunRecord`, `Transcript` and `Observations` gives what
  a live session folded (the transcript's dropped rounds aside: `dropped` counts them).
- Ring hops (ciphertexts, the bulk of a run) only for the rounds a `Transcript` with the
  same budget keeps: the first rounds that fit the budget, and the last round. A round cut
  short (a stopped run) is not kept: the transcript never showed it. Memory is bounded the
  same way as the transcript's.
- The user's own files never enter: `RunStarted.config`'s `data_path` and `site_paths`
  are replaced by a note with each file's name, size and SHA-256 (its rows are never read
  into the store), and `sources` lists the same facts as data.
- Nothing here ever sees a key: events carry only public values (the modulus n, the
  ciphertexts) and each hospital's own gradient, which the pages show for the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fedviz.config import Config
from fedviz.events import EncryptionProgress, Event, RingHop, RunStarted
from fedviz.protocol import SERVER_NAME
from fedviz.report.transcript import DEFAULT_BUDGET_BYTES

NOT_STORED = "not stored"
"""How a stored config's replaced file path begins."""


@dataclass(frozen=True)
class Source:
    """One of the user's data files, as the store remembers it: never its rows."""

    role: str
    """"data" (one CSV dealt out) or "site 1", "site 2", ... (one file per hospital)."""
    name: str
    """The file's name, without its folder."""
    bytes: int | None
    """Its size (None if it could not be read when the run started)."""
    sha256: str | None

    @property
    def note(self) -> str:
        """What the stored config says instead of the path."""
        size = f"{self.bytes:,} bytes" if self.bytes is not None else "size unknown"
        digest = f", sha256 {self.sha256}" if self.sha256 else ""
        return f"{NOT_STORED}: {self.name} ({size}{digest})"


def describe_file(path: str, role: str) -> Source:
    """Name, size and SHA-256 of a file, read in blocks (its contents go nowhere else)."""
    name = os.path.basename(path) or path
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except OSError:
        return Source(role, name, None, None)
    return Source(role, name, size, digest.hexdigest())


def scrub(config: Config) -> tuple[Config, tuple[Source, ...]]:
    """The config to store (each file path replaced by its note) and the files it named."""
    sources: list[Source] = []
    changes: dict[str, Any] = {}
    if config.data_path is not None and not config.data_path.startswith(NOT_STORED):
        sources.append(describe_file(config.data_path, "data"))
        changes["data_path"] = sources[-1].note
    if config.site_paths and not all(p.startswith(NOT_STORED) for p in config.site_paths):
        sites = [describe_file(p, f"site {i}") for i, p in enumerate(config.site_paths, start=1)]
        sources += sites
        changes["site_paths"] = tuple(s.note for s in sites)
    return (dataclasses.replace(config, **changes) if changes else config), tuple(sources)


@dataclass
class Recorder:
    """A consumer of the event stream keeping what the store stores (see the module)."""

    budget_bytes: int = DEFAULT_BUDGET_BYTES
    sources: tuple[Source, ...] = ()
    dropped: int = 0
    """Rounds whose hops the budget did not keep (as `Transcript.dropped` counts them)."""
    _kept: list[Event | None] = field(default_factory=list)
    _pending: list[int] = field(default_factory=list)
    """Indices in `_kept` of the hops of the round in flight."""
    _last: list[int] = field(default_factory=list)
    """Indices of the latest closed round's hops when the budget did not keep them."""
    _kept_bytes: int = 0

    def add(self, event: Event) -> None:
        if isinstance(event, EncryptionProgress):
            return
        if isinstance(event, RunStarted):
            config, self.sources = scrub(event.config)
            event = dataclasses.replace(event, config=config)
        self._kept.append(event)
        if isinstance(event, RingHop):
            self._pending.append(len(self._kept) - 1)
            if event.receiver == SERVER_NAME:  # the last hop of a round (ring or star)
                self._close_round()

    def _close_round(self) -> None:
        size = sum(self._hop(i).nbytes for i in self._pending)
        for i in self._last:  # a newer round is the latest now
            self._kept[i] = None
        self._last = []
        if self._kept_bytes + size <= self.budget_bytes:
            self._kept_bytes += size
        else:
            self.dropped += 1
            self._last = self._pending
        self._pending = []

    def _hop(self, index: int) -> RingHop:
        hop = self._kept[index]
        assert isinstance(hop, RingHop)
        return hop

    def events(self) -> list[Event]:
        """The kept events, in stream order (a round still in flight left out)."""
        unfinished = set(self._pending)
        return [e for i, e in enumerate(self._kept) if e is not None and i not in unfinished]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    @classmethod
    def of(cls, events: Iterable[Event], budget_bytes: int = DEFAULT_BUDGET_BYTES) -> Recorder:
        """A recorder that has consumed `events` (a recorder is returned as it is)."""
        if isinstance(events, Recorder):
            return events
        recorder = cls(budget_bytes)
        for event in events:
            recorder.add(event)
        return recorder
