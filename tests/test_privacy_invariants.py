"""Who holds what: the private key stays in the Server, messages are ciphertexts only,
patient rows stay in their Hospital, the pool sees only public values."""

import copy
import gc
import pickle
import types
from concurrent.futures import Future

import numpy as np
import pytest
from conftest import of_type
from phe.paillier import EncryptedNumber, PaillierPrivateKey

from fedviz.config import Config
from fedviz.crypto import obfuscators
from fedviz.crypto.encoding import PHE_EXPONENT, make_codec
from fedviz.crypto.keys import ServerKeys
from fedviz.crypto.pool import Prefetcher
from fedviz.data import split
from fedviz.engines.inprocess import run
from fedviz.events import HospitalGradients, RingHop
from fedviz.protocol import Hospital, Ring, RingMessage, Server, hospitals_for

SKIP = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.MethodType,
)


def reachable(root: object) -> list[object]:
    """Every object reachable from `root` through references (modules, classes and functions,
    which lead to global state rather than to what the object holds, are not followed)."""
    seen, stack, out = {id(root)}, [root], []
    while stack:
        obj = stack.pop()
        out.append(obj)
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and not isinstance(ref, SKIP):
                seen.add(id(ref))
                stack.append(ref)
    return out


def ring_after_a_round() -> tuple[Ring, list[Hospital], Server]:
    config = Config(key_length=1024)
    s = split(3, 42)
    hospitals = hospitals_for(config, s.hospital_X, s.hospital_y)
    server = Server(1024, "djn")
    ring = Ring(hospitals, server, make_codec("packed", server.public.n, 11, 3))
    draws = [obfuscators.draw(server.public.n, server.public.hs, 160, 1) for _ in hospitals]
    ring.run_round(draws, 0.01)
    return ring, hospitals, server


def test_no_hospital_reaches_the_private_key():
    ring, hospitals, server = ring_after_a_round()
    server_side = reachable(server)
    assert any(isinstance(o, PaillierPrivateKey) for o in server_side)  # the walker can find it
    for hospital in hospitals:
        found = reachable(hospital)
        assert not any(isinstance(o, (PaillierPrivateKey, ServerKeys, Server)) for o in found)
        assert any(o is server.public.public_key for o in found)  # it does hold the public key


def test_ring_messages_carry_only_ciphertexts():
    assert set(RingMessage.__dataclass_fields__) == {"sender", "receiver", "ciphertexts", "contributions"}
    ring, hospitals, server = ring_after_a_round()
    own = hospitals[0].encrypt(
        hospitals[0].gradient(), obfuscators.draw(server.public.n, server.public.hs, 160, 1)
    )
    message = hospitals[0].forward(None, own, "Hospital 2")
    assert all(isinstance(c, EncryptedNumber) for c in message.ciphertexts)
    for c in message.ciphertexts:
        reached = reachable(c)
        assert not any(isinstance(o, (np.ndarray, PaillierPrivateKey)) for o in reached)


def test_patient_rows_never_leave_their_hospital(events):
    evs = events()
    s = split(3, 42)
    rows = {tuple(map(float, r)) for X in s.hospital_X for r in X}
    vectors = 0
    for event in evs:
        for obj in reachable(event):
            assert not isinstance(obj, np.ndarray)  # events hold plain values, never arrays of rows
            if isinstance(obj, tuple) and len(obj) == 11:
                vectors += 1
                assert obj not in rows
    assert vectors >= 100  # gradients and averages were checked


def test_the_key_refuses_to_be_serialised_or_copied():
    server = Server(1024, "standard")
    for obj in (server, server._keys):
        with pytest.raises(TypeError, match="never serialised"):
            pickle.dumps(obj)
    for copier in (copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="never copied"):
            copier(server._keys)
    assert "hidden" in repr(server._keys) and str(server._keys.public.n) not in repr(server._keys)


def test_the_pool_receives_only_public_values():
    server = Server(1024, "djn")
    private = server._keys._ServerKeys__private_key
    secret = {int(private.p), int(private.q), int(private.p * private.q - private.p - private.q + 1)}

    class Recorder:
        def __init__(self):
            self.args = []

        def submit(self, fn, *args):
            self.args.append(args)
            f = Future()
            f.set_result(fn(*args))
            return f

    recorder = Recorder()
    prefetcher = Prefetcher(server.public, 3, 1, 2, recorder)  # type: ignore[arg-type]
    prefetcher.next_round()
    assert recorder.args
    for args in recorder.args:
        pickle.dumps(args)
        assert args[:2] == (server.public.n, server.public.hs)
        assert not secret & {a for a in args if isinstance(a, int)}


def test_per_value_ciphertexts_all_carry_one_agreed_exponent(events):
    hops = of_type(events(encoding="per-value", rounds=5), RingHop)
    assert {c.exponent for h in hops for c in h.ciphertexts} == {PHE_EXPONENT}
    assert all(len(h.ciphertexts) == 11 for h in hops)


def test_ciphertexts_are_fresh_every_hop_and_round(events):
    values = [c.value for h in of_type(events(), RingHop) for c in h.ciphertexts]
    assert len(set(values)) == len(values)


def test_parallel_and_inline_runs_send_the_same_plaintexts():
    """Same server, pool vs inline obfuscators: different ciphertexts, identical plaintexts
    on every hop, each the encoded sum of the senders' gradients so far."""
    server = Server(1024, "djn")
    config = Config(key_length=1024, rounds=5)
    codec = make_codec("packed", server.public.n, 11, 3)

    def plaintexts(pooled: bool):
        evs = tuple(run(config, pool="shared" if pooled else None, server=server))
        opened = []
        for hop in of_type(evs, RingHop):
            msg = RingMessage(
                hop.sender,
                hop.receiver,
                tuple(
                    EncryptedNumber(server.public.public_key, c.value, c.exponent) for c in hop.ciphertexts
                ),
                hop.contributions,
            )
            opened.append(server.open(msg))
        return evs, opened

    pooled_events, pooled = plaintexts(True)
    inline_events, inline = plaintexts(False)
    assert pooled == inline and len(pooled) == 15
    assert [c.value for h in of_type(pooled_events, RingHop) for c in h.ciphertexts] != [
        c.value for h in of_type(inline_events, RingHop) for c in h.ciphertexts
    ]
    truths = of_type(pooled_events, HospitalGradients)
    for i, hop in enumerate(of_type(pooled_events, RingHop)):
        grads = truths[hop.round - 1].gradients[: hop.contributions]
        expected = [sum(col) % server.public.n for col in zip(*(codec.encode(np.array(g)) for g in grads))]
        assert pooled[i] == expected
