"""Shared fixtures: runs are collected once per session (1024-bit keys for speed)."""

from __future__ import annotations

import time
from collections.abc import Callable
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
