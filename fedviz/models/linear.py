"""Linear regression by gradient descent: the arithmetic every party runs in the clear.

The operations are written exactly as the seed post writes them (`X.dot(w)`,
`delta.dot(X)`, `w -= eta * g`) so that floating-point results match its published table.
"""

from __future__ import annotations

import numpy as np

from fedviz.config import GradientMode


def predict(weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.asarray(X.dot(weights))


def gradient(weights: np.ndarray, X: np.ndarray, y: np.ndarray, mode: GradientMode) -> np.ndarray:
    """Gradient of the squared error: `sum` is the post's `delta.dot(X)`; `mean` divides by
    the number of rows (python-paillier's example)."""
    delta = predict(weights, X) - y
    g = delta.dot(X)
    return np.asarray(g / X.shape[0] if mode == "mean" else g)


def row_gradients(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's own squared-error gradient (w.x - y) x, one row per patient (they sum to
    the `sum` gradient)."""
    return np.asarray((predict(weights, X) - y)[:, None] * X)


def mse(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error on (X, y), the post's `np.mean((y - y_pred) ** 2)`."""
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run reports inf, not a warning
        return float(np.mean((y - predict(weights, X)) ** 2))


def score(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """The metric the run reports: the test MSE."""
    return mse(weights, X, y)


def accuracy(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Not defined for regression: NaN."""
    return float("nan")


def optimum(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return least_squares(X, y)


def least_squares(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The exact minimiser of the squared error on (X, y)."""
    weights, *_ = np.linalg.lstsq(X, y, rcond=None)
    return np.asarray(weights)
