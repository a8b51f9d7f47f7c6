"""The protocol's numbers: the seed's table, equality with plaintext, references, divergence."""

import numpy as np
import pytest
from conftest import of_type

from fedviz.config import Config
from fedviz.crypto.encoding import from_fixed, to_fixed
from fedviz.data import split
from fedviz.engines.inprocess import run
from fedviz.errors import TrainingDiverged
from fedviz.events import (
    FederatedRound,
    HospitalGradients,
    KeysGenerated,
    LocalRound,
    PhaseStarted,
    ReferenceComputed,
    RingHop,
    RunFinished,
    RunStarted,
)

SEED_LOCAL = (3933.78, 4176.48, 3795.95)
SEED_FEDERATED = (3695.77, 3855.14, 3598.63)


def plaintext_protocol(config: Config) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The seed post's loops in plain numpy, written independently of fedviz's engine:
    (local MSE per round, federated MSE per round, broadcast average per round)."""
    s = split(config.hospitals, config.seed)
    Xs, ys = s.hospital_X, s.hospital_y

    def grad(w, X, y):
        g = (X.dot(w) - y).dot(X)
        return g / len(y) if config.gradient == "mean" else g

    def test_mse(w):
        return np.mean((s.y_test - s.X_test.dot(w)) ** 2)

    weights = [np.zeros(11) for _ in Xs]
    local = []
    for _ in range(config.rounds):
        weights = [w - config.learning_rate * grad(w, X, y) for w, X, y in zip(weights, Xs, ys)]
        local.append(np.array([test_mse(w) for w in weights]))
    if not config.warm_start:
        weights = [np.zeros(11) for _ in Xs]
    federated, averages = [], []
    for _ in range(config.rounds):
        avg = sum(grad(w, X, y) for w, X, y in zip(weights, Xs, ys)) / len(Xs)
        weights = [w - config.learning_rate * avg for w in weights]
        federated.append(np.array([test_mse(w) for w in weights]))
        averages.append(avg)
    return local, federated, averages


@pytest.mark.parametrize("encoding", ["packed", "per-value"])
def test_the_seed_table_is_reproduced(events, encoding):
    done = of_type(events(encoding=encoding), RunFinished)[0]
    assert done.local_mse == pytest.approx(SEED_LOCAL, abs=0.02)
    assert done.federated_mse == pytest.approx(SEED_FEDERATED, abs=0.02)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"encoding": "per-value"},
        {"hospitals": 5, "gradient": "mean", "learning_rate": 0.5, "rounds": 30},
        {"hospitals": 10, "warm_start": False, "seed": 3, "rounds": 20, "obfuscator": "standard"},
        {"hospitals": 2, "rounds": 10},
    ],
)
def test_federated_run_equals_the_plaintext_protocol(events, settings):
    evs = events(**settings)
    config = of_type(evs, RunStarted)[0].config
    local, federated, averages = plaintext_protocol(config)
    got_local = [e.mse for e in of_type(evs, LocalRound)]
    got_fed = of_type(evs, FederatedRound)
    assert len(got_local) == len(got_fed) == config.rounds
    np.testing.assert_allclose(got_local, local, rtol=1e-12)
    np.testing.assert_allclose([e.mse for e in got_fed], federated, rtol=1e-6)
    np.testing.assert_allclose([e.average_gradient for e in got_fed], averages, rtol=1e-6, atol=1e-9)


def test_broadcast_is_the_mean_of_the_hospitals_gradients(events):
    evs = events()
    truths = of_type(evs, HospitalGradients)
    for truth, fed in zip(truths, of_type(evs, FederatedRound), strict=True):
        assert truth.round == fed.round
        # bit-exact: the integer sum of each value's single fixed-point rounding, divided by 3
        exact = [from_fixed(sum(to_fixed(g[i]) for g in truth.gradients)) / 3 for i in range(11)]
        assert fed.average_gradient == tuple(exact)
        np.testing.assert_allclose(
            fed.average_gradient, np.mean(truth.gradients, axis=0), rtol=1e-15, atol=1e-12
        )


def test_cold_start_federated_equals_the_pooled_reference(events):
    evs = events(warm_start=False)
    ref = of_type(evs, ReferenceComputed)[0]
    for fed in of_type(evs, FederatedRound):
        assert fed.mse == pytest.approx((ref.centralized_mse[fed.round - 1],) * 3, rel=1e-9)


def test_reference_optimum_is_the_least_squares_solution(events):
    from sklearn.linear_model import LinearRegression

    s = split(3, 42)
    fit = LinearRegression(fit_intercept=False).fit(s.X_pooled, s.y_pooled)
    expected = np.mean((s.y_test - fit.predict(s.X_test)) ** 2)
    assert of_type(events(), ReferenceComputed)[0].optimum_mse == pytest.approx(expected, rel=1e-9)


def test_events_come_in_the_documented_order(events):
    evs = events(rounds=50)
    kinds = [type(e).__name__ for e in evs]
    assert kinds[:3] == ["RunStarted", "ReferenceComputed", "PhaseStarted"]
    assert kinds[-1] == "RunFinished"
    phases = [e.phase for e in of_type(evs, PhaseStarted)]
    assert phases == ["local", "keygen", "federated"]
    assert kinds.index("KeysGenerated") > kinds.index("LocalRound")
    per_round = kinds[kinds.index("PhaseStarted", kinds.index("KeysGenerated")) + 1 :][:5]
    assert per_round == ["RingHop", "RingHop", "RingHop", "HospitalGradients", "FederatedRound"]
    hops = of_type(evs, RingHop)[:3]
    assert [(h.sender, h.receiver, h.contributions) for h in hops] == [
        ("Hospital 1", "Hospital 2", 1),
        ("Hospital 2", "Hospital 3", 2),
        ("Hospital 3", "Server", 3),
    ]
    keys = of_type(evs, KeysGenerated)[0]
    assert keys.bits == keys.n.bit_length() == 1024
    done = of_type(evs, RunFinished)[0]
    assert done.bytes_per_round == sum(h.nbytes for h in hops) == 3 * 256
    t = done.timings
    assert 0 < t.encrypt + t.add + t.decrypt <= t.federated <= t.total


def test_a_large_learning_rate_stops_with_a_clear_error_and_keeps_earlier_events():
    seen = []
    with pytest.raises(TrainingDiverged) as info:
        for event in run(Config(key_length=1024, learning_rate=5.0), pool=None):
            seen.append(event)
    message = str(info.value)
    assert "round 1" in message and "smaller learning rate than 5" in message
    assert info.value.phase == "federated" and info.value.round == 1
    assert len(of_type(tuple(seen), LocalRound)) == 50  # what was yielded stands


def test_non_finite_weights_stop_the_local_phase():
    with pytest.raises(TrainingDiverged) as info:
        list(run(Config(key_length=1024, learning_rate=1e6, rounds=200), pool=None))
    assert info.value.phase == "local"
    assert "no longer finite" in str(info.value)
    assert f"local round {info.value.round}:" in str(info.value)


def test_closing_the_stream_early_is_clean():
    stream = run(Config(key_length=1024), pool="shared")
    for event in stream:
        if isinstance(event, FederatedRound) and event.round == 2:
            break
    stream.close()  # cancels queued obfuscators; a new run still works
    assert of_type(tuple(run(Config(key_length=1024, rounds=1))), RunFinished)


def test_packed_and_per_value_encodings_give_the_same_run(events):
    packed, per_value = (
        of_type(events(encoding=e, hospitals=4), FederatedRound) for e in ("packed", "per-value")
    )
    for a, b in zip(packed, per_value, strict=True):
        assert a.average_gradient == b.average_gradient  # both sum the same fixed-point integers
        assert a.mse == b.mse


@pytest.mark.parametrize("encoding", ["packed", "per-value"])
def test_real_key_sizes_run_for_both_encodings(encoding):
    """2048-bit keys with both encodings (the seed-table tests use 1024 for speed)."""
    evs = tuple(run(Config(encoding=encoding, rounds=3), pool="shared"))
    keys = of_type(evs, KeysGenerated)[0]
    assert keys.bits == 2048 and keys.ciphertexts_per_message == (1 if encoding == "packed" else 11)
    assert len(of_type(evs, FederatedRound)) == 3


def test_the_estimate_grows_with_the_work():
    from fedviz.report.estimate import estimate_seconds

    base = estimate_seconds(Config())
    assert (
        0 < base < estimate_seconds(Config(rounds=500)) < estimate_seconds(Config(rounds=500, hospitals=40))
    )
    assert estimate_seconds(Config(encoding="per-value")) > base
    assert estimate_seconds(Config(key_length=4096)) > estimate_seconds(Config(key_length=1024))


def test_the_pooled_yardstick_runs_as_many_rounds_as_local_plus_federated():
    """Warm start: R local then R federated rounds are set beside R + R pooled rounds from zero."""
    from fedviz.engines.inprocess import reference

    warm = reference(Config(rounds=20), split(3, 42))
    longer = reference(Config(rounds=40, warm_start=False), split(3, 42))
    assert warm.centralized_mse == longer.centralized_mse[:20]
    assert warm.continued_mse == longer.centralized_mse[20:]
    assert reference(Config(rounds=20, warm_start=False), split(3, 42)).continued_mse == ()
