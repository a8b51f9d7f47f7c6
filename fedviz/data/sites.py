"""Each site's own data: one CSV per hospital, read by that hospital alone.

A site reads its file with the same parsing, limits and one-sentence refusals as `--data`
(`fedviz.data.sources.read_csv_path`), shuffles its rows with the run's seed and holds out
its own test rows (`test_fraction` of them, at least one); it is scored on those. The same
function serves a hospital's SuperNode in a pilot and the in-process engine given the same
files, so both see the same rows in the same order.

Invariants: a site's training and test rows come only from its own file; what it publishes
is its column names, its target, its task and classes, and its row counts, never a value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedviz.config import MIN_PATIENTS_PER_HOSPITAL
from fedviz.data.sources import read_csv_path
from fedviz.data.table import Split, Task
from fedviz.errors import DataError


@dataclass(frozen=True)
class SiteData:
    name: str
    """The file's own name (never its path)."""
    X: np.ndarray
    """Training rows in the data's own units, with the intercept column last."""
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    features: tuple[str, ...]
    """Feature names, the intercept last."""
    target: str
    task: Task
    classes: tuple[str, ...]

    @property
    def rows(self) -> int:
        return int(self.X.shape[0] + self.X_test.shape[0])

    def card(self) -> dict[str, object]:
        """What the site publishes about its data: names and counts, no value."""
        return {
            "file": self.name,
            "columns": list(self.features[:-1]),
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
            "rows": self.rows,
            "train-rows": int(self.X.shape[0]),
            "test-rows": int(self.X_test.shape[0]),
        }


def test_rows(rows: int, test_fraction: float) -> int:
    return max(1, round(test_fraction * rows))


def load_site(path: str, target: str, test_fraction: float, seed: int) -> SiteData:
    """A site's rows: its CSV shuffled with `seed`, the first `test_fraction` held out."""
    if not (math.isfinite(test_fraction) and 0 < test_fraction < 1):
        raise DataError(f"the test fraction must be strictly between 0 and 1 (given {test_fraction:g})")
    source = read_csv_path(path, target)
    held = test_rows(source.rows, test_fraction)
    train = source.rows - held
    if train < MIN_PATIENTS_PER_HOSPITAL:
        raise DataError(
            f"{source.name} has {source.rows} rows: {train} for training after {held} test "
            f"row{'s' if held != 1 else ''}; a site needs at least {MIN_PATIENTS_PER_HOSPITAL} training rows",
            file=source.name,
        )
    order = np.random.RandomState(seed).permutation(source.rows)
    X = np.c_[source.X, np.ones(source.rows)][order]
    y = source.y[order]
    return SiteData(
        source.name,
        X[held:],
        y[held:],
        X[:held],
        y[:held],
        (*source.features, "intercept"),
        source.target,
        source.task,
        source.classes,
    )


def agree(cards: Sequence[tuple[str, dict[str, object]]]) -> None:
    """Refuse, naming the site, when the sites' columns, target, task or classes differ from
    the first site's (`cards`: (who, card) per site, in ring order)."""
    (first, reference), *rest = cards
    for who, card in rest:
        for key, what in (
            ("columns", "columns"),
            ("target", "target"),
            ("task", "kind of target"),
            ("classes", "target's two values"),
        ):
            if card[key] != reference[key]:
                mine, theirs = _show(card[key]), _show(reference[key])
                raise DataError(
                    f"{who}'s data has {what} {mine}, but {first}'s has {theirs}: every site needs the same "
                    "columns, in the same order, and the same target"
                )


def _show(value: object) -> str:
    if isinstance(value, list):
        shown = ", ".join(repr(v) for v in value[:12]) + (" …" if len(value) > 12 else "")
        return f"[{shown}]"
    return repr(value)


def split_of(sites: Sequence[SiteData]) -> Split:
    """The experiment's data when each hospital is a site: its own block and test rows; the
    pooled test set (for plaintext yardsticks) is every site's test rows together."""
    agree([(s.name, s.card()) for s in sites])
    first = sites[0]
    return Split(
        hospital_X=tuple(s.X for s in sites),
        hospital_y=tuple(s.y for s in sites),
        X_test=np.vstack([s.X_test for s in sites]),
        y_test=np.concatenate([s.y_test for s in sites]),
        features=first.features,
        target=first.target,
        task=first.task,
        classes=first.classes,
        standardised=False,
        hospital_tests=tuple((s.X_test, s.y_test) for s in sites),
    )
