"""The models every party trains in the clear: `linear` (the post's squared error) and
`logistic` (log-loss). Each module offers the same functions: predict, gradient,
row_gradients, score (the run's test metric), accuracy, optimum (a plaintext yardstick)."""

from __future__ import annotations

from types import ModuleType

from fedviz.config import ModelKind
from fedviz.models import linear, logistic


def for_kind(kind: ModelKind) -> ModuleType:
    """The model module for a configured kind."""
    return logistic if kind == "logistic" else linear


__all__ = ["for_kind", "linear", "logistic"]
