"""`run(config, topology)`: the experiment on a loopback Flower deployment, as the in-process
engine's events.

The relay (ServerApp) writes its events as JSON lines; this reads them, lets the observer
complete them (see `observer`), and watches the processes: a party whose process exits, a
relay that stops without finishing, or a failure line ends the run with one error naming
what happened. Closing the generator (a Stop, Ctrl-C) or any error stops the deployment:
no process is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

from fedviz.config import Config
from fedviz.engines.flower.launcher import Deployment
from fedviz.engines.flower.observer import Observer
from fedviz.engines.flower.relay import FlowerRunError, Topology
from fedviz.engines.flower.scope import refusal
from fedviz.errors import ConfigError
from fedviz.eventlog import Failure, parse
from fedviz.events import Event, RunFinished

STATUS_EVERY_S = 2.0
IDLE_SLEEP_S = 0.02


def run(
    config: Config,
    topology: Topology = "ring",
    cancel: threading.Event | None = None,
    short_waits: bool = False,
) -> Generator[Event, None, None]:
    """The experiment's events. `cancel`: when set (from any thread), the run ends within
    about `IDLE_SLEEP_S` plus the deployment's stop, without yielding more. `short_waits`:
    see `fedviz.engines.flower.short_waits` (off by default)."""
    why = refusal(config)
    if why is not None:
        raise ConfigError("engine", "flower", why)
    deployment = Deployment(config, topology, short_waits)
    try:
        deployment.start()
        if cancel is not None and cancel.is_set():
            return
        run_id = deployment.submit()
        observer = Observer(config, deployment.observer_dir, {p.name: p.pid for p in deployment.processes})
        checked = time.monotonic()
        finished_status = ""
        for line in deployment.lines():
            if line:
                item = parse(line)
                if isinstance(item, Failure):
                    raise item.exception()
                yield from observer.complete(item)
                if isinstance(item, RunFinished):
                    return
                continue
            if cancel is not None and cancel.is_set():
                return
            if finished_status:  # the relay ended and every line it wrote has been read
                raise FlowerRunError(f"the relay stopped ({finished_status}) before the run finished")
            dead = deployment.dead()
            if dead is not None:
                raise FlowerRunError(
                    f"{dead.name}'s process (pid {dead.pid}) exited during the run"
                    + (f": {dead.tail(2)}" if dead.tail(2) else "")
                )
            if time.monotonic() - checked > STATUS_EVERY_S:
                checked = time.monotonic()
                status = deployment.status(run_id)
                if status.startswith("finished"):
                    finished_status = status
                    continue
            time.sleep(IDLE_SLEEP_S)
    finally:
        deployment.stop()
