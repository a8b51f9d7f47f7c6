"""A run owned by one client (a dashboard session), executed in a background thread.

The in-process engine is a generator: whoever iterates it does the work. A dashboard must
not do that in its script thread (a page switch or a rerun would end the run, and drawing
would slow it). A `Job` iterates it in its own thread instead, folds every event into the
owner's consumers, and can be cancelled from anywhere.

Invariants:
- One `Job` is one run. `status` goes "running" -> "finished" | "failed" | "cancelled" and
  never back; `done` is set after the last consumer call and after the job's processes end.
- The job's worker processes are its own (`run_pool`): `cancel()` drops its queued work and
  kills its running work at once. When the thread ends (in any way) none of them is left.
  A run whose encryption randomness is cheap in all (`pool_pays_off`) has no workers: it
  draws inline, and a cancel takes effect after the current round.
- Consumers are called in the job's thread, in event order, under `lock`; a reader holding
  `lock` sees a consistent state. The job keeps no event list: memory is what consumers keep.
- The `Server` (the private key) is made inside the job, kept only in this object and offered
  to its owner through `server`; it never reaches the workers, a log or a pickle. The same
  holds for the hospitals' mask seeds of a masked run (`masks`), kept for the privacy lab.
- `pause` (seconds after each federated round) is presentation only: the engine's timings
  exclude it, `elapsed` (wall time) includes it. It may be changed while the job runs.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from fedviz.config import Config
from fedviz.crypto.pool import run_pool, terminate, worker_pids
from fedviz.engines.inprocess import run
from fedviz.errors import FedvizError
from fedviz.events import (
    EncryptionProgress,
    Event,
    Exchange,
    FederatedRound,
    KeysGenerated,
    LocalRound,
    PhaseStarted,
    RunFinished,
)
from fedviz.protocol import Server
from fedviz.protocol.masks import PairwiseMasks

Status = Literal["running", "finished", "failed", "cancelled"]
Engine = Literal["inprocess", "flower"]
"""inprocess: every party an object in the job's thread; flower: a loopback Flower deployment
(its processes are the deployment's, stopped when the job ends; the key stays in the key
holder's node, so `server` is None)."""
Consumer = Callable[[Event], None]

LOCAL_SHARE = 0.1
"""Share of the progress bar given to local training (plaintext, fast); keygen is 2 %."""


@dataclass(frozen=True)
class Progress:
    """Where a run stands, for a progress bar: a fraction in [0, 1] and words."""

    fraction: float
    where: str
    """e.g. "federated training (round 3 of 50)"."""
    detail: str = ""
    """Inside a long round: e.g. "randomness ready for 12 of 78 hospitals"."""
    round_start: float = 0.0
    """The fraction at which the current federated round began."""
    round_s: float = 0.0
    """How long the last finished federated round took (0 before the first)."""


def progress_after(event: Event, config: Config, before: Progress) -> Progress:
    """The progress after `event` (events that say nothing new keep `before`)."""
    rounds = config.rounds
    if isinstance(event, LocalRound):
        return Progress(
            LOCAL_SHARE * event.round / rounds, f"local training (round {event.round} of {rounds})"
        )
    if isinstance(event, PhaseStarted) and event.phase == "keygen":
        return Progress(LOCAL_SHARE, f"key generation ({config.key_length}-bit Paillier key pair)")
    if isinstance(event, KeysGenerated):
        return Progress(LOCAL_SHARE + 0.02, f"federated training (round 1 of {rounds})")
    if isinstance(event, EncryptionProgress):
        share = event.ready / event.hospitals
        step = (0.98 - LOCAL_SHARE) / rounds
        start = before.round_start or before.fraction
        # the bar keeps moving inside a long round: by the parties ready, or by the time the
        # last round took when the randomness comes in few large batches
        by_time = min(0.95, event.waited_s / before.round_s) if before.round_s else 0.0
        fraction = start + step * max(share, by_time)
        timing = (
            f" · this round {event.waited_s:.0f} s of about {before.round_s:.0f} s"
            if before.round_s
            else f" · this round {event.waited_s:.1f} s so far"
        )
        return Progress(
            max(before.fraction, fraction),
            f"federated training (round {event.round} of {rounds})",
            f"encryption randomness ready for {event.ready} of {event.hospitals} hospitals ({share:.0%}){timing}",
            start,
            before.round_s,
        )
    if isinstance(event, FederatedRound):
        fraction = LOCAL_SHARE + 0.02 + (0.98 - LOCAL_SHARE) * event.round / rounds
        upcoming = min(event.round + 1, rounds)
        took = event.encrypt_s + event.add_s + event.decrypt_s
        return Progress(fraction, f"federated training (round {upcoming} of {rounds})", "", fraction, took)
    if isinstance(event, Exchange):
        where = (
            "joining: local training and keys"
            if event.round == 0
            else f"federated training (round {event.round} of {rounds})"
        )
        fraction = before.fraction
        if event.round > 0:
            fraction = LOCAL_SHARE + 0.02 + (0.98 - LOCAL_SHARE) * (event.round - 1) / rounds
        lock = " · sealed" if event.sealed else ""
        detail = (
            f"{event.step}: {event.party} answered in {event.seconds:.1f} s ({event.nbytes:,} bytes{lock})"
        )
        if event.step.startswith("part") or event.step in ("join", "final step"):
            # exchanges with every hospital at once: one line for all of them
            detail = f"{event.step.split()[0]}: every party answered within {event.seconds:.1f} s"
        return Progress(max(before.fraction, fraction), where, detail)
    if isinstance(event, RunFinished):
        return Progress(1.0, "the end of the run")
    return before


_live: weakref.WeakSet[Job] = weakref.WeakSet()
"""Jobs not yet ended in this process."""


def running_jobs() -> int:
    """How many jobs of this process are running now (all sessions of a dashboard)."""
    return sum(1 for job in list(_live) if not job.done)


def cancel_all(reason: str = "the server is shutting down", wait_s: float = 10.0) -> None:
    """Cancel every job of this process (at exit, so no worker outlives the server), and give
    each up to `wait_s` to end: a Flower job stops its deployment in its own thread."""
    jobs = list(_live)
    for job in jobs:
        job.cancel(reason)
    deadline = time.monotonic() + wait_s
    for job in jobs:
        job.join(max(0.0, deadline - time.monotonic()))


# Before concurrent.futures' own exit hook, which would wait for the workers' running and
# queued tasks (minutes for a heavy run): threading's exit hooks run last-registered first.
getattr(threading, "_register_atexit", atexit.register)(cancel_all)

INLINE_BELOW_S = 0.25
"""A run whose encryption randomness costs less than this in all draws it inline, in the
job's thread: starting worker processes would cost more than it saves."""


def pool_pays_off(config: Config) -> bool:
    """Whether a run's obfuscators are worth worker processes (forecast from timed costs)."""
    from fedviz.report.estimate import obfuscator_seconds

    return obfuscator_seconds(config) >= INLINE_BELOW_S


class _Lifetime:
    """When a background job started and ended, and waiting for its end. Invariant: `done`
    turns true once, after `_close`, and `elapsed` stops growing then."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._started = 0.0
        self._ended: float | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when it has."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed(self) -> float:
        """Wall time since start (until the end once done), presentation pauses included."""
        end = self._ended if self._ended is not None else time.perf_counter()
        return end - self._started if self._started else 0.0

    def _close(self, last: Callable[[], None] | None = None) -> None:
        """The job has ended: stop the clock, drop the link to its owner, run `last` (what it
        raises is ignored), then say it is done."""
        self._ended = time.perf_counter()
        if self._finalizer is not None:
            self._finalizer.detach()
        if last is not None:
            with contextlib.suppress(Exception):
                last()
        self._done.set()


class Job(_Lifetime):
    """One run in a background thread: start it, read its progress, cancel it."""

    def __init__(
        self,
        config: Config,
        consumers: Sequence[Consumer] = (),
        *,
        pause: float = 0.0,
        workers: int | None = None,
        use_pool: bool | None = None,
        engine: Engine = "inprocess",
        topology: str = "ring",
        on_end: Callable[[Job], None] | None = None,
    ) -> None:
        """`on_end(job)` is called in the job's thread once the run has ended (finished,
        failed or cancelled; the key holder still there) and before `done` turns true: to
        keep what the run made. What it raises is ignored (the run's outcome stands)."""
        super().__init__()
        self.config = config
        self._on_end = on_end
        self.engine, self.topology = engine, topology
        self.pause = pause
        self.lock = threading.Lock()
        self._consumers = tuple(consumers)
        self._workers = workers
        inprocess = engine == "inprocess"
        self._use_pool = inprocess and (pool_pays_off(config) if use_pool is None else use_pool)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fedviz-run", daemon=True)
        self._pool: ProcessPoolExecutor | None = None
        self._server: Server | None = None
        self._masks: list[PairwiseMasks] | None = None
        self.status: Status = "running"
        self.error: str | None = None
        self.reason: str | None = None
        """Why a cancelled job was cancelled, in words (e.g. "Stop was pressed")."""
        self.progress = (
            Progress(
                0.0,
                "setup",
                "starting a local Flower deployment (a SuperLink and a SuperNode per party); then the "
                "parties join: each hospital trains on its own data, the key holder makes the key pair",
            )
            if engine == "flower"
            else Progress(0.0, "setup")
        )
        self.first_point_s: float | None = None
        self.paused_s = 0.0
        """Of `elapsed`, the presentation pauses taken so far."""

    # ------------------------------------------------------------------ control

    def start(self) -> Job:
        self._started = time.perf_counter()
        _live.add(self)
        self._thread.start()
        return self

    def cancel(self, reason: str = "it was stopped") -> None:
        """Stop now: queued and running work of this job is dropped (safe to call twice, from
        any thread, also after the job ended)."""
        if self._done.is_set() or self._cancel.is_set():
            return
        self.reason = reason
        self._cancel.set()
        pool = self._pool
        if pool is not None:
            terminate(pool)

    def cancel_with(self, owner: object, reason: str = "its session ended") -> None:
        """Cancel this job when `owner` is garbage collected (e.g. a closed session's state).
        The link is dropped when the job ends, so an ended job is not kept alive by it; a new
        owner replaces the old one (a page reloaded and reattached to the run)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(owner, self.cancel, reason)

    # ------------------------------------------------------------------ reading

    @property
    def server(self) -> Server | None:
        """The key holder of this run, once its keys exist."""
        return self._server

    def worker_pids(self) -> list[int]:
        """The job's live worker processes (empty once it has ended)."""
        pool = self._pool
        return worker_pids(pool) if pool is not None else []

    # ------------------------------------------------------------------ the thread

    @property
    def masks(self) -> list[PairwiseMasks] | None:
        """The hospitals' mask seeds of an in-process masked run, for this session's privacy lab
        (to show what a coalition holding some of them computes); never cached or shown."""
        return self._masks

    def _keep_masks(self, masks: list[PairwiseMasks]) -> None:
        self._masks = masks

    def _make_server(self) -> Server:
        self._server = Server(self.config.key_length, self.config.obfuscator)
        return self._server

    def _main(self) -> None:
        stream = None
        try:
            if self._use_pool:
                self._pool = run_pool(self._workers)
                if self._cancel.is_set():  # cancelled before the pool existed
                    terminate(self._pool)
            if self.engine == "flower":
                from fedviz.engines.flower.engine import run as run_flower

                stream = run_flower(self.config, self.topology, cancel=self._cancel)  # type: ignore[arg-type]
            else:
                stream = run(self.config, pool=self._pool, server=self._make_server, collude=self._keep_masks)
            for event in stream:
                if self._cancel.is_set():
                    break
                self._consume(event)
                if isinstance(event, FederatedRound) and self.pause > 0:
                    paused = time.perf_counter()
                    self._cancel.wait(self.pause)
                    self.paused_s += time.perf_counter() - paused
        except FedvizError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a worker killed by cancel() surfaces here too
            self._fail(f"unexpected failure ({type(exc).__name__}: {exc})")
        finally:
            if stream is not None:
                stream.close()
            if self._pool is not None:
                terminate(self._pool)
            if self._cancel.is_set():
                self.status = "cancelled"
            elif self.status == "running":
                self.status = "finished"
            on_end = self._on_end
            self._close((lambda: on_end(self)) if on_end is not None else None)

    def _consume(self, event: Event) -> None:
        with self.lock:
            for consumer in self._consumers:
                consumer(event)
            self.progress = progress_after(event, self.config, self.progress)
            if isinstance(event, FederatedRound) and self.first_point_s is None:
                self.first_point_s = time.perf_counter() - self._started

    def _fail(self, message: str) -> None:
        if not self._cancel.is_set():
            self.status = "failed"
            self.error = message

    def __repr__(self) -> str:
        return f"Job({self.status}, {self.progress.where})"


class StreamJob(_Lifetime):
    """Any stream of results consumed in a background thread (the Compare page's protections):
    the items kept in order as they come, cancellable between two items, a failure kept in
    words. A closed session's job is cancelled with it (`cancel_with`)."""

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        super().__init__()
        self._make = make
        self.items: list[Any] = []
        self.error: str | None = None
        self.status: Status = "running"
        self._cancel = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name="fedviz-stream", daemon=True)

    def start(self) -> StreamJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def cancel_with(self, owner: object) -> None:
        self._finalizer = weakref.finalize(owner, self.cancel)

    def _main(self) -> None:
        try:
            for item in self._make():
                self.items.append(item)
                if self._cancel.is_set():
                    break
        except FedvizError as exc:
            self.error = str(exc)
        except Exception as exc:
            self.error = f"unexpected failure ({type(exc).__name__}: {exc})"
        finally:
            self.status = "cancelled" if self._cancel.is_set() else "failed" if self.error else "finished"
            self._close()
