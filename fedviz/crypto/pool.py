"""A process pool for obfuscators, and a bounded look-ahead of them per hospital.

Invariants:
- The pool only ever receives public values (n, hs, exponent length, a count); private
  keys never cross into it, so one pool may serve every session of a dashboard.
- Workers start from a fork server that preloads only `fedviz.crypto.obfuscators` (gmpy2 and the
  standard library), never from a fork of a multi-threaded web server.
- Scripts that run training must guard their entry point with `if __name__ == "__main__":`
  (multiprocessing's rule for non-fork start methods); `python -m ...` entry points need not.
- A `Prefetcher` keeps at most `ahead` rounds of work queued; memory stays bounded however
  many rounds a run has, and `close()` cancels what was not yet used.
- A run's own pool (`run_pool`) has workers at a lower CPU priority than the process that
  made it, and `terminate` ends them mid-task: a stopped run frees the cores at once, and a
  heavy run in one session cannot hold workers another session's run waits for.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, wait

from fedviz.crypto import obfuscators
from fedviz.crypto.keys import PublicParams

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


WORKER_NICENESS = 5
"""How much lower than its parent a run pool's workers run (the web server stays responsive)."""


def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fedviz.crypto.obfuscators"])
    return context


def start_forkserver() -> None:
    """Start the fork server now (it imports gmpy2 once), so the first run's workers fork
    from it at once instead of waiting for it."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def shared_pool() -> ProcessPoolExecutor:
    """The process-wide pool (created on first use, sized to the cores, shut at exit)."""
    global _pool
    with _lock:
        if _pool is None or getattr(_pool, "_broken", False):
            _pool = ProcessPoolExecutor(
                max_workers=default_workers(),
                mp_context=_context(),
                initializer=os.nice,
                initargs=(WORKER_NICENESS,),
            )
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def run_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A pool for one run only, its workers niced; end it with `terminate`."""
    return ProcessPoolExecutor(
        max_workers=workers or default_workers(),
        mp_context=_context(),
        initializer=os.nice,
        initargs=(WORKER_NICENESS,),
    )


def worker_pids(pool: ProcessPoolExecutor) -> list[int]:
    """The pids of a pool's live worker processes."""
    processes = getattr(pool, "_processes", None) or {}
    return [p.pid for p in list(processes.values()) if p.pid is not None and p.is_alive()]


def terminate(pool: ProcessPoolExecutor, timeout: float = 2.0) -> None:
    """End a pool now: drop its queue and kill its workers, even mid-task. Afterwards none of
    its processes is left (waits up to `timeout` s for each, then SIGKILL).

    Every worker must go: one killed while it held the task queue's lock leaves any sibling
    blocked on that lock forever, and the interpreter's exit then waits for the sibling. So the
    pool's own process table is read after `shutdown` (which stops new workers and drops the
    executor's reference to the table), catching a worker started while this ran."""
    table = getattr(pool, "_processes", None)
    pool.shutdown(wait=False, cancel_futures=True)
    processes = list((table or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)


def warm(pool: ProcessPoolExecutor) -> None:
    """Start the workers now (in the background) so the first real task does not wait."""
    for _ in range(default_workers()):
        pool.submit(obfuscators.warm_up)


class Prefetcher:
    """Obfuscators for every hospital, round by round, up to `ahead` rounds early.

    A round's hospitals are split into at most `tasks` contiguous groups (by default one per
    pool worker) and each task draws one group's obfuscators: a round costs one pool
    round-trip per worker, not one per hospital (measured: 40 hospitals x 200 rounds at 4096
    bits, 4.6x -> 6.2x over the naive single-core cost). Tasks are queued round-major, so
    round 1 is never stuck behind later rounds. With `pool=None` they are drawn inline when
    asked for.
    """

    def __init__(
        self,
        public: PublicParams,
        parties: int,
        per_party: int,
        rounds: int,
        pool: ProcessPoolExecutor | None,
        ahead: int = 4,
        tasks: int | None = None,
    ) -> None:
        self._public = (public.n, public.hs, public.exponent_bits)
        self._per_party = per_party
        self._parties = parties
        self._groups = groups(parties, tasks or getattr(pool, "_max_workers", None) or default_workers())
        self._pool = pool
        self._left = rounds
        self._ahead = ahead
        self._queue: deque[list[Future[list[int]]]] = deque()
        self._fill()

    def _fill(self) -> None:
        if self._pool is None:
            return
        while self._left > 0 and len(self._queue) < self._ahead:
            self._queue.append(
                [
                    self._pool.submit(obfuscators.draw, *self._public, self._per_party * size)
                    for size in self._groups
                ]
            )
            self._left -= 1

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the next round's obfuscators; True when all are ready."""
        if self._pool is None or not self._queue:
            return True
        _, pending = wait(self._queue[0], timeout=timeout)
        return not pending

    def ready(self) -> int:
        """How many parties' obfuscators for the next round are already drawn."""
        if self._pool is None or not self._queue:
            return 0
        return sum(size for size, future in zip(self._groups, self._queue[0], strict=True) if future.done())

    def next_round(self) -> list[list[int]]:
        """One list of obfuscators per hospital for the next round (blocks until ready)."""
        if self._pool is None:
            return [obfuscators.draw(*self._public, self._per_party) for _ in range(self._parties)]
        if not self._queue:
            raise RuntimeError("no rounds of obfuscators left")
        drawn = [value for future in self._queue.popleft() for value in future.result()]
        self._fill()
        k = self._per_party
        return [drawn[i * k : (i + 1) * k] for i in range(self._parties)]

    def close(self) -> None:
        for futures in self._queue:
            for future in futures:
                future.cancel()
        self._queue.clear()
        self._left = 0


def groups(parties: int, tasks: int) -> list[int]:
    """Sizes of at most `tasks` contiguous groups covering `parties`, as even as possible."""
    count = max(1, min(parties, tasks))
    base, extra = divmod(parties, count)
    return [base + (1 if i < extra else 0) for i in range(count)]
