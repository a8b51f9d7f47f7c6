"""Shared fixtures: runs are collected once per session (1024-bit keys for speed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

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
