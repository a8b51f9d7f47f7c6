"""fedviz against the protections people pick instead (issue 20): every row measured on the
same task, the verdict computed from the numbers, the CLI's contract."""

from __future__ import annotations

import io
import json
import math

import pytest

from fedviz.cli import compare_main
from fedviz.config import Config
from fedviz.protections import compare
from fedviz.protections.base import Measured, Task, Trust, federate
from fedviz.protections.rules import ring_readers

SMALL = Config(key_length=1024, rounds=4)


@pytest.fixture(scope="module")
def rows() -> dict[str, Measured]:
    task = Task.of(SMALL)
    return {
        name: compare.measure_one(name, task) for name in ("none", "phe", "fedviz", "star", "masks", "dp")
    }


def test_every_exact_protection_trains_the_same_model(rows: dict[str, Measured]) -> None:
    plain = rows["none"]
    assert plain.error is None and plain.max_error == 0
    for name in ("phe", "fedviz", "star", "masks"):
        row = rows[name]
        assert row.error is None, row.error
        assert not row.changed_model and row.max_error < 1e-9, (name, row.max_error)
        assert row.scores == pytest.approx(plain.scores, rel=1e-9), name
        assert len(row.aggregate_errors) == SMALL.rounds
    assert rows["dp"].changed_model and rows["dp"].max_error > 1.0  # deliberate noise


def test_the_figures_are_the_runs_own(rows: dict[str, Measured]) -> None:
    assert rows["phe"].bytes_per_hospital == 11 * 2 * 1024 // 8  # one 2048-bit ciphertext per value
    assert rows["fedviz"].bytes_per_hospital == 2 * 1024 // 8  # the 11 values packed in one
    for row in rows.values():
        assert row.round_s > 0 and row.crypto_s >= 0 and row.trust is not None
    assert rows["phe"].crypto_s > rows["fedviz"].crypto_s  # per-value phe against packed DJN
    assert dict(rows["fedviz"].parameters)["modulus n"].startswith("1024 bits")


def test_who_reads_one_hospital_follows_the_coalition_rules() -> None:
    assert (
        ring_readers(2)
        == "the key holder with hospital 2 (it decrypts what hospital 1 passed on: its gradient alone); the other hospital (n × the broadcast average, minus their own gradients)"
    )
    three = ring_readers(3)
    assert "the key holder with hospital 2" in three and "the other 2 hospitals together" in three
    assert (
        ring_readers(3, masked=True)
        == "the other 2 hospitals together (n × the broadcast average, minus their own gradients)"
    )


def row(name: str, seconds: float, error: float = 0.0, dropout: str = "no") -> Measured:
    return Measured(
        name, "", "in-process", 2, (1.0, 1.0), (error, error), round_s=seconds, trust=Trust("", "", dropout)
    )


def test_the_verdict_is_computed_from_the_numbers() -> None:
    fast_fedviz = [
        row("fedviz ring", 0.002),
        row("CKKS (TenSEAL)", 0.010, 1e-6),
        row("SecAgg+ (Flower)", 3.0, 1e-4, "yes: while 2 answer"),
    ]
    said = compare.verdict(fast_fedviz)
    assert said[0].startswith(
        "Fastest per round here: fedviz ring (2.0 ms), then CKKS (TenSEAL) (10.0 ms, 5.0× slower)"
    )
    assert any("CKKS (TenSEAL) changed the aggregate by up to 1e-06" in s for s in said)
    assert any(s.startswith("Only SecAgg+ (Flower) can keep a round going") for s in said)
    slow_fedviz = [row("fedviz ring", 0.5), row("CKKS (TenSEAL)", 0.010, 1e-6)]
    assert compare.verdict(slow_fedviz)[0].startswith("Fastest per round here: CKKS (TenSEAL)")


def test_federate_is_the_engines_descent_in_plaintext() -> None:
    from fedviz.engines.inprocess import run
    from fedviz.events import RunFinished

    task = Task.of(SMALL)
    descent = federate(task, lambda _r, g: sum(g) / len(g))
    engine = next(e for e in run(SMALL, pool=None) if isinstance(e, RunFinished))
    assert descent.scores == pytest.approx(engine.federated_mse, rel=1e-9)


def test_the_cli_lists_one_row_per_protection_with_its_figures() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = compare_main(
        ["--key-length", "1024", "--rounds", "3", "--protections", "none,fedviz,phe", "--json"], out, err
    )
    assert code == 0, err.getvalue()
    body = json.loads(out.getvalue().splitlines()[-1])
    assert [p["protection"] for p in body["protections"]] == [
        "none",
        "fedviz ring",
        "phe per value (the post)",
    ]
    for p in body["protections"]:
        for key in (
            "scores",
            "aggregate_errors",
            "crypto_s",
            "round_s",
            "bytes_per_hospital",
            "setup_s",
            "trust",
            "parameters",
            "caveats",
        ):
            assert key in p, key
        assert len(p["scores"]) == 3 and math.isfinite(p["round_s"])
    assert body["verdict"] and body["verdict"][0].startswith("Fastest per round here: fedviz ring")


def test_an_unknown_protection_is_one_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert compare_main(["--protections", "fedviz,homomorphic-magic"], out, err) == 2
    assert err.getvalue().startswith(
        "error: protections = 'fedviz,homomorphic-magic' is not allowed: a comma-separated list of none"
    )
    assert len(err.getvalue().splitlines()) == 1 and out.getvalue() == ""
