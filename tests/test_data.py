import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from fedviz.config import MAX_HOSPITALS, N_TEST, N_TRAIN
from fedviz.data import FEATURES, load_diabetes_xy, split


def test_data_is_bit_equal_to_scikit_learns_loader():
    X, y = load_diabetes_xy()
    ref = load_diabetes()
    assert np.array_equal(X[:, :10], ref.data)
    assert np.array_equal(y, ref.target)
    assert np.all(X[:, 10] == 1.0)
    assert len(FEATURES) == X.shape[1] == 11


def test_split_follows_the_seed_random_calls():
    # The seed: np.random.seed(42); perm = permutation(442); test = choice(442, 50, replace=False)
    X, y = load_diabetes_xy()
    state = np.random.get_state()
    try:
        np.random.seed(42)
        perm = np.random.permutation(X.shape[0])
        Xp, yp = X[perm], y[perm]
        test_idx = np.random.choice(X.shape[0], size=50, replace=False)
    finally:
        np.random.set_state(state)
    s = split(3, 42)
    assert np.array_equal(s.X_test, Xp[test_idx]) and np.array_equal(s.y_test, yp[test_idx])
    train = np.delete(Xp, test_idx, axis=0)
    assert np.array_equal(s.hospital_X[0], train[:130]) and np.array_equal(s.hospital_X[2], train[260:390])


@pytest.mark.parametrize("hospitals", [2, 3, 5, 10, MAX_HOSPITALS])
def test_blocks_are_disjoint_equal_and_leave_the_test_set_out(hospitals):
    s = split(hospitals, 7)
    assert s.patients == (N_TRAIN // hospitals,) * hospitals
    assert min(s.patients) >= 5 and len(s.y_test) == N_TEST
    rows = [tuple(r) for r in np.vstack([*s.hospital_X, s.X_test])]
    assert len(set(rows)) == len(rows)  # no patient twice


def test_split_is_reproducible_and_seed_dependent():
    a, b, c = split(3, 1), split(3, 1), split(3, 2)
    assert np.array_equal(a.X_pooled, b.X_pooled)
    assert not np.array_equal(a.X_pooled, c.X_pooled)
