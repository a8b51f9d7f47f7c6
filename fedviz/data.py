"""scikit-learn's diabetes data, split across hospitals exactly as the seed post does.

Invariants:
- The same (hospitals, seed) always gives the same split, bit for bit, without touching
  numpy's global random state: a `RandomState(seed)` makes the seed's two calls,
  `permutation(442)` then `choice(442, 50, replace=False)`.
- The 392 training patients are cut in order into `392 // n` contiguous blocks, one per
  hospital (the remainder is dropped). Contiguous blocks are deliberately biased samples.
- Column 10 is the intercept (all ones).
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedviz.config import N_PATIENTS, N_TEST

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "intercept")


@dataclass(frozen=True)
class Split:
    """The data of one experiment: a block per hospital and the shared test set."""

    hospital_X: tuple[np.ndarray, ...]
    hospital_y: tuple[np.ndarray, ...]
    X_test: np.ndarray
    y_test: np.ndarray

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


def _sklearn_data_dir() -> Path:
    """Where scikit-learn ships its data files, found without importing scikit-learn
    (that import alone takes about a second)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-learn is not installed; run the project's install step")
    return Path(spec.origin).parent / "datasets" / "data"


def _load_gz(name: str) -> np.ndarray:
    with gzip.open(_sklearn_data_dir() / name, mode="rt", encoding="utf-8") as handle:
        return np.loadtxt(handle)


@lru_cache(maxsize=1)
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    raw = _load_gz("diabetes_data_raw.csv.gz")
    target = _load_gz("diabetes_target.csv.gz")
    # The same arithmetic as load_diabetes(scaled=True): centre, divide by the standard
    # deviation, then by sqrt(n_samples). tests/test_data.py checks bit equality.
    data = raw - np.nanmean(raw, axis=0)
    data /= np.nanstd(raw, axis=0)
    data /= raw.shape[0] ** 0.5
    data.setflags(write=False)
    target.setflags(write=False)
    return data, target


def load_diabetes_xy() -> tuple[np.ndarray, np.ndarray]:
    """(X with the intercept column appended, y), a fresh copy each call."""
    data, target = _diabetes()
    if data.shape[0] != N_PATIENTS:
        raise RuntimeError(f"expected {N_PATIENTS} patients, found {data.shape[0]}")
    return np.c_[data, np.ones(data.shape[0])], target.copy()


def split(hospitals: int, seed: int) -> Split:
    """The seed's split for `hospitals` hospitals."""
    X, y = load_diabetes_xy()
    rng = np.random.RandomState(seed)
    perm = rng.permutation(X.shape[0])
    X, y = X[perm, :], y[perm]
    test_idx = rng.choice(X.shape[0], size=N_TEST, replace=False)
    train = np.ones(X.shape[0], dtype=bool)
    train[test_idx] = False
    X_train, y_train = X[train, :], y[train]
    step = X_train.shape[0] // hospitals
    blocks = range(hospitals)
    return Split(
        hospital_X=tuple(X_train[step * c : step * (c + 1), :] for c in blocks),
        hospital_y=tuple(y_train[step * c : step * (c + 1)] for c in blocks),
        X_test=X[test_idx, :],
        y_test=y[test_idx],
    )
