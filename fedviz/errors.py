"""The exceptions fedviz raises on purpose; each message is a sentence a user can act on."""

from __future__ import annotations

from typing import Literal

NOT_ALLOWED = "is not allowed"
EMPTY = "is empty"


class FedvizError(Exception):
    """Base class: every failure fedviz reports in words derives from it."""


class ConfigError(FedvizError, ValueError):
    """An experiment setting is out of range. The message names the field, the value (the
    user's own text when it came from text) and what is allowed.

    `problem` says what is wrong with the value ("is not allowed", "is empty", "is not a
    whole number", ...); `advice`, when given, replaces "use <allowed>" in the sentences
    (e.g. "write 1000"). `str(exc)` is the terse form the command line prints;
    `exc.plain` is the sentence a form shows next to the field.
    """

    def __init__(
        self, field: str, value: object, allowed: str, problem: str = NOT_ALLOWED, advice: str | None = None
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.problem = problem
        self.advice = advice
        super().__init__(self._terse())

    def _terse(self) -> str:
        if self.problem == EMPTY:
            return f"{self.field} is empty: enter {self.allowed}"
        if self.problem == NOT_ALLOWED and self.advice is None:
            return f"{self.field} = {self.value!r} is not allowed: {self.allowed}"
        return f"{self.field} = {self.value!r} {self.problem}: {self.advice or 'use ' + self.allowed}"

    @property
    def plain(self) -> str:
        """The message in words for a form, e.g. "Hospitals: '79' is not allowed — use a
        whole number from 2 to 78 (each hospital needs at least 5 of the 392 training
        patients)." """
        from fedviz.config import label  # config imports this module

        name = label(self.field)
        if self.problem == EMPTY:
            return f"{name} is empty: enter {self.allowed}."
        return f"{name}: {self.value!r} {self.problem} — {self.advice or 'use ' + self.allowed}."


class DataError(FedvizError, ValueError):
    """The data cannot be used as asked: a CSV that is missing, empty, binary, too large or
    not numeric, a missing target column, too few rows for the hospitals, a split that
    cannot be made. The message is one sentence in words that names what to change.

    `file`, when given, is the user's own file name as the message spells it (e.g.
    "constant_target.csv"): a sentence that starts with it keeps its case in `plain`.
    """

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file

    def __reduce__(self) -> tuple[object, ...]:  # keeps `file` across processes
        return (type(self), (str(self),), {"file": self.file})

    @property
    def plain(self) -> str:
        """The sentence a form shows, with a full stop: the first letter capitalised unless
        the sentence starts with `file` ("data.csv is empty." stays as the user named it,
        "row 2, ..." becomes "Row 2, ...")."""
        text = str(self)
        if not (self.file and text.startswith(self.file)):
            text = text[:1].upper() + text[1:]
        return text + "."


class EncodingOverflow(FedvizError, OverflowError):
    """A value does not fit the agreed fixed-point encoding; it is never wrapped silently."""


DivergenceCause = Literal["encoding", "non-finite", "other"]


class TrainingDiverged(FedvizError):
    """Gradient descent produced non-finite or unencodable values. Events already yielded
    stand; the message names the phase and round and suggests what to change.

    `cause`: "encoding" (a gradient outgrew what the encryption's encoding holds),
    "non-finite" (weights overflowed float64) or "other"; inferred from `reason` unless given.
    """

    def __init__(
        self,
        phase: str,
        round_: int,
        reason: str,
        learning_rate: float,
        cause: DivergenceCause | None = None,
    ) -> None:
        self.phase = phase
        self.round = round_
        self.reason = reason
        self.learning_rate = learning_rate
        self.cause: DivergenceCause = cause or _cause_of(reason)
        super().__init__(
            f"training diverged in {phase} round {round_}: {reason}; "
            f"try a smaller learning rate than {learning_rate:g}"
        )


def _cause_of(reason: str) -> DivergenceCause:
    if "encode" in reason:
        return "encoding"
    if "finite" in reason:
        return "non-finite"
    return "other"
