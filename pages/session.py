"""One browser session's runs: the job in flight, the last finished run, and what to tell
the user about runs that ended while they looked elsewhere.

Session state (per browser session, never `st.cache_resource`):
- `job`: the `JobSlot` of the run in flight (or just ended, until `collect` reads it). The
  run lives in a background thread owned by this session: page switches and reruns do not
  touch it; only Stop, a changed setting, a new run or the end of the session cancel it.
- `last_run`: a `RunState` of the last finished main run (its `Server`, holding the private
  key, stays in this session only and is never rendered).
- `two_demo`: the Privacy page's 2-hospital run.
- `notices`: messages about ended runs, shown once on the next page drawn.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import streamlit as st

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)
from fedviz.config import Config
from fedviz.engines.background import Engine, Job
from fedviz.events import Event
from fedviz.privacy.attacks import Observations
from fedviz.protocol import Server
from fedviz.protocol.masks import PairwiseMasks
from fedviz.report.estimate import human_duration
from fedviz.report.summary import RunRecord
from fedviz.report.transcript import Transcript

T = TypeVar("T")
Purpose = Literal["main", "two"]
"""What a run is for: the session's main results, or the Privacy page's 2-hospital demo."""


@dataclass
class RunState:
    """A run as the pages read it: folded from the event stream by the job's thread."""

    config: Config
    record: RunRecord = field(default_factory=RunRecord)
    transcript: Transcript = field(default_factory=Transcript)
    observations: Observations = field(default_factory=Observations)
    server: Server | None = None
    masks: list[PairwiseMasks] | None = None
    """A masked run's seeds (this session only): what coalitions of the lab may hold."""
    seconds: float = 0.0
    first_point_s: float | None = None

    def add(self, event: Event) -> None:
        self.record.add(event)
        self.transcript.add(event)
        self.observations.add(event)

    def __repr__(self) -> str:  # never render the server's internals
        return f"RunState({self.config})"


@dataclass
class JobSlot:
    """The session's run in flight and what becomes of its result."""

    job: Job
    state: RunState
    purpose: Purpose

    def __repr__(self) -> str:
        return f"JobSlot({self.purpose}, {self.job!r})"


class _SessionToken:
    """Lives exactly as long as this session's state: when Streamlit drops the session, the
    token is collected and the session's job is cancelled (see `Job.cancel_with`)."""


# --------------------------------------------------------------------------- reading


def _kept(key: str, kind: type[T]) -> T | None:
    """The session state at `key` if it is a `kind` (else None: absent or from an old build)."""
    value = st.session_state.get(key)
    return value if isinstance(value, kind) else None


def current_config() -> Config | None:
    return _kept("config", Config)


def last_run() -> RunState | None:
    return _kept("last_run", RunState)


def two_demo() -> RunState | None:
    return _kept("two_demo", RunState)


def slot() -> JobSlot | None:
    return _kept("job", JobSlot)


def running() -> JobSlot | None:
    """The session's run in flight, if any."""
    current = slot()
    return current if current is not None and not current.job.done else None


def is_stale() -> bool:
    """True when valid settings differ from those of the results on show."""
    last, config = last_run(), current_config()
    return last is not None and config is not None and last.config != config


# --------------------------------------------------------------------------- running


def start(
    config: Config,
    purpose: Purpose = "main",
    pause: float = 0.0,
    engine: tuple[Engine, str] = ("inprocess", "ring"),
) -> JobSlot:
    """Start a run owned by this session (a run already in flight is cancelled first)."""
    cancel("a new run was started")
    collect()  # one that ended unseen still gets its results taken in
    state = RunState(config)
    job = Job(config, [state.add], pause=pause, engine=engine[0], topology=engine[1])
    token = st.session_state.setdefault("_token", _SessionToken())
    job.cancel_with(token)
    current = JobSlot(job.start(), state, purpose)
    st.session_state["job"] = current
    return current


def cancel(reason: str) -> None:
    """Cancel the run in flight, if any, and leave the notice that says so."""
    current = running()
    if current is not None:
        current.job.cancel(reason)
        current.job.join(5.0)
        collect()


def set_pause(pause: float) -> None:
    """Change the presentation pace of the run in flight (effective from the next round)."""
    current = running()
    if current is not None:
        current.job.pause = pause


def collect() -> None:
    """Take in a run that has ended: a finished main run replaces `last_run`, a finished demo
    `two_demo`; a failed or cancelled one leaves a notice and keeps what was there."""
    current = slot()
    if current is None or not current.job.done:
        return
    del st.session_state["job"]
    job, state = current.job, current.state
    kept = " The previous results are kept." if last_run() is not None else ""
    if job.status == "finished":
        state.server = job.server
        state.masks = job.masks
        state.seconds = job.elapsed
        state.first_point_s = job.first_point_s
        st.session_state["last_run" if current.purpose == "main" else "two_demo"] = state
    elif job.status == "failed":
        lead = "The run stopped" if "diverged" in (job.error or "") else "The run failed"
        notify("error", f"{lead}: {job.error}.{kept}")
    else:
        notify(
            "warning",
            f"The run was stopped ({job.reason}) during {job.progress.where} after "
            f"{human_duration(job.elapsed)}.{kept}",
        )


def notify(kind: Literal["error", "warning", "info"], text: str) -> None:
    st.session_state.setdefault("notices", []).append((kind, text))


def take_notices() -> list[tuple[str, str]]:
    """The notices not yet shown (and forget them)."""
    notices: list[tuple[str, str]] = st.session_state.pop("notices", [])
    return notices


def keep_upload(data: bytes, name: str) -> str:
    """Write an uploaded CSV to a new file of this session's own folder (0700, under the
    system's temporary directory) and return its path. Earlier uploads stay until the server
    stops (the last run's results may still read theirs); the file is the user's data for
    this session's runs only, never shared or cached."""
    folder = st.session_state.get("upload_dir")
    if folder is None or not os.path.isdir(folder):
        folder = tempfile.mkdtemp(prefix="fedviz-upload-")
        _FOLDERS.append(folder)
        st.session_state["upload_dir"] = folder
    own = tempfile.mkdtemp(dir=folder)  # one folder per upload: the file keeps the user's name
    safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in os.path.basename(name)) or "data.csv"
    path = os.path.join(own, safe)
    with open(path, "wb") as out:
        out.write(data)
    return path


_FOLDERS: list[str] = []
"""Upload folders made by this server process, removed when it exits."""


@atexit.register
def _remove_uploads() -> None:
    for folder in _FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def data_cached(compute: Callable[[Config], T]) -> Callable[[Config], T]:
    """`compute(config)` remembered: in Streamlit's shared cache for the built-in data sets
    (public), in this session only for an uploaded file (the user's own data, which a
    shared cache must never hold)."""
    shared = st.cache_data(show_spinner=False, max_entries=64)(compute)

    def remembered(config: Config) -> T:
        if config.dataset == "csv":
            return per_session((compute.__qualname__, config), lambda: compute(config))
        return shared(config)

    return remembered


def per_session(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, remembered in this session only (for results drawn from the session's own
    uploaded data, which a shared cache must never hold); the last 8 are kept."""
    memo: dict[Hashable, Any] = st.session_state.setdefault("per_session", {})
    if key not in memo:
        if len(memo) >= 8:
            memo.pop(next(iter(memo)))
        memo[key] = compute()
    return memo[key]  # type: ignore[no-any-return]
