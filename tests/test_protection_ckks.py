"""The CKKS (TenSEAL) row: FLARE's roles and parameters, the same model as the exact mean to
CKKS's approximation, the figures measured from the real ciphertexts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from fedviz.config import Config
from fedviz.protections import ckks
from fedviz.protections.base import Measured, Task, federate

ts = pytest.importorskip("tenseal")

SMALL = Config(key_length=1024, rounds=5)


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.of(SMALL)


@pytest.fixture(scope="module")
def row(task: Task) -> Measured:
    return ckks.Ckks().measure(task)


def test_the_model_is_the_exact_means_to_the_derived_bound(task: Task, row: Measured) -> None:
    assert row.error is None, row.error
    assert row.protection == "CKKS (TenSEAL)" and row.engine == "in-process"
    plain = federate(task, lambda _r, gradients: np.mean(gradients, axis=0))
    assert row.scores == pytest.approx(plain.scores, rel=1e-3)
    assert len(row.aggregate_errors) == SMALL.rounds
    # N (21 + 1) / 2^40: SEAL's noise |e| <= 21 per coefficient, 1/2 of encoding rounding, 1/2 of float
    assert ckks.ERROR_BOUND == 8192 * 22 / 2**40 < 1.64e-7
    assert all(0 < e < ckks.ERROR_BOUND for e in row.aggregate_errors), row.aggregate_errors


def test_the_figures_are_the_ciphertexts_own(task: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    serialize = ts.CKKSVector.serialize

    def recorded(self: object) -> bytes:
        out: bytes = serialize(self)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(ts.CKKSVector, "serialize", recorded)
    row = ckks.Ckks().measure(dataclasses.replace(task, config=dataclasses.replace(SMALL, rounds=1)))
    assert row.error is None, row.error
    # per round: the 3 hospitals' ciphertexts, then the aggregator's encrypted sum
    assert len(sizes) == 4 and row.bytes_per_hospital == sizes[0]
    assert row.extra["broadcast_bytes"] == sizes[3]
    assert 200_000 < row.bytes_per_hospital < 300_000  # 2 polynomials x 2 primes x 8192 x 8 bytes, compressed
    kits = ckks.provision()  # a kit's size varies by a few bytes (compressed random key)
    assert row.setup_bytes == pytest.approx(len(kits.hospital), rel=0.05)
    assert row.extra["aggregator_kit_bytes"] == len(kits.aggregator)
    assert row.crypto_s > 0 and row.round_s > row.crypto_s and row.setup_s > 0
    assert row.how.startswith(
        f"TenSEAL {ts.__version__}, CKKS, poly_modulus_degree 8192, coeff_mod_bit_sizes [60, 40, 40], "
        "global scale 2^40"
    )


def test_the_parameters_name_the_security_level(row: Measured) -> None:
    parameters = dict(row.parameters)
    assert parameters["security"].startswith("192-bit classical")
    assert parameters["coefficient modulus"].startswith("[60, 40, 40] bits: 140 in all, 100 carry the data")
    assert parameters["slots"].startswith("4096 (11 used")
    assert ckks.security_level(140) == 192 and ckks.security_level(200) == 128
    assert ckks.security_level(118) == 256 and ckks.security_level(219) == 0
    assert any("192-bit classical" in c for c in row.caveats)
    assert any("Li and Micciancio" in c for c in row.caveats)


def test_the_aggregator_holds_no_key() -> None:
    kits = ckks.provision()
    assert kits.hospital_context.is_private() and not kits.aggregator_context.is_private()
    assert len(kits.aggregator) < 200 < 100_000 < len(kits.hospital)
    sent = ts.ckks_vector(kits.hospital_context, [1.5, -2.0]).serialize()
    at_aggregator = ts.ckks_vector_from(kits.aggregator_context, sent)
    with pytest.raises(ValueError):
        at_aggregator.decrypt()
    with pytest.raises(ValueError):
        ts.ckks_vector(kits.aggregator_context, [1.0])
    back = ts.ckks_vector_from(kits.hospital_context, (at_aggregator + at_aggregator).serialize())
    assert back.decrypt() == pytest.approx([3.0, -4.0], abs=1e-6)


def test_the_trust_follows_the_rules(row: Measured) -> None:
    assert row.trust is not None
    assert "every hospital" in row.trust.decryptors and "not the aggregator" in row.trust.decryptors
    assert row.trust.readers.startswith("the aggregator with any one hospital")
    assert "the other 2 hospitals together" in row.trust.readers
    assert row.trust.readers.endswith("The aggregator alone reads nothing (it has no key)")
    assert "the other hospital (" in ckks.readers(2)
    assert "the other 77 hospitals together" in ckks.readers(78)
    assert not row.trust.dropout.startswith("yes")  # this row's sum waits for everyone


def test_seventy_eight_hospitals_fit() -> None:
    task = Task.of(Config(key_length=1024, rounds=1, hospitals=78))
    row = ckks.Ckks().measure(task)
    assert row.error is None, row.error
    assert 0 < row.max_error < ckks.ERROR_BOUND
    assert row.trust is not None and "the other 77 hospitals together" in row.trust.readers


def test_a_value_too_large_is_an_error_not_a_garbage_sum(task: Task) -> None:
    huge = dataclasses.replace(task, start=tuple(w * 1e20 for w in task.start))
    row = ckks.Ckks().measure(huge)
    assert row.error is not None and "beyond what CKKS carries" in row.error
    assert row.scores == () and row.aggregate_errors == () and row.bytes_per_hospital == 0
    kits = ckks.provision()
    assert kits.limit(78) == pytest.approx(2.0**57 / 78)


def test_tenseal_is_imported_only_when_the_row_runs() -> None:
    code = (
        "import sys, fedviz.protections.ckks, fedviz.protections.compare; "
        "assert 'tenseal' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
