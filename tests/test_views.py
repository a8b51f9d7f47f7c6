"""Consumers the pages read: the ring transcript (budget, phe JSON) and the chart figures."""

import json
import math
from itertools import pairwise

import numpy as np
from conftest import of_type
from phe.paillier import EncryptedNumber, PaillierPublicKey

from fedviz.config import Config
from fedviz.crypto.encoding import make_codec
from fedviz.engines.inprocess import run
from fedviz.events import HospitalGradients, RingHop
from fedviz.protocol import RingMessage, Server
from fedviz.report.charts import empty_figure, mse_figure, y_range_for
from fedviz.report.transcript import Transcript


def test_transcript_keeps_first_rounds_and_the_last_within_budget(events):
    evs = events(rounds=20)
    per_round = sum(h.nbytes for h in of_type(evs, RingHop) if h.round == 1)
    transcript = Transcript(budget_bytes=5 * per_round)
    for e in evs:
        transcript.add(e)
    assert sorted(transcript.rounds) == [1, 2, 3, 4, 5]
    assert transcript.dropped == 15 and transcript.last_round == 20
    assert transcript.hops(20) is not None and transcript.hops(12) is None
    assert [h.hop for h in transcript.hops(3)] == [1, 2, 3]


def test_round_json_is_phes_serialisation_and_decrypts():
    server = Server(1024, "djn")
    evs = tuple(run(Config(key_length=1024, rounds=2), pool=None, server=server))
    transcript = Transcript()
    for e in evs:
        transcript.add(e)
    data = json.loads(transcript.round_json(2))
    n = int(data["public_key"]["n"])
    assert n == server.public.n and int(data["public_key"]["g"]) == n + 1
    public = PaillierPublicKey(n)
    codec = make_codec("packed", n, 11, 3)
    truth = of_type(evs, HospitalGradients)[1].gradients
    for hop in data["hops"]:
        assert all(isinstance(v, str) and isinstance(e, int) for v, e in hop["values"])
        cts = tuple(EncryptedNumber(public, int(v), e) for v, e in hop["values"])
        plain = server.open(RingMessage(hop["sender"], hop["receiver"], cts, hop["sum_of_gradients"]))
        got = codec.decode_sum(plain, hop["sum_of_gradients"])
        np.testing.assert_allclose(got, np.sum(truth[: hop["sum_of_gradients"]], axis=0), rtol=0, atol=1e-9)
    assert "private" not in transcript.round_json(2).lower()


def test_mse_figure_has_a_line_per_hospital_and_the_references():
    fig = mse_figure("t", ["Hospital 1", "Hospital 2"], [(5.0, 6.0), (4.0, 5.0)], 50, (7.0, 6.5), 3.0)
    names = [trace.name for trace in fig.data]
    assert names == ["Hospital 1", "Hospital 2", "pooled data, plaintext GD", "least-squares optimum"]
    assert list(fig.data[1].y) == [6.0, 5.0] and list(fig.layout.xaxis.range) == [1, 50]
    assert fig.layout.uirevision == "t"


def test_y_range_ignores_non_finite_values_and_empty_figure_says_so():
    low, high = y_range_for([1.0, 2.0, math.inf], [math.nan, 3.0])
    assert low < 1.0 < 3.0 <= high < 10
    fig = empty_figure("t", 20)
    assert fig.layout.annotations[0].text == "no run yet" and list(fig.layout.xaxis.range) == [1, 20]


def test_a_live_federated_curve_only_ever_widens_the_axis():
    local = [(5000.0, 4800.0), (4500.0, 4400.0)]
    federated_rounds = [(4300.0, 4200.0), (4100.0, 4000.0), (3900.0, 3800.0)]
    ranges = [y_range_for(*local, (4600.0,), growing=federated_rounds[:k]) for k in range(1, 4)]
    for (low_a, high_a), (low_b, high_b) in pairwise(ranges):
        assert low_b <= low_a and high_b >= high_a
    assert ranges[-1][0] < 3800.0 < 5000.0 < ranges[-1][1]
