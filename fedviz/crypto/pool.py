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
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

from fedviz.crypto import obfuscators
from fedviz.crypto.keys import PublicParams

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def shared_pool() -> ProcessPoolExecutor:
    """The process-wide pool (created on first use, sized to the cores, shut at exit)."""
    global _pool
    with _lock:
        if _pool is None or getattr(_pool, "_broken", False):
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["fedviz.crypto.obfuscators"])
            _pool = ProcessPoolExecutor(max_workers=default_workers(), mp_context=context)
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def warm(pool: ProcessPoolExecutor) -> None:
    """Start the workers now (in the background) so the first real task does not wait."""
    for _ in range(default_workers()):
        pool.submit(obfuscators.warm_up)


class Prefetcher:
    """Obfuscators for every hospital, round by round, up to `ahead` rounds early.

    Each task draws one hospital's obfuscators for one round; tasks are queued round-major,
    so the hospitals of a round are worked on in parallel and round 1 is never stuck
    behind later rounds. With `pool=None` they are drawn inline when asked for.
    """

    def __init__(
        self,
        public: PublicParams,
        parties: int,
        per_party: int,
        rounds: int,
        pool: ProcessPoolExecutor | None,
        ahead: int = 4,
    ) -> None:
        self._args = (public.n, public.hs, public.exponent_bits, per_party)
        self._parties = parties
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
                [self._pool.submit(obfuscators.draw, *self._args) for _ in range(self._parties)]
            )
            self._left -= 1

    def next_round(self) -> list[list[int]]:
        """One list of obfuscators per hospital for the next round (blocks until ready)."""
        if self._pool is None:
            return [obfuscators.draw(*self._args) for _ in range(self._parties)]
        if not self._queue:
            raise RuntimeError("no rounds of obfuscators left")
        values = [future.result() for future in self._queue.popleft()]
        self._fill()
        return values

    def close(self) -> None:
        for futures in self._queue:
            for future in futures:
                future.cancel()
        self._queue.clear()
        self._left = 0
