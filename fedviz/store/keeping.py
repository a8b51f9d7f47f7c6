"""Keeping a background run: the dashboard stores every main run it ends, as it ended.

A `Keeper` watches the run's events (`add`, a consumer like any other) and, called by the job
when the run has ended (`job_ended`, in the job's thread, while its key holder still exists),
stores it: finished, failed, or stopped ("interrupted"), with its timings and what the key
holder opened from the kept hops (`fedviz.privacy.openings`).

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

    def job_ended(self, job: Job) -> None:
        status = ENDINGS.get(job.status)
        if status is None:
            return
        kept = self.recorder.events()
        hops = [e for e in kept if isinstance(e, RingHop)]
        try:
            openings = keep(job.server, hops, masked=job.config.masks == "pairwise")
            timing = Timing(job.elapsed, job.paused_s, job.first_point_s)
            self.run_id = self.store.save(self.recorder, status, job.error, timing=timing, openings=openings)
        except ValueError:
            return  # the run never started: nothing to keep
        except StoreError as exc:
            self.problem = str(exc)


__all__ = ["ENDINGS", "Keeper"]
