"""Processes a role command starts and stops: each in its own process group, all carrying one
environment marker, so a stop finds every process a role started, also those Flower detaches
into sessions of their own (its SuperExec, ServerApp and ClientApp processes).

Invariant: after `Children.stop()`, no process carrying the role's marker is alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fedviz.engines.flower.launcher import ROOT, marked, start_logged

MARKER = "FEDVIZ_PILOT_ROLE"
STOP_GRACE_S = 6.0


def flower_env(home: Path, marker: str) -> dict[str, str]:
    """What every Flower process of a role runs with: this checkout on the path, Flower's home
    in the role's folder, no telemetry and no update check, the role's marker."""
    env = dict(os.environ)
    env.update(
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        FLWR_HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.05",
        **{MARKER: marker},
    )
    return env


def console(name: str) -> str:
    """A console script of this Python's environment (flower-supernode, flwr, ...)."""
    return str(Path(sys.executable).parent / name)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        kept = [line.strip() for line in text if line.strip()]
        return " | ".join(kept[-lines:])


@dataclass
class Children:
    """A role's processes (logs in `logs/`), stopped together."""

    logs: Path
    home: Path
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: list[Child] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    """More environment for every process (e.g. the short-waits option)."""

    @property
    def env(self) -> dict[str, str]:
        return {**flower_env(self.home, self.marker), **self.extra}

    def spawn(self, name: str, command: list[str], cwd: Path) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        child = Child(name, start_logged(command, log, self.env, cwd), log)
        self.started.append(child)
        return child

    def dead(self) -> Child | None:
        return next((c for c in self.started if c.popen.poll() is not None), None)

    def pids(self) -> list[int]:
        return marked(f"{MARKER}={self.marker}")

    def stop(self) -> None:
        """SIGTERM to every process of the role, SIGKILL after a grace; none is left."""
        for pid in self.pids():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.pids() and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for pid in self.pids():
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self.pids() and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        self._reap()

    def _reap(self) -> None:
        for child in self.started:
            child.popen.poll()


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class Stopped(Exception):
    """SIGTERM or Ctrl-C reached a role command."""


def stop_on_signals() -> None:
    """SIGTERM and SIGINT end the role command's wait with `Stopped` (its finally stops all)."""

    def handler(signum: int, frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
