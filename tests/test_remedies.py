"""The privacy remedies: differential privacy (accounted by dp-accounting), pairwise masks, the
shuffled ring, and the lab's attacks re-run against each."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import pickle

import dp_accounting
import numpy as np
import pytest
from conftest import of_type
from dp_accounting import rdp

from fedviz.cli import main
from fedviz.config import Config
from fedviz.data import split
from fedviz.engines.inprocess import run
from fedviz.errors import ConfigError
from fedviz.eventlog import from_line, to_line
from fedviz.events import FederatedRound, HospitalGradients, MasksAgreed, PrivacyBudget, RingHop, RunFinished
from fedviz.privacy import dp, remedies, utility
from fedviz.protocol import Hospital
from fedviz.protocol.masks import agree
from fedviz.protocol.ring import shuffled_order

SMALL = Config(key_length=1024, rounds=6)


# --------------------------------------------------------------------------- the accountant


@pytest.mark.parametrize(("z", "rounds", "delta"), [(1.1, 50, 1e-5), (28.6, 50, 1e-5), (4.0, 1000, 1e-6)])
def test_epsilon_is_the_rdp_accountants(z, rounds, delta):
    accountant = rdp.RdpAccountant()
    for _ in range(rounds):
        accountant.compose(dp_accounting.GaussianDpEvent(z))
    assert dp.epsilon_for(z, rounds, delta) == pytest.approx(accountant.get_epsilon(delta), rel=1e-9)


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 10.0])
def test_the_noise_multiplier_meets_the_target_and_no_less_noise_would(epsilon):
    z = dp.noise_multiplier(epsilon, 1e-5, 50)
    assert dp.epsilon_for(z, 50, 1e-5) <= epsilon * (1 + 1e-6)
    assert dp.epsilon_for(z * 0.99, 50, 1e-5) > epsilon


def test_a_coalition_subtracting_its_noise_shares_faces_a_larger_epsilon():
    plan = dp.plan(1.0, 1e-5, 100.0, 50, 5)
    eps = dict(dp.coalition_epsilons(plan))
    assert list(eps) == [0, 1, 2, 3, 4]
    assert eps[0] == pytest.approx(1.0, rel=1e-4)
    assert all(eps[k] < eps[k + 1] for k in range(4))
    assert eps[4] == pytest.approx(dp.epsilon_for(plan.noise_multiplier * math.sqrt(1 / 5), 50, 1e-5))


def test_dp_settings_are_refused_in_words():
    with pytest.raises(ConfigError, match=r"warm start|warm_start"):
        Config(dp_epsilon=1.0)  # warm start on
    for field, value in (("dp_epsilon", 0.0), ("dp_epsilon", math.inf), ("dp_delta", 1.0), ("dp_clip", -1.0)):
        with pytest.raises(ConfigError) as info:
            Config(**{"warm_start": False, "dp_epsilon": 1.0, field: value})
        assert info.value.field == field


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dp-epsilon", "0"], "dp_epsilon"),
        (["--dp-epsilon", "-3"], "dp_epsilon"),
        (["--dp-epsilon", "1", "--dp-delta", "1.5"], "dp_delta"),
        (["--dp-epsilon", "1", "--dp-clip", "0"], "dp_clip"),
        (["--masks", "everything"], "masks"),
        (["--shuffle-ring", "--engine", "flower"], "in-process only"),
    ],
)
def test_cli_refuses_bad_remedy_values_in_one_line(args, words):
    out, err = io.StringIO(), io.StringIO()
    assert main(args, out, err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_cli_json_reports_the_dp_plan_and_the_masks():
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--key-length", "1024", "--rounds", "5", "--dp-epsilon", "2", "--masks", "pairwise", "--json"],
        out,
        err,
    )
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["config"]["warm_start"] is False  # DP implies a cold start
    got = summary["dp"]
    assert got["epsilon"] == 2.0 and got["delta"] == 1e-5 and got["clip"] == 100.0 and got["rounds"] == 5
    assert got["noise_multiplier"] == pytest.approx(dp.noise_multiplier(2.0, 1e-5, 5))
    assert summary["masks"]["pairs"] == 3 and summary["masks"]["agreement_bytes"] == 96


# --------------------------------------------------------------------------- DP in the ring


def test_dp_noise_is_fresh_each_run_and_inside_the_sum():
    config = dataclasses.replace(SMALL, warm_start=False, dp_epsilon=1.0)
    a, b = list(run(config, pool=None)), list(run(config, pool=None))
    avg_a = of_type(a, FederatedRound)[0].average_gradient
    avg_b = of_type(b, FederatedRound)[0].average_gradient
    assert avg_a != avg_b
    (budget,) = of_type(a, PrivacyBudget)
    assert budget.noise_multiplier == pytest.approx(dp.noise_multiplier(1.0, 1e-5, 6))
    g = of_type(a, HospitalGradients)[0]
    assert g.clean is not None and g.gradients != g.clean
    # the broadcast is the average of what the hospitals put in (noise included), exactly
    sent = np.array(g.gradients)
    assert np.allclose(sent.mean(axis=0), avg_a, rtol=0, atol=1e-9)


def test_large_epsilon_approaches_no_dp():
    base = dataclasses.replace(SMALL, rounds=50, warm_start=False, dp_clip=1000.0)
    plain = of_type(list(run(base, pool=None)), RunFinished)[0].federated_mse[0]
    loose = dataclasses.replace(base, dp_epsilon=1000.0)
    noisy = of_type(list(run(loose, pool=None)), RunFinished)[0].federated_mse[0]
    assert noisy == pytest.approx(plain, rel=0.02)
    tight = dataclasses.replace(base, dp_epsilon=0.1)
    worse = of_type(list(run(tight, pool=None)), RunFinished)[0].federated_mse[0]
    assert worse > 1.5 * plain


def test_clipping_bounds_each_patients_pull():
    data = split(3, 42)
    X, y = data.hospital_X[0], data.hospital_y[0]
    w = np.zeros(X.shape[1])
    clipped = dp.clipped_sum(w, X, y, 10.0)
    assert np.linalg.norm(clipped) <= 10.0 * len(y) + 1e-9
    assert np.allclose(dp.clipped_sum(w, X, y, 1e9), (X.dot(w) - y).dot(X))  # no clipping: the sum gradient


def test_the_utility_curves_shortcut_is_the_ring_without_noise():
    config = dataclasses.replace(SMALL, hospitals=4, warm_start=False, gradient="mean")
    data = split(config.hospitals, config.seed)
    weights = np.full(11, 0.5)
    per_hospital = []
    for i in range(4):
        h = Hospital(
            i,
            data.hospital_X[i],
            data.hospital_y[i],
            "mean",
            dp.plan(1.0, 1e-5, 30.0, 6, 4),
            lambda s, d: np.zeros(d),
        )
        h.weights = weights
        per_hospital.append(h.contribution())
    ring_average = np.mean(per_hospital, axis=0)
    assert np.allclose(utility.pooled_average(weights, data, config, 30.0, None), ring_average, rtol=1e-12)
    events = list(run(config, pool=None))
    first = np.array(of_type(events, FederatedRound)[0].average_gradient)
    assert np.allclose(utility.pooled_average(np.zeros(11), data, config, None, None), first, rtol=1e-12)


def test_utility_curve_points_and_references():
    config = Config(rounds=20, warm_start=False)
    # a fixed generator: with a few repeats, fresh noise can by chance land a small-epsilon run
    # near a large-epsilon one (the dashboard's curve draws fresh noise and shows the spread)
    c = utility.curve(config, (0.1, 10.0), repeats=3, rng=np.random.default_rng(0))
    assert [p.epsilon for p in c.points] == [0.1, 10.0]
    assert c.points[0].noise_multiplier > c.points[1].noise_multiplier
    assert c.points[0].median > c.points[1].median  # less privacy budget, worse model
    spread = [p.mse[-1] - p.mse[0] for p in c.points]
    assert spread[0] > 10 * spread[1]  # and far less predictable
    assert abs(c.points[1].median - c.no_dp) < abs(c.points[0].median - c.no_dp)
    assert c.optimum < c.no_dp


# --------------------------------------------------------------------------- masks


def test_masks_cancel_exactly_in_the_full_sum():
    masks, agreement = agree(5, b"run")
    n = (1 << 1024) - 105
    for round_ in (1, 2, 77):
        for index in range(3):
            assert sum(m.mask(round_, 3, n)[index] for m in masks) % n == 0
    assert masks[0].mask(1, 1, n) != masks[0].mask(2, 1, n)  # fresh every round
    assert agreement.pairs == 10 and agreement.public_bytes == 160


def test_two_ends_of_a_pair_derive_the_same_seed_and_no_one_else_does():
    masks, _ = agree(3, b"run")
    others, _ = agree(3, b"run")
    n = 2**127 - 1
    assert masks[0].pair_mask(1, 1, 0, n) == masks[1].pair_mask(0, 1, 0, n)
    assert masks[0].pair_mask(1, 1, 0, n) != others[0].pair_mask(1, 1, 0, n)


def test_mask_seeds_are_never_serialised_or_shown():
    masks, _ = agree(3, b"run")
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            attempt(masks[0])
    assert "seed" in repr(masks[0]) and "hidden" in repr(masks[0])


@pytest.mark.parametrize("encoding", ["packed", "per-value"])
def test_a_masked_ring_gives_bit_identical_results(encoding):
    config = dataclasses.replace(SMALL, encoding=encoding)
    plain = list(run(config, pool=None))
    masked = list(run(dataclasses.replace(config, masks="pairwise"), pool=None))
    shuffled = list(run(dataclasses.replace(config, masks="pairwise", shuffle_ring=True), pool=None))
    for other in (masked, shuffled):
        assert [e.average_gradient for e in of_type(other, FederatedRound)] == [
            e.average_gradient for e in of_type(plain, FederatedRound)
        ]
        assert of_type(other, RunFinished)[0].federated_mse == of_type(plain, RunFinished)[0].federated_mse
    assert of_type(masked, MasksAgreed)[0].pairs == 3
    hops = [e for e in of_type(masked, RingHop) if e.round == 1]
    unmasked = [e for e in of_type(plain, RingHop) if e.round == 1]
    assert hops[0].ciphertexts != unmasked[0].ciphertexts


def test_events_of_the_remedies_round_trip_as_json_lines():
    config = dataclasses.replace(SMALL, warm_start=False, dp_epsilon=1.0, masks="pairwise", shuffle_ring=True)
    events = list(run(config, pool=None))
    for kind in (PrivacyBudget, MasksAgreed, HospitalGradients, FederatedRound):
        e = of_type(events, kind)[0]
        assert from_line(to_line(e)) == e


# --------------------------------------------------------------------------- the lab, re-run


@pytest.fixture(scope="module")
def variants():
    return remedies.measure(Config(key_length=1024, rounds=12))


def test_masks_defeat_server_plus_neighbour_but_not_all_others(variants):
    plain, masked = variants["none"], variants["masks"]
    hit = remedies.attempt(plain, frozenset({2}), True)
    miss = remedies.attempt(masked, frozenset({2}), True)
    assert hit.errors[1] < 1e-9 and hit.errors[3] < 1e-9
    assert miss.errors[1] > 1e6 and miss.errors[3] > 1e6  # the masked prefix reads as noise
    # holding every one of hospital 1's pair seeds (all other hospitals) still succeeds
    assert remedies.attempt(masked, frozenset({2, 3}), True).errors[1] < 1e-9
    assert remedies.attempt(masked, frozenset({2, 3}), False).errors[1] < 1e-9


def test_the_remedy_table_is_measured(variants):
    cells = {name: remedies.threats(v) for name, v in variants.items()}
    assert [c.exact for c in cells["none"]][:3] == [True, True, True]
    assert not cells["masks"][0].exact and cells["masks"][1].exact  # masks: only the neighbour attack fails
    assert not any(c.exact for c in cells["DP"][:3])  # DP: recovered values carry the noise
    assert [c.verdict for c in cells["masks + DP"][:3]] == ["masked", "noisy", "noisy"]
    assert cells["DP"][3].error > cells["none"][3].error  # the XᵀX fit gets worse under noise
    costs = {name: remedies.cost(v) for name, v in variants.items()}
    assert costs["masks"].test_mse == costs["none"].test_mse
    assert costs["masks"].bytes_per_round == costs["none"].bytes_per_round
    assert costs["masks"].setup_bytes == 96 and costs["none"].setup_bytes == 0
    assert costs["DP"].epsilon == 1.0 and costs["none"].epsilon is None


def test_a_shuffled_ring_spreads_exposure_instead_of_removing_it():
    base = Config(key_length=1024, hospitals=5, rounds=40)
    fixed = remedies.run_variant(base, pool=None)
    shuffled = remedies.run_variant(dataclasses.replace(base, shuffle_ring=True), pool=None)
    coalition = frozenset({2})
    assert remedies.exposure_counts(fixed, coalition, True) == {1: 40, 3: 0, 4: 0, 5: 0}
    spread = remedies.exposure_counts(shuffled, coalition, True)
    assert max(spread.values()) < 40 and sum(1 for v in spread.values() if v) >= 3
    orders = set(shuffled.observations.orders)
    assert len(orders) > 1 and orders != {tuple(range(5))}
    assert shuffled_order(42, 3, 5) == shuffled_order(42, 3, 5)  # public: anyone recomputes it
