"""How the training rows are dealt out to hospitals: the ways real sites differ.

- `contiguous`: the seed post's blocks, in the shuffled order (the default).
- `iid`: a fresh random deal, equal sizes.
- `by-feature`: rows sorted by one feature, then cut into blocks (e.g. young and old
  hospitals).
- `label-skew`: for classification, each class's rows spread over hospitals in Dirichlet(α)
  proportions (small α: each hospital sees mostly one class).

Invariants: the same inputs give the same deal; every hospital gets at least
`MIN_PATIENTS_PER_HOSPITAL` rows or `DataError` says why not; the test set never changes
with the split (it is drawn first).
"""

from __future__ import annotations

import numpy as np

from fedviz.config import MIN_PATIENTS_PER_HOSPITAL
from fedviz.errors import DataError

SKEW_TRIES = 200
"""Dirichlet draws tried before `label_skew` gives up on giving every hospital enough rows."""


def shuffle_and_hold_out(
    X: np.ndarray, y: np.ndarray, test: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The seed post's two random calls: `permutation(rows)`, then `choice(rows, test)` picks
    the test rows; the rest keep the permuted order. Returns (train X, train y, test X, test y)."""
    perm = rng.permutation(X.shape[0])
    X, y = X[perm, :], y[perm]
    test_idx = rng.choice(X.shape[0], size=test, replace=False)
    train = np.ones(X.shape[0], dtype=bool)
    train[test_idx] = False
    return X[train, :], y[train], X[test_idx, :], y[test_idx]


def contiguous(rows: int, hospitals: int) -> list[np.ndarray]:
    """`rows // hospitals` consecutive rows each (the remainder is dropped)."""
    step = rows // hospitals
    return [np.arange(step * c, step * (c + 1)) for c in range(hospitals)]


def iid(rows: int, hospitals: int, rng: np.random.RandomState) -> list[np.ndarray]:
    """A fresh random deal of equal blocks (the remainder is dropped)."""
    order = rng.permutation(rows)
    return [order[b] for b in contiguous(rows, hospitals)]


def by_feature(column: np.ndarray, hospitals: int) -> list[np.ndarray]:
    """Rows sorted by `column` (stable, so ties keep their order), cut into equal blocks:
    hospital 1 holds the lowest values."""
    order = np.argsort(column, kind="stable")
    return [order[b] for b in contiguous(len(column), hospitals)]


def label_skew(y: np.ndarray, hospitals: int, alpha: float, rng: np.random.RandomState) -> list[np.ndarray]:
    """Each class's rows split over hospitals in Dirichlet(alpha) proportions, redrawn until
    every hospital has at least `MIN_PATIENTS_PER_HOSPITAL` rows."""
    classes = np.unique(y)
    for _ in range(SKEW_TRIES):
        parts: list[list[int]] = [[] for _ in range(hospitals)]
        for c in classes:
            rows = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(hospitals, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for k, chunk in enumerate(np.split(rows, cuts)):
                parts[k].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= MIN_PATIENTS_PER_HOSPITAL:
            return [np.array(sorted(p)) for p in parts]
    raise DataError(
        f"the label-skew split with α = {alpha:g} leaves some of the {hospitals} hospitals fewer than "
        f"{MIN_PATIENTS_PER_HOSPITAL} rows in {SKEW_TRIES} draws: use a larger α or fewer hospitals"
    )
