"""scikit-learn's diabetes data (the seed post's), split across hospitals exactly as it does.

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
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedviz.config import N_PATIENTS, N_TEST
from fedviz.data.table import Split

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "intercept")
TARGET = "disease progression"


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


def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """The patients in their own units (age in years, BMI, ...), before scikit-learn's scaling."""
    return _load_gz("diabetes_data_raw.csv.gz"), _load_gz("diabetes_target.csv.gz")


def load_diabetes_xy() -> tuple[np.ndarray, np.ndarray]:
    """(X with the intercept column appended, y), a fresh copy each call."""
    data, target = _diabetes()
    if data.shape[0] != N_PATIENTS:
        raise RuntimeError(f"expected {N_PATIENTS} patients, found {data.shape[0]}")
    return np.c_[data, np.ones(data.shape[0])], target.copy()


def split(hospitals: int, seed: int) -> Split:
    """The seed's split for `hospitals` hospitals."""
    from fedviz.data.splits import contiguous, shuffle_and_hold_out

    X, y = load_diabetes_xy()
    train_X, train_y, X_test, y_test = shuffle_and_hold_out(X, y, N_TEST, np.random.RandomState(seed))
    blocks = contiguous(len(train_y), hospitals)
    return Split(
        hospital_X=tuple(train_X[b] for b in blocks),
        hospital_y=tuple(train_y[b] for b in blocks),
        X_test=X_test,
        y_test=y_test,
        features=FEATURES,
        target=TARGET,
    )
