"""Keeping a background run: the dashboard stores every main run it ends, as it ended.

A `Keeper` watches the run's events (`add`, a consumer like any other) and, once the run has
ended, stores it with what its key holder opened from the kept hops (`fedviz.privacy.openings`):
`save` for any caller (the CLI's --save), `job_ended` for a dashboard job (called in the job's
thread, while its key holder still exists: finished, failed, or stopped as "interrupted").

Invariants:
- Saving never changes how the run ended: a store that cannot be written leaves `problem`
  (one sentence) and the run's results stand.
- The key holder is used only to open the kept hops, in this process; it is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedviz.events import Event, RingHop
from fedviz.privacy.openings import keep
from fedviz.protocol import Server
from fedviz.store.db import StoreError
from fedviz.store.recorder import Recorder
from fedviz.store.runs import RunStore, Status, Timing

if TYPE_CHECKING:
    from fedviz.engines.background import Job

ENDINGS: dict[str, Status] = {"finished": "finished", "failed": "failed", "cancelled": "interrupted"}
"""A job's status -> the stored run's."""


@dataclass
class Keeper:
    store: RunStore = field(default_factory=RunStore)
    recorder: Recorder = field(default_factory=Recorder)
    run_id: str | None = None
    """The stored run's id, once stored."""
    problem: str | None = None
    """Why the run could not be stored (one sentence), if it could not."""

    def add(self, event: Event) -> None:
        self.recorder.add(event)

    def save(
        self, status: Status, error: str | None, timing: Timing, server: Server | None, masked: bool
    ) -> str:
        """Store the run as the recorder kept it, with what `server` (its key holder, if it ran
        in this process; None otherwise) reads from the kept hops; its id. Raises `ValueError`
        for a run that never started, `StoreError` when the store cannot be written."""
        hops = [e for e in self.recorder.events() if isinstance(e, RingHop)]
        openings = keep(server, hops, masked)
        self.run_id = self.store.save(self.recorder, status, error, timing=timing, openings=openings)
        return self.run_id

    def job_ended(self, job: Job) -> None:
        status = ENDINGS.get(job.status)
        if status is None:
            return
        try:
            timing = Timing(job.elapsed, job.paused_s, job.first_point_s)
            self.save(status, job.error, timing, job.server, masked=job.config.masks == "pairwise")
        except ValueError:
            return  # the run never started: nothing to keep
        except StoreError as exc:
            self.problem = str(exc)


__all__ = ["ENDINGS", "Keeper"]
