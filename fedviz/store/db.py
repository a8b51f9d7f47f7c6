"""The run store's database file: where it lives, its schema, its migrations, and the one
way to open it.

Invariants:
- The store is one SQLite file, `runs.sqlite3`, in the data folder `home()`: $FEDVIZ_HOME,
  else $XDG_DATA_HOME/fedviz, else the platform's user data folder (~/.local/share/fedviz).
- The file says what it is: SQLite's `application_id` is `APPLICATION_ID` and its
  `user_version` the schema version. Version i becomes i + 1 by `MIGRATIONS[i]`, in one
  transaction with the version bump, so a migration is applied whole or not at all.
- A file this fedviz cannot read (not SQLite, damaged, another program's, a newer schema)
  is never changed: opening it raises `StoreError` with one sentence saying what to do.
- Every connection runs in WAL mode with a busy timeout: readers never block writers, and
  writers from several processes queue for up to `BUSY_TIMEOUT_S` instead of failing.
- `write()` is one `BEGIN IMMEDIATE` ... `COMMIT` transaction: a process killed inside it
  leaves the file as it was before (SQLite rolls the WAL's uncommitted frames back).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedviz.errors import FedvizError

DB_NAME = "runs.sqlite3"
APPLICATION_ID = int.from_bytes(b"FdVz", "big")
"""SQLite's application_id of a fedviz run store (written in the file's header)."""
BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write to end before giving up."""

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the runs table.
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('finished', 'failed', 'interrupted')),
        label TEXT NOT NULL DEFAULT '',
        pinned INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        config TEXT NOT NULL,
        source TEXT,
        summary TEXT NOT NULL,
        meta TEXT NOT NULL,
        remedies TEXT,
        events BLOB NOT NULL
    );
    CREATE INDEX runs_by_created ON runs (created);
    """,
    # 1 -> 2: what the key holder opened from the kept hops (the privacy lab's input; no key).
    """
    ALTER TABLE runs ADD COLUMN openings BLOB;
    """,
)
"""`MIGRATIONS[i]` takes the schema from version i to i + 1 (SQL statements, no data loss)."""
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(FedvizError):
    """The run store cannot do what was asked; the message is one sentence saying why."""


def home() -> Path:
    """The data folder: $FEDVIZ_HOME, else $XDG_DATA_HOME/fedviz, else the platform's own."""
    explicit = os.environ.get("FEDVIZ_HOME", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "fedviz"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "fedviz"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "fedviz"
    return Path.home() / ".local" / "share" / "fedviz"


def damaged(path: Path, detail: object) -> StoreError:
    return StoreError(
        f"{path} is not a fedviz run store (or is damaged): {_detail(detail)}; move it away to start a new one"
    )


def unwritable(folder: Path, detail: object) -> StoreError:
    return StoreError(
        f"cannot write the run store in {folder} ({_detail(detail)}); set FEDVIZ_HOME to a folder you can write"
    )


def _detail(detail: object) -> str:
    if isinstance(detail, OSError) and detail.strerror:
        return detail.strerror.lower()
    return " ".join(str(detail).split()) or type(detail).__name__


@contextmanager
def opened(path: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to the store at `path`, checked and migrated to `SCHEMA_VERSION`,
    closed on exit. `create`: make the folder and the file if missing (else a missing
    file is `FileNotFoundError`, and nothing is created)."""
    if not create and not path.is_file():
        raise FileNotFoundError(path)
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unwritable(path.parent, exc) from None
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise unwritable(path.parent, exc) from None
    try:
        _prepare(connection, path)
        yield connection
    finally:
        connection.close()


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    try:
        version = _check(connection, path)
        if version < SCHEMA_VERSION:
            _migrate(connection, path)  # refuses another program's file before changing anything
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        raise _operational(path, exc) from None
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None


def _check(connection: sqlite3.Connection, path: Path, strict: bool = False) -> int:
    """The file's schema version; `StoreError` unless this fedviz can read it. Outside the
    write lock (`strict` False) an unmarked file may be another process's store being made
    this very moment: it counts as new, and `_migrate` looks again under the lock."""
    application = connection.execute("PRAGMA application_id").fetchone()[0]
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if application == 0 and version == 0 and (not strict or not _tables(connection)):
        return 0  # a new, empty file (or, outside the lock, one being made)
    if application != APPLICATION_ID:
        raise damaged(path, "it belongs to another program")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer fedviz (schema {version}, this one reads up to {SCHEMA_VERSION}); "
            "upgrade fedviz, or set FEDVIZ_HOME to another folder"
        )
    return version


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Apply the missing migrations, all in one transaction with the version bump (another
    process migrating at the same moment waits, then finds nothing left to do)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _check(connection, path, strict=True)
        if version == 0:
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for step in MIGRATIONS[version:]:
            for statement in _statements(step):
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """A migration's statements (`executescript` would commit the open transaction)."""
    out, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    return [s for s in out if s.strip(" ;\n")]


@contextmanager
def write(connection: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed whole on a normal exit, rolled back otherwise."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _operational(path, exc) from None
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """An SQLite error while reading or writing, as one sentence."""
    if isinstance(exc, sqlite3.OperationalError):
        return _operational(path, exc)
    return damaged(path, exc)


def _operational(path: Path, exc: sqlite3.OperationalError) -> StoreError:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreError(
            f"the run store {path} stayed busy for {BUSY_TIMEOUT_S:g} s (another fedviz is writing to it); try again"
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text or "disk i/o" in text:
        return unwritable(path.parent, exc)
    if "full" in text:
        return StoreError(f"the disk holding the run store {path} is full; free some space and try again")
    return damaged(path, exc)
