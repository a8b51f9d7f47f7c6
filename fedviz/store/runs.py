"""Stored runs: save one, list them, load one back as its event stream, label, pin, delete.

A run is stored as what a `Recorder` keeps of its event stream (the JSON lines of
`fedviz.eventlog.to_line`, zlib-compressed, with their SHA-256) plus columns for listing:
id, created, status, label, pinned, error, the config, the user's files (name, size,
hash), `RunRecord.summary()`, timings, the remedies lab's table when one was measured, and
what the key holder opened from the kept hops (`KeptOpenings`: the lab's coalitions redraw
without the key).
Redrawing a stored run is folding its events through `RunRecord`, `Transcript` and
`Observations`, exactly as a live session does (`StoredRun.fold`).

Invariants:
- `save` writes one row in one transaction: a run is listed whole or not at all, whatever
  happens to the process, and two processes saving at once both get their run stored.
- `load` checks the events against their SHA-256: a damaged run is an error, never a
  wrong picture.
- Ids are `YYYYMMDD-HHMMSS-xxxxxx` (UTC time of the save, 24 random bits): they sort by
  time, and one cannot guess another's from one's own.
- Nothing that is not an event (or the plain rows of a remedies table) is ever written:
  no `Server`, no key, no mask seed, no data file.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from fedviz import __version__
from fedviz.config import Config
from fedviz.eventlog import EventLogError, from_line, to_line
from fedviz.events import Event, RingHop
from fedviz.privacy.attacks import Observations
from fedviz.privacy.openings import KeptOpenings
from fedviz.report.summary import RunRecord, json_safe
from fedviz.report.transcript import DEFAULT_BUDGET_BYTES, Transcript
from fedviz.store import db
from fedviz.store.db import StoreError
from fedviz.store.recorder import Recorder, Source

Status = Literal["finished", "failed", "interrupted"]
STATUSES: tuple[Status, ...] = ("finished", "failed", "interrupted")
ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
NEWEST_NAMED = 5
"""An unknown id's error names this many of the newest runs."""
_LISTED = "id, created, status, label, pinned, error, config, source, summary, meta, remedies IS NOT NULL"


class UnknownRun(StoreError):
    """No stored run has this id (the message names the newest few)."""


@dataclass(frozen=True)
class Timing:
    """A run's wall time as its session measured it (none of these are events)."""

    seconds: float = 0.0
    """From start to end, pauses for an audience included."""
    paused_s: float = 0.0
    first_point_s: float | None = None
    """When the first federated point appeared."""


@dataclass(frozen=True)
class RunInfo:
    """One stored run as listed (everything but its events)."""

    id: str
    created: datetime
    status: Status
    label: str
    pinned: bool
    error: str | None
    config: Config
    """The run's settings, each user file's path replaced by a note (name, size, SHA-256)."""
    sources: tuple[Source, ...]
    summary: dict[str, Any]
    """`RunRecord.summary()` of the stored run (the CLI's --json object)."""
    timing: Timing
    meta: dict[str, Any]
    """events, event_bytes, stored_bytes, sha256, budget_bytes, hop_rounds, dropped_rounds, fedviz."""
    has_remedies: bool = False

    @property
    def metric(self) -> str:
        return self.config.metric

    @property
    def mean_local(self) -> float | None:
        return _mean(self.summary.get("local_mse"))

    @property
    def mean_federated(self) -> float | None:
        return _mean(self.summary.get("federated_mse"))

    def as_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (the `runs list --json` entries)."""
        return {
            "id": self.id,
            "created": self.created.isoformat(),
            "status": self.status,
            "label": self.label,
            "pinned": self.pinned,
            "error": self.error,
            "engine": self.summary.get("engine"),
            "config": self.config.to_dict(),
            "sources": [asdict(s) for s in self.sources],
            "metric": self.metric,
            "mean_local": self.mean_local,
            "mean_federated": self.mean_federated,
            "rounds_completed": self.summary.get("rounds_completed"),
            "timing": asdict(self.timing),
            "stored_bytes": self.meta.get("stored_bytes"),
            "remedies_measured": self.has_remedies,
        }


def _mean(values: object) -> float | None:
    if not isinstance(values, list) or not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


class Folded(NamedTuple):
    """What a session folds from a run's events: what every page draws from."""

    record: RunRecord
    transcript: Transcript
    observations: Observations


@dataclass(frozen=True)
class StoredRun:
    info: RunInfo
    events: tuple[Event, ...]
    remedies: tuple[dict[str, str], ...] | None = None
    """The remedies lab's table, as the Privacy page shows it, when it was measured."""
    openings: KeptOpenings | None = None
    """What the key holder opened from the kept hops when the run ran (None: not kept)."""

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def config(self) -> Config:
        return self.info.config

    def fold(self) -> Folded:
        """The events folded as a live session folds them (failure and stop included)."""
        record, observations = RunRecord(), Observations()
        transcript = Transcript(budget_bytes=int(self.info.meta.get("budget_bytes", DEFAULT_BUDGET_BYTES)))
        for event in self.events:
            record.add(event)
            transcript.add(event)
            observations.add(event)
        _end(record, self.info.status, self.info.error)
        transcript.dropped = int(self.info.meta.get("dropped_rounds", transcript.dropped))
        return Folded(record, transcript, observations)


def _end(record: RunRecord, status: Status, error: str | None) -> None:
    if status == "failed":
        record.fail(error or "the run failed")
    elif status == "interrupted":
        record.interrupt()


class RunStore:
    """The runs stored in one data folder (default `db.home()`). Every call opens its own
    connection, so one store may be used from several threads and processes at once."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = Path(folder) if folder is not None else db.home()
        self.path = self.folder / db.DB_NAME

    def __repr__(self) -> str:
        return f"RunStore({str(self.folder)!r})"

    # ----------------------------------------------------------------- writing

    def check_writable(self) -> None:
        """Open (and if need be create) the store now: `StoreError` if it cannot be written."""
        with db.opened(self.path) as connection, db.write(connection, self.path):
            pass

    def save(
        self,
        events: Iterable[Event],
        status: Status,
        error: str | None = None,
        label: str = "",
        timing: Timing | None = None,
        remedies: Sequence[Mapping[str, str]] | None = None,
        openings: KeptOpenings | None = None,
    ) -> str:
        """Store an ended run and return its id. `events`: a `Recorder` that watched the run,
        or the events themselves (a `Recorder` then picks what is kept). `status` says how it
        ended (a run whose events include `RunFinished` is stored as finished, whatever
        `status` says); `error` why it failed. Raises `ValueError` for a run that never started or a
        status its events contradict, `StoreError` when the store cannot be written."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        recorder = Recorder.of(events)
        kept = recorder.events()
        record = RunRecord.of(kept)
        if record.config is None:
            raise ValueError("the run never started (no RunStarted event): there is nothing to store")
        if record.finished is not None:
            status, error = "finished", None
        elif status == "finished":
            raise ValueError("a run without its RunFinished event is not finished")
        _end(record, status, error)
        blob = "\n".join(to_line(e) for e in kept).encode("utf-8")
        packed = zlib.compress(blob, 1)  # digits compress about as well at 1 as at 6, 3x faster
        meta = {
            "events": len(kept),
            "event_bytes": len(blob),
            "stored_bytes": len(packed),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "budget_bytes": recorder.budget_bytes,
            "hop_rounds": len({e.round for e in kept if isinstance(e, RingHop)}),
            "dropped_rounds": recorder.dropped,
            "fedviz": __version__,
        }
        row = (
            status,
            label,
            record.error if status == "failed" else None,
            _dumps(record.config.to_dict()),
            _dumps([asdict(s) for s in recorder.sources]) if recorder.sources else None,
            record.to_json(),
            _dumps({**asdict(timing or Timing()), **meta}),
            _dumps([dict(r) for r in remedies]) if remedies is not None else None,
            packed,
            openings.to_bytes() if openings is not None else None,
        )
        for _ in range(8):
            now = datetime.now(UTC)
            run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            try:
                with db.opened(self.path) as connection, db.write(connection, self.path):
                    connection.execute(
                        "INSERT INTO runs (id, created, status, label, error, config, source, summary, meta, "
                        "remedies, events, openings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, now.isoformat(timespec="microseconds"), *row),
                    )
                return run_id
            except sqlite3.IntegrityError:
                continue  # the same id drawn twice in one second: draw again
            except sqlite3.Error as exc:
                raise db.failure(self.path, exc) from None
        raise StoreError(f"could not draw a fresh run id in {self.path}; try again")

    def set_label(self, run_id: str, label: str) -> None:
        self._update(run_id, "label = ?", label)

    def set_pinned(self, run_id: str, pinned: bool) -> None:
        self._update(run_id, "pinned = ?", int(pinned))

    def set_remedies(self, run_id: str, rows: Sequence[Mapping[str, str]]) -> None:
        """Attach the remedies lab's table (plain text rows) to a stored run."""
        self._update(run_id, "remedies = ?", _dumps([dict(r) for r in rows]))

    def delete(self, run_id: str) -> None:
        self._update(run_id, None, None)

    def _update(self, run_id: str, assignment: str | None, value: object) -> None:
        try:
            with db.opened(self.path, create=False) as connection, db.write(connection, self.path):
                if assignment is None:
                    changed = connection.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
                else:
                    sql = f"UPDATE runs SET {assignment} WHERE id = ?"
                    changed = connection.execute(sql, (value, run_id)).rowcount
                if not changed:
                    raise self._unknown(connection, run_id)
        except FileNotFoundError:
            raise self._unknown(None, run_id) from None
        except sqlite3.Error as exc:
            raise db.failure(self.path, exc) from None

    # ----------------------------------------------------------------- reading

    def list(self, limit: int | None = None) -> list[RunInfo]:
        """The stored runs, newest first (none if there is no store yet)."""
        try:
            with db.opened(self.path, create=False) as connection:
                rows = connection.execute(
                    f"SELECT {_LISTED} FROM runs ORDER BY created DESC, id DESC LIMIT ?",
                    (-1 if limit is None else limit,),
                ).fetchall()
        except FileNotFoundError:
            return []
        except sqlite3.Error as exc:
            raise db.failure(self.path, exc) from None
        return [self._info(row) for row in rows]

    def info(self, run_id: str) -> RunInfo:
        return self._read(run_id, events=False).info

    def load(self, run_id: str) -> StoredRun:
        """A stored run with its events (`UnknownRun` if there is none by this id)."""
        return self._read(run_id, events=True)

    def resolve(self, text: str) -> str:
        """The id of the one stored run whose id is `text` or starts with it."""
        text = text.strip()
        try:
            with db.opened(self.path, create=False) as connection:
                if not re.fullmatch(r"[0-9a-f-]+", text):
                    raise self._unknown(connection, text)
                ids = [
                    r[0]
                    for r in connection.execute(
                        "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", (text, text + "g")
                    )
                ]
                if len(ids) == 1 or text in ids:
                    return text if text in ids else ids[0]
                if not ids:
                    raise self._unknown(connection, text)
                raise UnknownRun(f"more than one stored run's id starts with {text!r}: give more of it")
        except FileNotFoundError:
            raise self._unknown(None, text) from None
        except sqlite3.Error as exc:
            raise db.failure(self.path, exc) from None

    def _read(self, run_id: str, events: bool) -> StoredRun:
        try:
            with db.opened(self.path, create=False) as connection:
                wanted = "events, openings" if events else "NULL, NULL"
                row = connection.execute(
                    f"SELECT {_LISTED}, remedies, {wanted} FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    raise self._unknown(connection, run_id)
        except FileNotFoundError:
            raise self._unknown(None, run_id) from None
        except sqlite3.Error as exc:
            raise db.failure(self.path, exc) from None
        info = self._info(row[:-3])
        remedies = tuple(json.loads(row[-3])) if row[-3] is not None else None
        if not events:
            return StoredRun(info, (), remedies)
        return StoredRun(info, self._events(info, row[-2]), remedies, self._openings(info, row[-1]))

    def _openings(self, info: RunInfo, blob: bytes | None) -> KeptOpenings | None:
        if blob is None:
            return None
        try:
            return KeptOpenings.from_bytes(blob)
        except (zlib.error, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise self._damaged(info.id, exc) from None

    def _events(self, info: RunInfo, packed: bytes) -> tuple[Event, ...]:
        try:
            blob = zlib.decompress(packed)
            if hashlib.sha256(blob).hexdigest() != info.meta.get("sha256"):
                raise ValueError("its events do not match their checksum")
            return tuple(from_line(line) for line in blob.decode("utf-8").splitlines())
        except (zlib.error, ValueError, EventLogError, UnicodeDecodeError) as exc:
            raise self._damaged(info.id, exc) from None

    def _info(self, row: Sequence[Any]) -> RunInfo:
        run_id, created, status, label, pinned, error, config, source, summary, meta, remedies = row
        try:
            stored = json.loads(meta)
            timing = Timing(**{k: stored.pop(k) for k in ("seconds", "paused_s", "first_point_s")})
            return RunInfo(
                id=run_id,
                created=datetime.fromisoformat(created),
                status=status,
                label=label,
                pinned=bool(pinned),
                error=error,
                config=Config.from_dict(json.loads(config)),
                sources=tuple(Source(**s) for s in json.loads(source)) if source else (),
                summary=json.loads(summary),
                timing=timing,
                meta=stored,
                has_remedies=bool(remedies),
            )
        except (ValueError, TypeError, KeyError) as exc:  # ConfigError is a ValueError
            raise self._damaged(run_id, exc) from None

    def _damaged(self, run_id: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"run {run_id} in {self.path} is damaged ({' '.join(str(exc).split())}); "
            f"delete it with `python -m fedviz runs delete {run_id}`"
        )

    def _unknown(self, connection: sqlite3.Connection | None, run_id: str) -> UnknownRun:
        newest = (
            [
                r[0]
                for r in connection.execute(
                    "SELECT id FROM runs ORDER BY created DESC LIMIT ?", (NEWEST_NAMED,)
                )
            ]
            if connection is not None
            else []
        )
        if not newest:
            return UnknownRun(f"no run {run_id!r}: no runs are stored in {self.folder} yet")
        return UnknownRun(
            f"no run {run_id!r} in {self.path}; the newest stored: {', '.join(newest)} "
            "(`python -m fedviz runs list` lists them all)"
        )


def _dumps(value: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False, separators=(",", ":"))


__all__ = ["STATUSES", "Folded", "RunInfo", "RunStore", "Status", "StoredRun", "Timing", "UnknownRun"]
