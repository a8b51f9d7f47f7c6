"""Shared fixtures: runs are collected once per session (1024-bit keys for speed)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from fedviz.config import Config
from fedviz.engines.inprocess import run
from fedviz.events import Event


@cache
def _events(config: Config, pooled: bool) -> tuple[Event, ...]:
    return tuple(run(config, pool="shared" if pooled else None))


@pytest.fixture(scope="session")
def events() -> Callable[..., tuple[Event, ...]]:
    """events(pooled=True, **config) -> every event of that run (cached per session)."""

    def get(pooled: bool = True, **settings: object) -> tuple[Event, ...]:
        settings.setdefault("key_length", 1024)
        return _events(Config(**settings), pooled)  # type: ignore[arg-type]

    return get


def of_type(events: tuple[Event, ...], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] != "Z"
    except (OSError, IndexError):  # gone (ENOENT), or going while read (ESRCH)
        return False


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, every: float = 0.02) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def default_sigint() -> None:
    """`preexec_fn` for a child a test will Ctrl-C: Ctrl-C's default disposition, whatever it
    inherits. A shell running the suite as a background job ignores SIGINT, the child inherits
    the ignoring, and Python then never installs its KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """The suite as a non-interactive shell's background job runs it: SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def fresh_forecasts() -> Iterator[None]:
    """Each test's dashboard forecasts start unlearned: the server-wide calibration learns from
    every finished run, and one test's runs must not move another's expected times."""
    import sys

    yield
    session = sys.modules.get("pages.session")
    if session is not None:
        session._calibrations.clear()


@pytest.fixture(autouse=True, scope="session")
def own_run_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The dashboard keeps every run it ends: the suite's go to a folder of its own (and the
    servers the browser tests start inherit it), never the user's data folder."""
    import os

    previous = os.environ.get("FEDVIZ_HOME")
    os.environ["FEDVIZ_HOME"] = str(tmp_path_factory.mktemp("fedviz-home"))
    yield
    if previous is None:
        os.environ.pop("FEDVIZ_HOME", None)
    else:
        os.environ["FEDVIZ_HOME"] = previous
