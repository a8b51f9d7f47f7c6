"""Events as JSON lines: one event per line, `{"event": <class name>, ...its fields}`.

The same lines serve `python -m fedviz --events` (scripts and monitoring) and the Flower
engine, whose relay writes them and whose launcher reads them back into the very same
typed events the in-process engine yields.

Invariants:
- `from_line(to_line(e)) == e` for every event with finite floats (big integers such as
  moduli and ciphertexts stay exact: JSON integers have no size limit).
- Every line is valid JSON: a non-finite float is written as null (and read back as NaN).
- Nested dataclasses (Config, Ciphertext, Timings, Party) are plain objects without a tag;
  their class comes from the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from functools import cache
from typing import Any, Literal, Union

from fedviz import events
from fedviz.errors import FedvizError


class EventLogError(FedvizError):
    """A line that is not a known event (names the problem, never echoes secrets)."""


EVENT_TYPES: dict[str, type] = {t.__name__: t for t in typing.get_args(events.Event)}


def to_line(event: object) -> str:
    """One event as one line of JSON (no newline)."""
    if type(event).__name__ not in EVENT_TYPES:
        raise EventLogError(f"{type(event).__name__} is not an event")
    body = {"event": type(event).__name__, **_plain(event)}
    return json.dumps(body, allow_nan=False, separators=(",", ":"))


def from_line(line: str) -> events.Event:
    """The event one line holds; raises `EventLogError` naming what is wrong."""
    try:
        body = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EventLogError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(body, dict) or "event" not in body:
        raise EventLogError('not an event: an object with an "event" name was expected')
    name = body.pop("event")
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise EventLogError(f"unknown event {name!r}")
    try:
        return typing.cast(events.Event, _build(cls, body))
    except (TypeError, ValueError, KeyError) as exc:
        raise EventLogError(f"{name}: {exc}") from None


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    module = __import__(cls.__module__, fromlist=["_"])
    return typing.get_type_hints(cls, vars(module))


def _build(cls: type, body: dict[str, Any]) -> object:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(body) - names
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    return cls(**{name: _value(hints[name], body[name]) for name in body})


def _value(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        rest = [o for o in options if o is not type(None)]
        return _value(rest[0], value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        return tuple(_value(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {hint.__name__}")
        return _build(hint, value)
    if hint is float:
        return math.nan if value is None else float(value)
    if hint is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Failure:
    """The last line of a run that failed: `{"failure": kind, "message": ...}`.

    kind "diverged" carries phase, round, cause and learning rate, so the reader raises the
    same `TrainingDiverged` the in-process engine would; any other kind is a plain failure."""

    kind: str
    message: str
    phase: str = ""
    round: int = 0
    cause: str = ""
    learning_rate: float = math.nan

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        from fedviz.errors import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            return cls("diverged", exc.reason, exc.phase, exc.round, exc.cause, exc.learning_rate)
        return cls(type(exc).__name__, str(exc) or type(exc).__name__)

    def line(self) -> str:
        body = {"failure": self.kind, **{k: v for k, v in dataclasses.asdict(self).items() if k != "kind"}}
        return (
            json.dumps(body, allow_nan=False, default=str)
            if math.isfinite(self.learning_rate)
            else json.dumps({**body, "learning_rate": None})
        )

    def exception(self) -> Exception:
        from fedviz.errors import TrainingDiverged

        if self.kind == "diverged":
            return TrainingDiverged(self.phase, self.round, self.reason, self.learning_rate, cause=self.cause)  # type: ignore[arg-type]
        return FedvizError(self.message)

    @property
    def reason(self) -> str:
        return self.message


def parse(line: str) -> events.Event | Failure:
    """An event line or a run's failure line."""
    if line.startswith('{"failure"'):
        body = json.loads(line)
        rate = body.get("learning_rate")
        return Failure(
            body["failure"],
            body["message"],
            body.get("phase", ""),
            int(body.get("round", 0)),
            body.get("cause", ""),
            math.nan if rate is None else float(rate),
        )
    return from_line(line)
