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
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import streamlit as st

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)
from fedviz.config import Config
from fedviz.engines.background import Engine, Job
from fedviz.events import Event
from fedviz.privacy.attacks import Observations
from fedviz.privacy.openings import KeptOpenings, KeyHolder, Opener
from fedviz.protocol import Server
from fedviz.protocol.masks import PairwiseMasks
from fedviz.report.estimate import Calibration, human_duration
from fedviz.report.summary import RunRecord
from fedviz.report.transcript import Transcript
from fedviz.store import RunStore, StoredRun
from fedviz.store.keeping import Keeper

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
    paused_s: float = 0.0
    """Of `seconds`, the pauses a paced run took for its audience."""
    first_point_s: float | None = None
    stored_id: str | None = None
    """The run's id in the run store (None: not stored)."""
    openings: KeptOpenings | None = None
    """A stored run's: what its key holder opened when it ran (it has no `server`)."""
    label: str = ""
    """A stored run's label."""
    opened: bool = False
    """Opened from the run store (not run in this session)."""
    remedies: tuple[dict[str, str], ...] | None = None
    """A stored run's remedies table, when it was measured for it."""

    def add(self, event: Event) -> None:
        self.record.add(event)
        self.transcript.add(event)
        self.observations.add(event)

    @property
    def opener(self) -> Opener | None:
        """Who opens the hops a coalition hands the key holder: the live key holder, else
        what a stored run kept, else nobody (a Flower run: the key is on its holder's node)."""
        return KeyHolder(self.server) if self.server is not None else self.openings

    @classmethod
    def of_stored(cls, run: StoredRun) -> RunState:
        """A stored run as the pages read it (no key holder: its hops' openings instead)."""
        folded = run.fold()
        return cls(
            run.config,
            folded.record,
            folded.transcript,
            folded.observations,
            seconds=run.info.timing.seconds,
            paused_s=run.info.timing.paused_s,
            first_point_s=run.info.timing.first_point_s,
            stored_id=run.id,
            openings=run.openings,
            label=run.info.label,
            opened=True,
            remedies=run.remedies,
        )

    def __repr__(self) -> str:  # never render the server's internals
        return f"RunState({self.config})"


@dataclass
class JobSlot:
    """The session's run in flight and what becomes of its result."""

    job: Job
    state: RunState
    purpose: Purpose
    forecast_s: float = 0.0
    """The run's forecast without pauses when it started (0: none was made)."""
    run_id: str = ""
    """The run's address in the URL (`?run=`): a reloaded page finds it again by this."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The sidebar's settings the run was started with, for the page that reattaches."""
    keeper: Keeper | None = None
    """Stores the run when it ends (main runs only)."""

    def __repr__(self) -> str:
        return f"JobSlot({self.purpose}, {self.job!r})"


class _SessionToken:
    """Lives exactly as long as this session's state: when Streamlit drops the session, the
    token is collected and the session's job is cancelled (see `Job.cancel_with`)."""


# --------------------------------------------------------------------------- reading


def token() -> object:
    """This session's token: collected when Streamlit drops the session (jobs die with it)."""
    return st.session_state.setdefault("_token", _SessionToken())


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
    forecast_s: float = 0.0,
) -> JobSlot:
    """Start a run owned by this session (a run already in flight is cancelled first).
    `forecast_s`: its forecast without pauses, compared with the real time when it ends."""
    cancel("a new run was started")
    collect()  # one that ended unseen still gets its results taken in
    state = RunState(config)
    keeper = Keeper(RunStore()) if purpose == "main" else None
    consumers = [state.add] if keeper is None else [state.add, keeper.add]
    on_end = keeper.job_ended if keeper is not None else None
    job = Job(config, consumers, pause=pause, engine=engine[0], topology=engine[1], on_end=on_end)
    token = st.session_state.setdefault("_token", _SessionToken())
    job.cancel_with(token)
    run_id = secrets.token_urlsafe(12)
    kept = dict(st.session_state.get("settings", {}))
    current = JobSlot(job.start(), state, purpose, forecast_s, run_id, kept, keeper)
    st.session_state["job"] = current
    _watch(current)
    st.query_params["run"] = run_id
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
    _forget(current)
    job, state = current.job, current.state
    kept = " The previous results are kept." if last_run() is not None else ""
    if current.keeper is not None:
        state.stored_id = current.keeper.run_id
        if current.keeper.problem is not None:
            notify("warning", f"This run was not saved to the Runs page: {current.keeper.problem}.")
    if job.status == "finished":
        calibration(job.engine).record(current.forecast_s, job.elapsed - job.paused_s)
        state.server = job.server
        state.masks = job.masks
        state.seconds = job.elapsed
        state.paused_s = job.paused_s
        state.first_point_s = job.first_point_s
        st.session_state["last_run" if current.purpose == "main" else "two_demo"] = state
    elif job.status == "failed":
        lead = "The run stopped" if "diverged" in (job.error or "") else "The run failed"
        notify("error", f"{lead}: {job.error}.{kept}")
    else:
        stored = (
            " What it finished is kept on the **Runs** page as a stopped run."
            if current.keeper is not None and current.keeper.run_id is not None
            else ""
        )
        notify(
            "warning",
            f"The run was stopped ({job.reason}) during {job.progress.where} after "
            f"{human_duration(job.elapsed)}.{kept}{stored}",
        )


# --------------------------------------------------------------------------- reloads


RECONNECT_GRACE_S = 5.0
"""A run whose page has been gone this long (closed, or reloaded and not reattached) is
stopped: no run burns the CPU for a page nobody watches."""
KEEP_ENDED_S = 600.0
"""An ended run nobody has taken in stays this long for a reloaded page to show."""
WATCH_EVERY_S = 0.5


@dataclass
class _Watched:
    slot: JobSlot
    owner: str | None
    """The Streamlit session that shows the run (None outside a server, e.g. AppTest)."""
    gone_since: float | None = None
    ended_at: float | None = None


_WATCHED: dict[str, _Watched] = {}
"""Runs of every session of this server by run id (process memory only, never stored)."""
_WATCH_LOCK = threading.Lock()
_watcher: threading.Thread | None = None


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _connected(session_id: str | None) -> bool:
    """Whether the session's browser tab is still connected (True when there is no server to ask)."""
    from streamlit.runtime import Runtime

    if session_id is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session_id)


def _watch(slot: JobSlot) -> None:
    global _watcher
    with _WATCH_LOCK:
        _WATCHED[slot.run_id] = _Watched(slot, _session_id())
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_loop, name="fedviz-run-watch", daemon=True)
            _watcher.start()


def _forget(slot: JobSlot) -> None:
    with _WATCH_LOCK:
        _WATCHED.pop(slot.run_id, None)
    if st.query_params.get("run") == slot.run_id:
        del st.query_params["run"]


def _watch_loop() -> None:
    """Stop each run whose page has been gone `RECONNECT_GRACE_S`; drop ended runs nobody took
    in after `KEEP_ENDED_S`."""
    while True:
        time.sleep(WATCH_EVERY_S)
        now = time.monotonic()
        with _WATCH_LOCK:
            entries = list(_WATCHED.items())
        for run_id, entry in entries:
            job = entry.slot.job
            if job.done:
                entry.ended_at = entry.ended_at or now
                if now - entry.ended_at > KEEP_ENDED_S:
                    with _WATCH_LOCK:
                        _WATCHED.pop(run_id, None)
                continue
            if _connected(entry.owner):
                entry.gone_since = None
            elif entry.gone_since is None:
                entry.gone_since = now
            elif now - entry.gone_since > RECONNECT_GRACE_S:
                job.cancel(f"its page was closed and not reopened within {RECONNECT_GRACE_S:g} s")


def reattach() -> JobSlot | None:
    """A page reloaded during a run (its URL carries `?run=`): this new session takes the run
    over (progress, Stop, results), or the notice of how it ended. Returns the slot taken."""
    run_id = st.query_params.get("run")
    if not run_id or slot() is not None:
        return None
    with _WATCH_LOCK:
        entry = _WATCHED.get(run_id)
        if entry is not None:
            entry.owner, entry.gone_since = _session_id(), None
    if entry is None:
        del st.query_params["run"]
        notify(
            "info",
            "The run this address pointed to is no longer on the server (it ended long ago, or "
            "the server restarted).",
        )
        return None
    taken = entry.slot
    taken.job.cancel_with(st.session_state.setdefault("_token", _SessionToken()))
    st.session_state["job"] = taken
    return taken


@st.cache_resource
def _calibrations() -> dict[str, Calibration]:
    """Per engine, how this server's recent runs compared with their forecasts (durations only,
    so one set serves every session)."""
    return {"inprocess": Calibration(), "flower": Calibration()}


def calibration(engine: str) -> Calibration:
    return _calibrations()[engine]


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
