"""The data of one experiment as every party sees its part: a block per hospital and the
shared test set.

Invariants: every block and the test set have the same columns, `features`, whose last is
the intercept (all ones). `standardised` is False while the columns before the intercept
are in the data's own units; the engine standardises them with pooled statistics computed
through the encrypted ring (`fedviz.data.standardise`) before anyone trains. The target
stays in its own units (a regression's test MSE is in the target's units squared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Split:
    """A block per hospital and the shared test set (or each hospital's own)."""

    hospital_X: tuple[np.ndarray, ...]
    hospital_y: tuple[np.ndarray, ...]
    X_test: np.ndarray
    y_test: np.ndarray
    features: tuple[str, ...] = ()
    target: str = ""
    task: Task = "regression"
    classes: tuple[str, ...] = ()
    """For classification: the names of labels 0 and 1."""
    standardised: bool = True
    hospital_tests: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    """Per hospital, its own test rows (each site holds out its own); empty when every
    hospital is scored on the shared test set."""

    def test_of(self, hospital: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows hospital `hospital` (0-based) is scored on."""
        if self.hospital_tests:
            return self.hospital_tests[hospital]
        return self.X_test, self.y_test

    @property
    def X_pooled(self) -> np.ndarray:
        """All hospitals' training rows together: what pooling would give without privacy."""
        return np.vstack(self.hospital_X)

    @property
    def y_pooled(self) -> np.ndarray:
        return np.concatenate(self.hospital_y)

    @property
    def patients(self) -> tuple[int, ...]:
        return tuple(len(y) for y in self.hospital_y)

    @property
    def dims(self) -> int:
        """Values per gradient (features and the intercept)."""
        return int(self.X_test.shape[1])
