"""Logistic regression by gradient descent: the log-loss and its exact gradient, computed by
each hospital in the clear on its own rows (no approximation: the ring only adds gradients).

Labels are 0/1; p = sigmoid(w.x). Written with `logaddexp` and `tanh` so that no value
overflows however large w.x grows.
"""

from __future__ import annotations

import numpy as np

from fedviz.config import GradientMode


def probability(weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    """P(label 1 | x) = sigmoid(w.x), computed without overflow."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * X.dot(weights))))


def predict(weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    return probability(weights, X)


def row_gradients(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's log-loss gradient (p - y) x."""
    return np.asarray((probability(weights, X) - y)[:, None] * X)


def gradient(weights: np.ndarray, X: np.ndarray, y: np.ndarray, mode: GradientMode) -> np.ndarray:
    """Gradient of the summed log-loss, X^T (p - y); `mean` divides by the number of rows."""
    g = (probability(weights, X) - y).dot(X)
    return np.asarray(g / X.shape[0] if mode == "mean" else g)


def score(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean log-loss (natural log): mean of log(1 + e^z) - y z with z = w.x."""
    z = X.dot(weights)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean(np.logaddexp(0.0, z) - y * z))


def accuracy(weights: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose predicted label (p >= 0.5) is the true one."""
    return float(np.mean((X.dot(weights) >= 0) == (y == 1)))


def optimum(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scikit-learn's LogisticRegression with its default (L2, C = 1) fit on the rows, the
    intercept being the last column: a yardstick, not what the ring computes."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(fit_intercept=False, max_iter=5000).fit(X, y)
    return np.asarray(fit.coef_[0], dtype=float)
