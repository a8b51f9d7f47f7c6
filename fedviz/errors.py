"""The exceptions fedviz raises on purpose; each message is a sentence a user can act on."""

from __future__ import annotations


class FedvizError(Exception):
    """Base class: every failure fedviz reports in words derives from it."""


class ConfigError(FedvizError, ValueError):
    """An experiment setting is out of range. The message names the field, the value and
    what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {value!r} is not allowed: {allowed}")


class EncodingOverflow(FedvizError, OverflowError):
    """A value does not fit the agreed fixed-point encoding; it is never wrapped silently."""


class TrainingDiverged(FedvizError):
    """Gradient descent produced non-finite or unencodable values. Events already yielded
    stand; the message names the phase and round and suggests what to change."""

    def __init__(self, phase: str, round_: int, reason: str, learning_rate: float) -> None:
        self.phase = phase
        self.round = round_
        super().__init__(
            f"training diverged in {phase} round {round_}: {reason}; "
            f"try a smaller learning rate than {learning_rate:g}"
        )
