"""The learning-rate advice: the suggestion passes the engine's own preflight, the next
two-digit value fails it, and the refusal says both in plain words."""

from dataclasses import replace

import pytest

from fedviz import advice
from fedviz.advice import (
    format_rate,
    grid_index_at_most,
    grid_value,
    largest_stable_learning_rate,
    refusal,
)
from fedviz.config import Config
from fedviz.engines.inprocess import preflight


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, 0.016),  # 2048 bits, 3 hospitals, 50 rounds: the packed sum stays below both primes
        ({"key_length": 1024}, 0.016),
        ({"key_length": 4096}, 0.024),  # twice the slot width, a wider range
        ({"gradient": "mean"}, 2.2),
        ({"hospitals": 10}, 0.055),
        ({"warm_start": False, "key_length": 1024}, None),
        ({"encoding": "per-value"}, 6.1),
    ],
)
def test_the_suggestion_passes_preflight_and_the_next_step_fails(settings, expected):
    config = Config(**settings)
    best = largest_stable_learning_rate(config)
    assert preflight(replace(config, learning_rate=best)) is None
    above = grid_value(grid_index_at_most(best) + 1)
    assert above > best and f"{above:.2g}" == format_rate(above)
    assert preflight(replace(config, learning_rate=above)) is not None
    assert preflight(replace(config, learning_rate=best * 1.1)) is not None
    if expected is not None:
        assert best == expected
    assert float(f"{best:.2g}") == best  # two significant digits


def test_the_suggestion_does_not_depend_on_the_refused_rate():
    assert {
        largest_stable_learning_rate(Config(key_length=1024, learning_rate=lr)) for lr in (0.001, 5, 1e6)
    } == {0.016}


def test_cost_is_one_preflight_and_a_bounded_search(monkeypatch):
    calls = {"preflight": 0, "model": 0}
    real_preflight, real_model = advice.preflight, advice._Model.first_failure

    def counting_preflight(config):
        calls["preflight"] += 1
        return real_preflight(config)

    def counting_model(self, eta):
        calls["model"] += 1
        return real_model(self, eta)

    monkeypatch.setattr(advice, "preflight", counting_preflight)
    monkeypatch.setattr(advice._Model, "first_failure", counting_model)
    advice._largest.cache_clear()
    assert largest_stable_learning_rate(Config(seed=7)) > 0
    assert calls["preflight"] == 1 and calls["model"] <= 12


def test_a_disagreeing_model_falls_back_to_preflight(monkeypatch):
    """If the vectorised copy ever said yes where preflight says no, preflight wins."""
    monkeypatch.setattr(
        advice._Model, "first_failure", lambda self, eta: None if eta < 0.03 else ("federated", 1)
    )
    advice._largest.cache_clear()
    config = Config(seed=3)
    best = largest_stable_learning_rate(config)
    advice._largest.cache_clear()
    assert 0 < best < 0.03 and preflight(replace(config, learning_rate=best)) is None


def test_refusal_federated_phase_in_plain_words():
    config = Config(key_length=1024, learning_rate=0.02)
    problem = preflight(config)
    assert problem is not None and problem.phase == "federated"
    sentence = refusal(config, problem)
    assert sentence == (
        f"Learning rate 0.02 makes training diverge (federated round {problem.round}: the gradients "
        "grow beyond what the encryption can hold). Use at most 0.016."
    )
    assert "slot" not in sentence and "±" not in sentence


def test_refusal_local_phase_in_plain_words():
    config = Config(key_length=1024, learning_rate=1e6)
    problem = preflight(config)
    assert problem is not None and problem.phase == "local"
    assert refusal(config, problem) == (
        "Learning rate 1e6 makes training diverge (local round 38: the weights grow beyond the "
        "largest number a computer can store). Use at most 0.016."
    )


def test_refusal_of_half_at_2048_bits():
    config = Config(learning_rate=0.5)
    problem = preflight(config)
    assert problem is not None
    sentence = refusal(config, problem)
    assert sentence.startswith("Learning rate 0.5 makes training diverge (federated round 1:")
    assert sentence.endswith("Use at most 0.016.")


def test_grid_and_formatting():
    assert [grid_value(i) for i in (-91, -90, -1, 0, 1, 89, 90)] == [0.099, 0.1, 0.99, 1.0, 1.1, 9.9, 10.0]
    assert (
        grid_index_at_most(0.0246) == grid_index_at_most(0.024)
        and grid_value(grid_index_at_most(0.0246)) == 0.024
    )
    assert grid_value(grid_index_at_most(0.1)) == 0.1
    assert [format_rate(x) for x in (0.013, 3.3, 1e6, 1.5e-7, 0.5, 6.3e31)] == [
        "0.013",
        "3.3",
        "1e6",
        "1.5e-7",
        "0.5",
        "6.3e31",
    ]
