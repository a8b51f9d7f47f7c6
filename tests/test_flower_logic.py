"""The Flower engine's protocol logic without the network: the relay and the nodes' handlers
through `DirectTransport` (each node its own state), sealing, signatures and the key holder's
refusals. The same code runs inside Flower's ServerApp and ClientApp."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from conftest import of_type

from fedviz.config import Config
from fedviz.crypto.sealing import Card, HopKey, Identity, Roster, SealError, header, seal, unseal
from fedviz.engines.flower.content import attestations_from, attestations_text
from fedviz.engines.flower.direct import DirectTransport
from fedviz.engines.flower.relay import FlowerRunError, Relay
from fedviz.engines.inprocess import run
from fedviz.errors import TrainingDiverged
from fedviz.events import (
    Event,
    Exchange,
    FederatedRound,
    KeysGenerated,
    LocalRound,
    MasksAgreed,
    PartiesStarted,
    PrivacyBudget,
    RingHop,
    RunFinished,
)

SMALL = Config(key_length=1024, rounds=4)


def relay_run(config: Config, topology: str = "ring", **kwargs: Any) -> tuple[list[Event], DirectTransport]:
    transport = DirectTransport(config, **kwargs)
    seen: list[Event] = []
    try:
        Relay(transport, config, topology, seen.append).run()  # type: ignore[arg-type]
    finally:
        transport.close()
    return seen, transport


@pytest.mark.parametrize("topology", ["ring", "star"])
def test_same_numbers_as_in_process(topology):
    ours, _ = relay_run(SMALL, topology)
    theirs = list(run(SMALL, pool=None))
    assert of_type(ours, LocalRound) == of_type(theirs, LocalRound)
    for a, b in zip(of_type(ours, FederatedRound), of_type(theirs, FederatedRound), strict=True):
        assert a.round == b.round and a.mse == b.mse and a.average_gradient == b.average_gradient
    assert of_type(ours, RunFinished)[0].federated_mse == of_type(theirs, RunFinished)[0].federated_mse


def test_the_post_numbers_over_the_ring_of_parties():
    ours, _ = relay_run(Config(key_length=1024))
    final = of_type(ours, RunFinished)[0]
    assert final.local_mse == pytest.approx((3933.78, 4176.48, 3795.95), abs=0.02)
    assert final.federated_mse == pytest.approx((3695.77, 3855.14, 3598.63), abs=0.02)


def test_ring_exchanges_are_n_plus_one_per_round_and_star_two():
    ring, _ = relay_run(SMALL, "ring")
    star, _ = relay_run(SMALL, "star")
    per_round = lambda seen: {e.step.split()[0] for e in of_type(seen, Exchange) if e.round == 2}  # noqa: E731
    assert len([e for e in of_type(ring, Exchange) if e.round == 2]) == SMALL.hospitals + 1
    assert per_round(ring) == {"hop", "decrypt"} and per_round(star) == {"part", "decrypt"}
    assert all(e.sealed for e in of_type(ring, Exchange) if e.step.startswith("hop"))
    assert not any(e.sealed for e in of_type(star, Exchange))


def test_parties_and_keys_are_announced():
    seen, transport = relay_run(SMALL)
    (parties,) = of_type(seen, PartiesStarted)
    assert [p.role for p in parties.parties] == ["relay", "hospital", "hospital", "hospital", "key holder"]
    assert {p.node_id for p in parties.parties if p.role != "relay"} == set(transport.setups)
    assert of_type(seen, KeysGenerated)[0].bits == 1024


def test_the_relay_sees_neither_private_key_nor_plaintext_hops():
    seen, transport = relay_run(SMALL)
    holder = next(n for n, s in transport.setups.items() if s.role == "key holder")
    p, q = (int.from_bytes(transport.states[holder][k], "big") for k in ("p", "q"))
    secrets = {p.to_bytes((p.bit_length() + 7) // 8, "big"), q.to_bytes((q.bit_length() + 7) // 8, "big")}
    carried = [v for _, _, c in transport.sent for v in c.values()] + [
        v for reply in transport.replies for v in reply.values()
    ]
    blobs = [v for v in carried if isinstance(v, bytes)] + [
        b for v in carried if isinstance(v, list) for b in v if isinstance(b, bytes)
    ]
    assert blobs and not any(s in blob for s in secrets for blob in blobs)
    assert not any(str(p) in str(v) or str(q) in str(v) for v in carried)
    # what the relay yields for a ring hop has no ciphertext: it only saw sealed bytes
    assert all(hop.ciphertexts == () for hop in of_type(seen, RingHop))
    # the hospitals' own gradients reach only the observer's notes, never a message
    gradients = [n["values"] for n in transport.notes if n["kind"] == "gradient"]
    assert gradients and not any(str(g[0]) in str(carried) for g in gradients)


def test_a_tampered_hop_is_refused_and_named():
    def flip(party: str, action: str, content: dict) -> dict:
        if party == "Hospital 2" and action == "hop" and content["round"] == 2:
            sealed = bytearray(content["incoming"])
            sealed[-1] ^= 1
            content["incoming"] = bytes(sealed)
        return content

    with pytest.raises(
        FlowerRunError,
        match="Hospital 2 refused: the hop from Hospital 1 to Hospital 2 failed authentication",
    ):
        relay_run(SMALL, tamper=flip)


def test_a_prefix_is_never_decrypted():
    """A relay that hands the key holder hospital 1's lone hop (as if it were the sum) is refused."""
    first: dict[str, Any] = {}

    def swap(party: str, action: str, content: dict) -> dict:
        if action == "hop" and party == "Hospital 2" and content["round"] == 1:
            first["sealed"] = content["incoming"]
        if action == "decrypt":
            content["sealed"] = first["sealed"]
        return content

    with pytest.raises(FlowerRunError, match="Server refused"):
        relay_run(SMALL, tamper=swap)


def test_an_aggregate_missing_a_hospital_is_refused():
    def drop(party: str, action: str, content: dict) -> dict:
        if action == "decrypt_star":
            statements = attestations_from(content["attestations"])[:-1]
            content["attestations"] = attestations_text(statements)
        return content

    with pytest.raises(FlowerRunError, match="lacks Hospital 3's contribution"):
        relay_run(SMALL, "star", tamper=drop)


def test_a_star_part_not_signed_by_its_hospital_is_refused():
    def forge(party: str, action: str, content: dict) -> dict:
        if action == "decrypt_star":
            content["parts"] = [content["parts"][1], *content["parts"][1:]]
        return content

    with pytest.raises(FlowerRunError, match="Hospital 1's is not what it signed"):
        relay_run(SMALL, "star", tamper=forge)


def test_a_silent_party_is_named():
    transport = DirectTransport(SMALL)
    transport.silent.add("Hospital 2")
    with pytest.raises(FlowerRunError, match="Hospital 2 did not answer"):
        Relay(transport, SMALL, "ring", lambda e: None).run()
    transport.close()


def test_divergence_is_reported_like_in_process():
    config = dataclasses.replace(SMALL, learning_rate=1.0, rounds=30)
    with pytest.raises(TrainingDiverged) as ours:
        relay_run(config)
    with pytest.raises(TrainingDiverged) as theirs:
        list(run(config, pool=None))
    assert (ours.value.phase, ours.value.round, ours.value.cause) == (
        theirs.value.phase,
        theirs.value.round,
        theirs.value.cause,
    )


# ---- sealing and signatures ----


def _pair() -> tuple[Identity, Identity, Roster]:
    a, b = Identity("A"), Identity("B")
    return a, b, Roster({"A": a.public, "B": b.public})


def test_seal_round_trip_and_binding_to_its_header():
    a, b, roster = _pair()
    ka, kb = HopKey(), HopKey()
    card_a, card_b = Card.make(a, "hospital", "run", ka), Card.make(b, "hospital", "run", kb)
    head = header("run", 3, "hop 1", "A", "B")
    sealed = seal(ka, roster.check(card_b, "run"), head, b"payload")
    assert b"payload" not in sealed and len(sealed) == 12 + 7 + 16
    assert unseal(kb, roster.check(card_a, "run"), head, sealed, "B") == b"payload"
    for other in (
        header("run", 4, "hop 1", "A", "B"),
        header("run", 3, "hop 1", "A", "C"),
        header("run2", 3, "hop 1", "A", "B"),
    ):
        with pytest.raises(SealError, match="from A to B failed authentication"):
            unseal(kb, card_a, other, sealed, "B")


def test_a_swapped_hop_key_is_caught_by_the_roster():
    a, b, roster = _pair()
    mallory = Identity("A")  # claims A's name, has another key
    card = Card.make(mallory, "hospital", "run", HopKey())
    with pytest.raises(SealError, match="said to be from A failed its signature check"):
        roster.check(card, "run")
    with pytest.raises(SealError, match="another run"):
        roster.check(Card.make(a, "hospital", "old", HopKey()), "run")


def test_secrets_refuse_to_be_serialised():
    for secret in (Identity("A"), HopKey()):
        with pytest.raises(TypeError, match="never serialised"):
            pickle.dumps(secret)
        assert "hidden" in repr(secret)


def test_the_key_holder_decrypts_only_a_complete_chain_once_per_round():
    """Hospitals 1..3 sign their links; the key holder refuses the prefix Enc(g1), a broken
    chain and a second aggregate for the same round, and opens the full sum once."""
    from fedviz.crypto import obfuscators
    from fedviz.crypto.encoding import make_codec
    from fedviz.crypto.sealing import digest
    from fedviz.data import FEATURES, split
    from fedviz.protocol import Hospital, Server, hospital_name
    from fedviz.protocol.attestation import Attestation
    from fedviz.protocol.keyholder import KeyHolder
    from fedviz.protocol.wire import to_payload

    server = Server(1024, "djn")
    codec = make_codec("packed", server.public.n, len(FEATURES), 3)
    ids = [Identity(hospital_name(i)) for i in range(3)]
    roster = Roster({i.name: i.public for i in ids})
    data = split(3, 42)
    message, statements, prefix = None, [], None
    for i, identity in enumerate(ids):
        h = Hospital(i, data.hospital_X[i], data.hospital_y[i], "sum")
        h.join(server.public, codec)
        own = h.encrypt(
            h.gradient(), obfuscators.draw(server.public.n, server.public.hs, server.public.exponent_bits, 1)
        )
        received = digest(to_payload(server.public, message.ciphertexts)) if message else b""
        message = h.forward(message, own, "next")
        prefix = prefix or message.ciphertexts
        sent = digest(to_payload(server.public, message.ciphertexts))
        statements.append(Attestation("run", 1, i + 1, identity.name, received, sent).signed_by(identity))
    holder = KeyHolder(server, roster, "run", 3)
    with pytest.raises(SealError, match="not what Hospital 3 sent"):
        holder.open_ring(1, prefix, statements, codec)
    broken = [statements[0], dataclasses.replace(statements[1], received=b"x" * 32), statements[2]]
    with pytest.raises(SealError, match="signature check"):
        holder.open_ring(1, message.ciphertexts, broken, codec)
    with pytest.raises(SealError, match="another run or round"):
        holder.open_ring(2, message.ciphertexts, statements, codec)
    average = holder.open_ring(1, message.ciphertexts, statements, codec)
    expected = (
        sum(Hospital(i, data.hospital_X[i], data.hospital_y[i], "sum").gradient() for i in range(3)) / 3
    )
    assert average == pytest.approx(expected, rel=1e-12)
    assert holder.decrypted == (1,)
    with pytest.raises(SealError, match="already decrypted round 1"):
        holder.open_ring(1, message.ciphertexts, statements, codec)


def test_a_replayed_round_is_refused_as_out_of_step():
    def replay(party: str, action: str, content: dict) -> dict:
        if party == "Hospital 1" and action == "hop" and content["round"] == 3:
            content["round"] = 2
        return content

    with pytest.raises(
        FlowerRunError, match="Hospital 1 refused: hop for round 2 arrived after round 2: out of step"
    ):
        relay_run(SMALL, tamper=replay)


def test_events_survive_json_lines_exactly():
    from fedviz.eventlog import Failure, from_line, parse, to_line

    seen, _ = relay_run(SMALL)
    assert [from_line(to_line(e)) for e in seen] == seen
    failure = parse(Failure.of(TrainingDiverged("federated", 3, "x is too large to encode", 0.5)).line())
    assert isinstance(failure, Failure)
    exc = failure.exception()
    assert isinstance(exc, TrainingDiverged) and (exc.phase, exc.round, exc.cause, exc.learning_rate) == (
        "federated",
        3,
        "encoding",
        0.5,
    )


def test_what_each_coalition_reads_under_ring_and_star_is_measured():
    from fedviz.privacy.topology import measure

    exposures = {(e.topology, e.coalition): e for e in measure()}
    exact = {key for key, e in exposures.items() if e.exact}
    assert exact == {
        ("ring", "hospital 2 + key holder"),
        ("ring", "hospitals 2 … n (all but one)"),
        ("star", "the key holder"),
        ("star", "relay + key holder"),
        ("star", "hospital 2 + key holder"),
        ("star", "hospitals 2 … n (all but one)"),
        # with pairwise masks only n - 1 hospitals are left: they need no partial sum at all
        ("ring + masks", "hospitals 2 … n (all but one)"),
        ("star + masks", "hospitals 2 … n (all but one)"),
    }
    # those without a key are left with the average: the same, non-zero error for each
    plain = {round(e.error, 9) for key, e in exposures.items() if key not in exact and "noise" not in e.how}
    assert len(plain) == 1 and plain.pop() > 1
    # those who decrypt a masked ciphertext read noise, far off: hospital 2 + key holder in the
    # ring, and in the star every coalition with the key holder
    noise = {key for key, e in exposures.items() if "noise" in e.how}
    assert noise == {
        ("ring + masks", "hospital 2 + key holder"),
        ("star + masks", "the key holder"),
        ("star + masks", "relay + key holder"),
        ("star + masks", "hospital 2 + key holder"),
    }
    assert all(exposures[key].error > 1e6 for key in noise)


def test_progress_names_the_exchange_and_its_latency():
    from fedviz.engines.background import Progress, progress_after

    before = Progress(0.3, "federated training (round 1 of 4)")
    after = progress_after(Exchange(2, "hop 3", "Hospital 3", 4.25, 284, "ab", True), SMALL, before)
    assert after.where == "federated training (round 2 of 4)" and after.fraction >= before.fraction
    assert after.detail == "hop 3: Hospital 3 answered in 4.2 s (284 bytes · sealed)"


def test_star_rounds_close_in_the_transcript():
    from fedviz.report.transcript import Transcript

    seen, _ = relay_run(SMALL, "star")
    transcript = Transcript()
    for event in seen:
        transcript.add(event)
    hops = transcript.hops(1)
    assert hops is not None and len(hops) == SMALL.hospitals + 1
    assert [h.receiver for h in hops] == ["Relay"] * SMALL.hospitals + ["Server"]
    assert transcript.parties is not None and transcript.parties.topology == "star"
    assert transcript.exchange(1, "decrypt") is not None


@pytest.mark.parametrize("topology", ["ring", "star"])
def test_masks_on_separate_parties_give_the_same_numbers(topology):
    """Each node derives its pair seeds from its own hop key and the others' signed cards."""
    masked = dataclasses.replace(SMALL, masks="pairwise")
    ours, _ = relay_run(masked, topology)
    theirs = list(run(SMALL, pool=None))
    assert [e.average_gradient for e in of_type(ours, FederatedRound)] == [
        e.average_gradient for e in of_type(theirs, FederatedRound)
    ]
    assert of_type(ours, MasksAgreed)[0].pairs == 3


def test_dp_on_separate_parties_announces_the_budget_and_notes_the_clean_gradient():
    noisy = dataclasses.replace(SMALL, warm_start=False, dp_epsilon=1.0)
    ours, transport = relay_run(noisy)
    (budget,) = of_type(ours, PrivacyBudget)
    assert budget.epsilon == 1.0 and budget.rounds == SMALL.rounds
    notes = [x for x in transport.notes if x["kind"] == "gradient" and x["round"] == 1]
    assert len(notes) == 3 and all(x["clean"] != x["values"] for x in notes)
