"""Federated standardisation: pooled means and standard deviations without any party
reading another's statistics.

Each hospital summarises its own rows as one vector `[count, sums..., sums of squares...]`
(`local_statistics`); the ring adds these encrypted exactly as it adds gradients and the key
holder decrypts only the total (`fedviz.engines.inprocess` does the ring part); `pooled`
turns the total into means and standard deviations; `apply` rescales every block and the
test set. Invariant: `apply` leaves the intercept column (the last) and the target alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedviz.data.table import Split


def local_statistics(X: np.ndarray) -> np.ndarray:
    """[rows, per-feature sums, per-feature sums of squares] of one hospital's raw features
    (the intercept column excluded)."""
    raw = X[:, :-1]
    return np.concatenate([[float(raw.shape[0])], raw.sum(axis=0), (raw * raw).sum(axis=0)])


def pooled(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and (population) standard deviations from the summed statistics; a constant
    feature gets deviation 1 so it stays finite (it carries no information)."""
    count = float(total[0])
    d = (len(total) - 1) // 2
    means = total[1 : 1 + d] / count
    variance = np.maximum(total[1 + d :] / count - means * means, 0.0)
    stds = np.sqrt(variance)
    return means, np.where(stds > 0, stds, 1.0)


def rescale(X: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Rows with their features as (x - mean) / std; the intercept column (last) untouched."""
    out = X.astype(float, copy=True)
    out[:, :-1] = (out[:, :-1] - means) / stds
    return out


def apply(data: Split, means: np.ndarray, stds: np.ndarray) -> Split:
    """Every block and the test set with features rescaled to (x - mean) / std."""

    def scaled(X: np.ndarray) -> np.ndarray:
        return rescale(X, means, stds)

    return dataclasses.replace(
        data,
        hospital_X=tuple(scaled(X) for X in data.hospital_X),
        X_test=scaled(data.X_test),
        hospital_tests=tuple((scaled(X), y) for X, y in data.hospital_tests),
        standardised=True,
    )


def plaintext(data: Split) -> Split:
    """The same standardisation computed in the clear (for previews and the preflight only:
    equal to the ring's up to its 2^-56 fixed-point grid)."""
    total = np.sum([local_statistics(X) for X in data.hospital_X], axis=0)
    return apply(data, *pooled(total))
