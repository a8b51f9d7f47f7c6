"""The SecAgg+ row: Flower 1.42's SecAggPlusWorkflow + secaggplus_mod on a real loopback
deployment (slow), and, in process, the arithmetic its error bound rests on (Flower's own
quantise / mask / unmask / dequantise functions) and a hospital's unmask reply."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_combine,
    factor_extract,
    parameters_addition,
    parameters_mod,
    parameters_multiply,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

from fedviz.config import Config
from fedviz.engines.flower.launcher import marked
from fedviz.protections import secagg
from fedviz.protections.base import Task, federate
from fedviz.protections.secagg import (
    MODULUS,
    STAGES,
    SecAggParameters,
    SecAggPlus,
    largest_quantization_range,
)


def flower_mean(xs: list[np.ndarray], p: SecAggParameters, rng: np.random.Generator) -> np.ndarray:
    """What SecAggPlusWorkflow returns for these hospitals' vectors (num_examples 1 each),
    step by step as secaggplus_mod._collect_masked_vectors and the workflow's
    collect_masked_vectors_stage / unmask_stage compute it, with random mask seeds."""
    n = len(xs)
    seeds = [rng.bytes(32) for _ in range(n)]
    pair = {(i, j): rng.bytes(32) for i in range(n) for j in range(i + 1, n)}
    shapes = [(1,), xs[0].shape]
    masked = []
    for i, x in enumerate(xs):
        q_ratio = round(1 / p.max_weight * p.quantization_range)
        params = parameters_multiply([x], q_ratio / p.quantization_range)
        v = factor_combine(q_ratio, quantize(params, p.clipping_range, p.quantization_range))
        v = parameters_addition(v, pseudo_rand_gen(seeds[i], p.modulus, shapes))
        for j in range(n):
            if j != i:
                mask = pseudo_rand_gen(pair[min(i, j), max(i, j)], p.modulus, shapes)
                v = parameters_addition(v, mask) if i > j else parameters_subtraction(v, mask)
        masked.append(parameters_mod(v, p.modulus))
    total = masked[0]
    for v in masked[1:]:
        total = parameters_addition(total, v)
    total = parameters_mod(total, p.modulus)
    for seed in seeds:
        total = parameters_subtraction(total, pseudo_rand_gen(seed, p.modulus, shapes))
    q_total, recon = factor_extract(parameters_mod(total, p.modulus))
    (out,) = dequantize(recon, p.clipping_range, p.quantization_range)
    out += -(n - 1) * p.clipping_range
    out *= p.quantization_range / q_total
    return np.asarray(out)


def test_parameters_follow_flowers_rules() -> None:
    three = SecAggParameters.for_hospitals(3)
    assert (three.num_shares, three.reconstruction_threshold) == (3, 2)
    assert three.quantization_range == 2**30 and three.weight == 2**30
    ten = SecAggParameters.for_hospitals(10)
    assert (ten.num_shares, ten.reconstruction_threshold, ten.quantization_range) == (10, 7, 2**28)
    assert SecAggParameters.for_hospitals(2).reconstruction_threshold == 2
    for n in (2, 3, 4, 5, 10, 17, 78):
        q = largest_quantization_range(n)
        assert n * q < MODULUS <= n * 2 * q or q == 2**30
        p = SecAggParameters.for_hospitals(n)
        # Flower's own checks accept them (an int num_shares must be > 2, threshold < shares)
        from flwr.server.workflow import SecAggPlusWorkflow

        SecAggPlusWorkflow(
            p.num_shares if p.num_shares > 2 else 1.0,
            p.reconstruction_threshold,
            max_weight=p.max_weight,
            clipping_range=p.clipping_range,
            quantization_range=p.quantization_range,
            modulus_range=p.modulus,
            timeout=p.timeout_s,
        )
    with pytest.raises(ValueError, match="wrap"):
        SecAggParameters.for_hospitals(4, quantization_range=2**30)


@pytest.mark.parametrize("n", [3, 10])
def test_flowers_arithmetic_is_the_mean_within_the_bound(n: int) -> None:
    rng = np.random.default_rng(n)
    p = SecAggParameters.for_hospitals(n)
    C = p.clip_at
    for xs in (
        [rng.uniform(-C, C, 11) for _ in range(n)],
        [rng.normal(0, 300, 11) for _ in range(n)],
        [np.full(11, C) for _ in range(n)],  # the largest sum: n * Q, which must not wrap
        [np.full(11, -C) for _ in range(n)],
    ):
        error = np.max(np.abs(flower_mean(xs, p, rng) - np.mean(xs, axis=0)))
        assert error < p.error_bound, (error, p.error_bound)


def test_a_range_too_large_for_the_hospitals_wraps() -> None:
    """Why n * Q < 2^32: with Q = 2^30, four hospitals at the clipping range sum to 2^32
    (a weight of 1/2 keeps the weights' own sum from wrapping too)."""
    p = SecAggParameters(4, 4, 3, 8.0, 2**30, max_weight=2.0)
    xs = [np.full(3, p.clip_at) for _ in range(4)]
    assert np.max(np.abs(flower_mean(xs, p, np.random.default_rng(1)) - p.clip_at)) > 1.0


def test_a_value_beyond_the_range_is_clipped() -> None:
    p = SecAggParameters.for_hospitals(3, clipping_range=100.0)
    xs = [np.array([250.0]), np.array([0.0]), np.array([0.0])]
    assert flower_mean(xs, p, np.random.default_rng(2))[0] == pytest.approx(100.0 / 3, abs=p.error_bound)


def test_a_hospital_hands_over_both_shares_of_a_neighbour_listed_live_and_dropped() -> None:
    """What the row's `readers` says of a server that deviates: secaggplus_mod's unmask step
    answers for every listed node, with no check that the two lists are disjoint."""
    from flwr.client.mod.secure_aggregation.secaggplus_mod import SecAggPlusState, _unmask
    from flwr.common.secure_aggregation.secaggplus_constants import Key

    state = SecAggPlusState()
    state.threshold = 2
    state.rd_seed_share_dict = {1: b"seed-share-of-1", 7: b"seed-share-of-7"}
    state.sk1_share_dict = {1: b"key-share-of-1", 7: b"key-share-of-7"}
    reply = _unmask(state, ConfigRecord({Key.ACTIVE_NODE_ID_LIST: [1, 7], Key.DEAD_NODE_ID_LIST: [7]}))
    pairs = list(zip(reply[Key.NODE_ID_LIST], reply[Key.SHARE_LIST]))  # type: ignore
    assert (7, b"seed-share-of-7") in pairs and (7, b"key-share-of-7") in pairs


def test_a_hospital_cannot_answer_for_one_that_dropped_before_sharing() -> None:
    """Why a hospital silent at setup or share keys halts the aggregation (the row's
    `dropout`): the workflow lists it as dropped in the unmask stage, and a live hospital
    holds no share of its key."""
    from flwr.client.mod.secure_aggregation.secaggplus_mod import SecAggPlusState, _unmask
    from flwr.common.secure_aggregation.secaggplus_constants import Key

    state = SecAggPlusState()
    state.threshold = 2
    state.rd_seed_share_dict = {1: b"seed-share-of-1", 2: b"seed-share-of-2"}
    state.sk1_share_dict = {1: b"key-share-of-1", 2: b"key-share-of-2"}
    with pytest.raises(KeyError):
        _unmask(state, ConfigRecord({Key.ACTIVE_NODE_ID_LIST: [1, 2], Key.DEAD_NODE_ID_LIST: [3]}))


def test_parameters_that_cannot_work_give_an_error_row() -> None:
    task = Task.of(Config(hospitals=4, key_length=1024, rounds=1))
    row = SecAggPlus(quantization_range=2**30).measure(task)
    assert row.error is not None and "wrap" in row.error and not row.scores


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_secagg_plus_on_a_loopback_deployment() -> None:
    task = Task.of(Config(hospitals=3, key_length=1024, rounds=2))
    p = SecAggParameters.for_hospitals(3)
    record = secagg.run(task, p)
    assert record.marker and marked(record.marker) == []

    # each round one aggregation: Flower's four exchanges, every hospital in it
    assert [r["round"] for r in record.rounds] == [1, 2]
    for r in record.rounds:
        assert [x["stage"] for x in r["exchanges"]] == list(STAGES)
        assert all(x["replies"] == 3 and not x["errors"] for x in r["exchanges"])
        assert r["contributors"] == 3

    # the averages are the exact mean within the quantisation bound, at the hospitals' own
    # gradients (each hospital's digest of the gradient it computed on its node matches)
    descent = federate(task, lambda r, _g: record.averages[r - 1])
    assert max(descent.errors) < p.error_bound
    assert secagg.replay(task, record).mismatches == 0
    assert len({(n["round"], n["hospital"]) for n in record.notes if "gradient" in n}) == 6

    plain = federate(task, lambda _r, g: np.mean(g, axis=0))
    row = SecAggPlus().row(task, record)
    assert row.error is None and row.protection == "SecAgg+ (Flower)"
    assert "short waits" in row.engine and "SecAggPlusWorkflow" in row.how
    np.testing.assert_allclose(row.scores, plain.scores, rtol=1e-6)
    assert row.scores == descent.scores
    assert row.max_error < p.error_bound
    assert row.bytes_per_hospital > 0 and row.extra["bytes received per hospital"] > 0
    assert row.round_s > 0 and row.exchange_s is not None and 0 < row.exchange_s <= row.round_s
    assert row.crypto_s > 0 and row.setup_s > 0
    assert row.extra["replay mismatches"] == 0 and row.extra["dropouts"] == 0
    assert row.trust is not None and "only the sum" in row.trust.readers
    assert row.trust.dropout.startswith("yes after the key-share stage")
