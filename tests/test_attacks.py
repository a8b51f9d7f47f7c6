"""Each inference checked against ground truth; non-recoveries shown under-determined."""

import numpy as np
import pytest
from conftest import of_type

from fedviz.config import Config
from fedviz.crypto.encoding import PHE_EXPONENT, make_codec
from fedviz.data import split
from fedviz.engines.inprocess import run
from fedviz.events import RingHop
from fedviz.privacy import attacks
from fedviz.protocol import Server

RNG = np.random.default_rng(7)


def observe(evs) -> attacks.Observations:
    obs = attacks.Observations()
    for e in evs:
        obs.add(e)
    return obs


def test_two_hospitals_expose_each_other_exactly(events):
    obs = observe(events(hospitals=2, rounds=10))
    for t in range(obs.rounds):
        g = obs.gradients[t]
        for attacker in (0, 1):
            attack = attacks.difference_attack(g[attacker], obs.averages[t], 2, g, attacker)
            assert attack.exposes_a_hospital
            np.testing.assert_allclose(attack.recovered, g[1 - attacker], rtol=0, atol=1e-9)
    assert attacks.difference_errors(obs).max() < 1e-9


def test_three_hospitals_reveal_only_the_sum_of_the_others(events):
    obs = observe(events(rounds=10))
    g, avg = obs.gradients[4], obs.averages[4]
    attack = attacks.difference_attack(g[0], avg, 3, g, 0)
    assert not attack.exposes_a_hospital and attack.others == 2
    np.testing.assert_allclose(attack.recovered, g[1] + g[2], rtol=0, atol=1e-9)
    fake = attacks.alternative_split(g, 0, RNG)
    # a different truth that produces the same observations: own gradient and the average
    assert np.array_equal(fake[0], g[0])
    np.testing.assert_allclose(fake.mean(axis=0), avg, rtol=0, atol=1e-9)
    assert np.abs(fake[1] - g[1]).max() > 1.0
    with pytest.raises(ValueError):
        attacks.alternative_split(g[:2], 0, RNG)


@pytest.mark.parametrize(
    ("members", "server", "n", "exposed"),
    [
        ({1, 2}, False, 3, {3}),  # n - 1 hospitals recover the last
        ({2, 3, 4}, False, 4, {1}),
        ({1}, False, 3, set()),  # one hospital alone: only the sum of the others
        ({2}, True, 3, {1, 3}),  # server + hospital 2 decrypt Enc(g1); g3 = total - g1 - g2
        ({2}, True, 5, {1}),  # server + hospital 2: hospital 1's gradient itself
        ({4}, True, 6, set()),  # server + hospital k+1 = 4 read the prefix g1+g2+g3 only
        ({4}, True, 5, {5}),  # ... and, next to the end, the last hospital by difference
        ({2, 4}, True, 5, {1, 3, 5}),  # server + hospitals k-1 and k+1 recover g_k
        ({3, 5}, True, 5, {4}),
        (set(), True, 4, set()),  # the server alone decrypts only the total
        ({5}, True, 5, set()),
    ],
)
def test_which_hospitals_a_coalition_exposes(members, server, n, exposed):
    assert attacks.exposed_hospitals(frozenset(members), server, n) == frozenset(exposed)


def test_coalition_recovery_with_real_decryption_matches_the_truth():
    """Server + hospitals 2 and 4 in a 5-hospital ring: the server decrypts the messages
    hospitals 2 and 4 received (Enc(g1) and Enc(g1+g2+g3)) with the run's key."""
    config = Config(hospitals=5, key_length=1024, rounds=3)
    server = Server(1024, "djn")
    evs = tuple(run(config, pool=None, server=server))
    obs = observe(evs)
    codec = make_codec("packed", server.public.n, 11, 5)
    hops = [h for h in of_type(evs, RingHop) if h.round == 2]
    members = frozenset({2, 4})
    prefixes = {j - 1: attacks.decrypt_hop(server, hops[j - 2], codec) for j in members}
    truth = obs.gradients[1]
    np.testing.assert_allclose(prefixes[3], truth[:3].sum(axis=0), rtol=0, atol=1e-9)
    own = {k: truth[k - 1] for k in members}
    got = attacks.coalition_recovery(members, prefixes, own, obs.averages[1], 5)
    assert set(got) == {1, 3, 5}
    for k, g in got.items():
        np.testing.assert_allclose(g, truth[k - 1], rtol=0, atol=1e-9)
    # hospital 3 alone (no server) recovers nobody in a ring of 5
    lone = attacks.coalition_recovery(frozenset({3}), {}, {3: truth[2]}, obs.averages[1], 5)
    assert lone == {}


def test_a_non_exposed_hospital_is_under_determined():
    n = 4
    truth = RNG.normal(size=(n, 11))
    members = frozenset({1})
    fake = attacks.alternative_split(truth, 0, RNG)  # moves z between hospitals 2 and 3
    seen = [attacks.coalition_recovery(members, {}, {1: g[0]}, g.mean(axis=0), n) for g in (truth, fake)]
    assert seen[0] == seen[1] == {}
    assert not np.allclose(truth[1], fake[1])


def test_aggregate_fit_recovers_the_gram_matrix_on_a_spanning_synthetic_run():
    X = RNG.normal(size=(120, 11))
    X[:, -1] = 1.0
    hospital_X = np.split(X, 3)
    A = attacks.true_aggregate_matrix(hospital_X, "sum")
    c = RNG.normal(size=11)
    updates = RNG.normal(size=(30, 11))  # directions that span every feature
    G = c - updates @ A.T
    fit = attacks.fit_aggregate(updates, G)
    assert fit.rank == 12
    assert attacks.relative_error(fit.A, A) < 1e-6
    others = attacks.others_gram(fit.A, hospital_X[0], 3, "sum")
    truth = hospital_X[1].T @ hospital_X[1] + hospital_X[2].T @ hospital_X[2]
    assert attacks.relative_error(others, truth) < 1e-6


def test_aggregate_error_on_the_real_trajectory_equals_an_independent_computation(events):
    obs = observe(events(rounds=50))
    data = split(3, 42)
    A = attacks.true_aggregate_matrix(data.hospital_X, "sum")
    np.testing.assert_allclose(A, data.X_pooled.T @ data.X_pooled / 3, rtol=1e-12)
    curve = attacks.aggregate_curve(obs.averages, 0.01, A)
    t, rank, error = curve[-1]
    # independent: u_t by a Python loop, the fit by the pseudo-inverse with the same cutoff
    u, rows = np.zeros(11), []
    for avg in obs.averages:
        rows.append(np.append(u, 1.0))
        u = u + 0.01 * avg
    D = np.array(rows)
    M = np.linalg.pinv(D, rcond=1e-10) @ np.array(obs.averages)
    independent = np.linalg.norm(-M[:-1].T - A) / np.linalg.norm(A)
    assert t == 50 and rank == np.linalg.matrix_rank(D, tol=1e-10 * np.linalg.svd(D, compute_uv=False)[0])
    assert error == pytest.approx(independent, rel=1e-6)
    assert rank < 12  # a real descent trajectory is nearly degenerate


def test_one_patient_record_comes_back_exactly():
    data = split(3, 42)
    for i in range(5):
        x, y = data.hospital_X[0][i], float(data.hospital_y[0][i])
        w = RNG.normal(size=11) * 50
        g = attacks.single_patient_gradient(x, y, w)
        got = attacks.recover_single_patient(g, w)
        np.testing.assert_allclose(got.record, x, rtol=0, atol=1e-9)
        assert got.target == pytest.approx(y, abs=1e-9)
    with pytest.raises(ValueError, match="exactly"):
        attacks.recover_single_patient(np.zeros(11), np.zeros(11))


def test_phe_default_exponents_track_magnitude_but_fedviz_sends_one(events):
    n = (1 << 1023) + 12345
    exps = attacks.phe_default_exponents(np.array([0.001, 0.5, 3.0, 250.0, 12345.678, 1e7]), n)
    assert len(set(exps)) > 1
    obs = observe(events(rounds=3))
    values = obs.gradients[0].ravel()
    default = attacks.phe_default_exponents(values, n)
    assert len(set(default)) > 1
    hops = of_type(events(encoding="per-value", rounds=3), RingHop)
    assert {c.exponent for h in hops for c in h.ciphertexts} == {PHE_EXPONENT}
