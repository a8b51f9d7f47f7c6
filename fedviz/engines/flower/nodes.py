"""What a Flower node does with one message: the hospital's side and the key holder's side.

`handle` is a pure function of (action, content, the node's state, its setup, the run's
config): the ClientApp calls it for real messages and the unit tests call it through a fake
grid. It reuses the protocol's roles (`Hospital`, `Server`, `KeyHolder`); only the moving of
bytes is Flower's.

What a node keeps between messages (Flower runs each message in a fresh process; `state` is
the node's own record, held by its SuperNode and never sent to the SuperLink):
- a hospital: its hop key, its weights (its pairwise mask seeds are derived from its hop key
  and the other hospitals' signed cards whenever it encrypts, never stored);
- the key holder: its hop key, its Paillier key (p, q, hs), the rounds it has decrypted.
Replies carry only public values, sealed bytes and signed digests. `notes` are for the
loopback demo's observer only (what this party saw, e.g. a ciphertext it opened, its own
gradient); the ClientApp writes them to a local file when the launcher asks, never to a
message.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from phe import paillier

from fedviz.config import Config
from fedviz.crypto import obfuscators
from fedviz.crypto.encoding import Codec
from fedviz.crypto.keys import PublicParams, ServerKeys
from fedviz.crypto.sealing import Card, HopKey, Identity, Roster, SealError, digest, header, seal, unseal
from fedviz.data import split
from fedviz.engines.flower.content import (
    Content,
    attestations_from,
    attestations_text,
    bytes_int,
    cards_from,
    cards_text,
    int_bytes,
)
from fedviz.engines.inprocess import agreed_codec, check_finite, local_round, restart
from fedviz.errors import EncodingOverflow, TrainingDiverged
from fedviz.protocol import SERVER_NAME, Hospital, RingMessage, Server, hospital_name
from fedviz.protocol.attestation import Attestation
from fedviz.protocol.keyholder import KeyHolder
from fedviz.protocol.masks import PairwiseMasks
from fedviz.protocol.parties import dp_plan
from fedviz.protocol.wire import from_payload, to_payload

Role = Literal["hospital", "key holder"]
HOSPITAL_ACTIONS = ("join", "hop", "contribute", "finish")
KEY_HOLDER_ACTIONS = ("join", "decrypt", "decrypt_star")


@dataclass(frozen=True)
class NodeSetup:
    """A node's identity, from its `--node-config` (set by the site's administrator)."""

    role: Role
    name: str
    partition: int
    identity_path: str
    roster_path: str

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> NodeSetup:
        role = str(node_config.get("role", "")).replace("-", " ")
        if role not in ("hospital", "key holder"):
            raise ValueError(f"node role {role!r} is not hospital or key-holder")
        partition = int(node_config.get("partition-id", -1))
        name = hospital_name(partition) if role == "hospital" else SERVER_NAME
        return cls(role, name, partition, str(node_config["identity"]), str(node_config["roster"]))  # type: ignore[arg-type]


@dataclass
class Reply:
    content: Content
    notes: list[dict[str, Any]] = field(default_factory=list)


def load_roster(path: str) -> Roster:
    with open(path) as f:
        return Roster({name: bytes.fromhex(key) for name, key in json.load(f).items()})


def handle(
    action: str, content: Content, state: dict[str, Any], setup: NodeSetup, config: Config, run: str
) -> Reply:
    """One message's work. A divergence or a refused message becomes an error reply naming it
    (`error`, `kind`: diverged / refused); anything else unexpected raises."""
    allowed = HOSPITAL_ACTIONS if setup.role == "hospital" else KEY_HOLDER_ACTIONS
    if action not in allowed:
        return Reply({"error": f"{setup.name} ({setup.role}) does not do {action!r}", "kind": "refused"})
    try:
        if setup.role == "hospital":
            return _HospitalNode(setup, config, run, state).do(action, content)
        return _KeyHolderNode(setup, config, run, state).do(action, content)
    except TrainingDiverged as exc:
        return Reply(
            {
                "error": exc.reason,
                "kind": "diverged",
                "phase": exc.phase,
                "round": exc.round,
                "cause": exc.cause,
            }
        )
    except SealError as exc:
        return Reply({"error": f"{setup.name} refused: {exc}", "kind": "refused"})


class _Node:
    def __init__(self, setup: NodeSetup, config: Config, run: str, state: dict[str, Any]) -> None:
        self.setup, self.config, self.run, self.state = setup, config, run, state
        self.identity = Identity.load(setup.name, setup.identity_path)
        self.roster = load_roster(setup.roster_path)

    def hop_key(self) -> HopKey:
        return HopKey(self.state["hop_key"])

    def new_card(self) -> Card:
        hop = HopKey()
        self.state["hop_key"] = hop.export_for_own_node()
        return Card.make(self.identity, self.setup.role, self.run, hop)

    def card(self, cards: dict[str, Card], name: str) -> Card:
        """`name`'s card, checked against the roster (so the relay cannot swap it)."""
        if name not in cards:
            raise SealError(f"no hop key from {name} came with the message")
        return self.roster.check(cards[name], self.run)

    def public(self, content: Content) -> tuple[PublicParams, Codec]:
        n = bytes_int(content["n"])
        hs = bytes_int(content["hs"]) if content["hs"] else None
        public = PublicParams(paillier.PaillierPublicKey(n), hs, int(content["exponent-bits"]))
        return public, agreed_codec(self.config, n)


class _HospitalNode(_Node):
    def do(self, action: str, content: Content) -> Reply:
        data = split(self.config.hospitals, self.config.seed)
        i = self.setup.partition
        if not 0 <= i < self.config.hospitals:
            raise ValueError(f"{self.setup.name} has no block: the run has {self.config.hospitals} hospitals")
        self.X_test, self.y_test = data.X_test, data.y_test
        self.hospital = Hospital(
            i, data.hospital_X[i], data.hospital_y[i], self.config.gradient, dp_plan(self.config)
        )
        if "weights" in self.state:
            self.hospital.weights = np.array(self.state["weights"], dtype=float)
        if action != "join":
            self._in_step(int(content["round"]), action)
        reply: Reply = getattr(self, "_" + action)(content)
        self.state["weights"] = [float(w) for w in self.hospital.weights]
        self.state["round"] = int(content.get("round", 0))
        return reply

    def _in_step(self, round_: int, action: str) -> None:
        """Refuse a message that does not follow the last one this node answered. (Flower saves
        a node's state just after the reply leaves; a message overtaking that save would
        otherwise run on stale weights.)"""
        last = int(self.state.get("round", 0))
        expected = last if action == "finish" else last + 1
        if round_ != expected:
            raise SealError(f"{action} for round {round_} arrived after round {last}: out of step")

    def _join(self, content: Content) -> Reply:
        start = time.perf_counter()
        mse: list[float] = []
        for r in range(1, self.config.rounds + 1):
            local_round(r, [self.hospital], self.config.learning_rate)
            mse.append(self.hospital.test_score(self.X_test, self.y_test))
        seconds = time.perf_counter() - start
        if not self.config.warm_start:
            restart([self.hospital])
        card = self.new_card()
        return Reply(
            {
                "name": self.setup.name,
                "role": self.setup.role,
                "pid": os.getpid(),
                "patients": self.hospital.patients,
                "test-patients": len(self.y_test),
                "card": cards_text([card]),
                "local-mse": mse,
                "local-s": seconds,
            }
        )

    def _step(self, content: Content, round_: int) -> dict[str, Any]:
        """Apply the previous round's broadcast average, if the message brings one."""
        average = content.get("average") or []
        if not average:
            return {}
        self.hospital.step(np.array(average, dtype=float), self.config.learning_rate)
        with np.errstate(all="ignore"):
            check_finite("federated", round_, [self.hospital], self.config.learning_rate)
            return {"mse": self.hospital.test_score(self.X_test, self.y_test)}

    def _encrypt(
        self, content: Content, round_: int
    ) -> tuple[PublicParams, Codec, np.ndarray, tuple[Any, ...], float]:
        public, codec = self.public(content)
        self.hospital.join(public, codec, self._masks(content))
        gradient = self.hospital.contribution()
        start = time.perf_counter()
        drawn = obfuscators.draw(public.n, public.hs, public.exponent_bits, codec.ciphertexts)
        try:
            own = self.hospital.encrypt(gradient, drawn, round_)
        except EncodingOverflow as exc:
            raise TrainingDiverged(
                "federated", round_, f"a gradient is too large to encode ({exc})", self.config.learning_rate
            ) from None
        return public, codec, gradient, own, time.perf_counter() - start

    def _masks(self, content: Content) -> PairwiseMasks | None:
        """Under pairwise masks: seeds with every other hospital, from this node's hop key and
        their roster-checked cards (the agreement costs no message of its own)."""
        if self.config.masks != "pairwise":
            return None
        cards = cards_from(content["cards"])
        peers = {
            j: self.card(cards, hospital_name(j)).hop_public
            for j in range(self.config.hospitals)
            if j != self.setup.partition
        }
        return PairwiseMasks(self.setup.partition, self.hop_key(), peers, self.run.encode())

    def _gradient_note(self, round_: int, gradient: np.ndarray) -> dict[str, Any]:
        note = {
            "kind": "gradient",
            "round": round_,
            "party": self.setup.name,
            "values": [float(g) for g in gradient],
        }
        if self.hospital.adds_noise:
            note["clean"] = [float(g) for g in self.hospital.gradient()]
        return note

    def _hop(self, content: Content) -> Reply:
        round_, position = int(content["round"]), self.setup.partition + 1
        stepped = self._step(content, round_ - 1)
        public, codec, gradient, own, encrypt_s = self._encrypt(content, round_)
        cards = cards_from(content["cards"])
        hop = self.hop_key()
        notes = [self._gradient_note(round_, gradient)]
        incoming: RingMessage | None = None
        received = b""
        if position > 1:
            sender = hospital_name(position - 2)
            head = header(self.run, round_, f"hop {position - 1}", sender, self.setup.name)
            payload = unseal(hop, self.card(cards, sender), head, content["incoming"], self.setup.name)
            ciphertexts = from_payload(public, payload, codec.exponent)
            incoming = RingMessage(sender, self.setup.name, ciphertexts, position - 1)
            received = digest(payload)
            notes.append(_opened(round_, position - 1, ciphertexts))
        start = time.perf_counter()
        last = position == self.config.hospitals
        receiver = SERVER_NAME if last else hospital_name(position)
        outgoing = self.hospital.forward(incoming, own, receiver)
        add_s = time.perf_counter() - start
        payload = to_payload(public, outgoing.ciphertexts)
        head = header(self.run, round_, f"hop {position}", self.setup.name, receiver)
        sealed = seal(hop, self.card(cards, receiver), head, payload)
        attestation = Attestation(self.run, round_, position, self.setup.name, received, digest(payload))
        return Reply(
            {
                **stepped,
                "sealed": sealed,
                "attestation": attestations_text([attestation.signed_by(self.identity)]),
                "encrypt-s": encrypt_s,
                "add-s": add_s,
            },
            notes,
        )

    def _contribute(self, content: Content) -> Reply:
        round_, position = int(content["round"]), self.setup.partition + 1
        stepped = self._step(content, round_ - 1)
        public, _, gradient, own, encrypt_s = self._encrypt(content, round_)
        payload = to_payload(public, own)
        attestation = Attestation(self.run, round_, position, self.setup.name, b"", digest(payload))
        return Reply(
            {
                **stepped,
                "part": payload,
                "attestation": attestations_text([attestation.signed_by(self.identity)]),
                "encrypt-s": encrypt_s,
            },
            [self._gradient_note(round_, gradient)],
        )

    def _finish(self, content: Content) -> Reply:
        return Reply(self._step(content, int(content["round"])))


class _KeyHolderNode(_Node):
    def do(self, action: str, content: Content) -> Reply:
        return getattr(self, "_" + action)(content)  # type: ignore[no-any-return]

    def _join(self, content: Content) -> Reply:
        server = Server(self.config.key_length, self.config.obfuscator)
        self.state.update(server.export_for_own_node())
        self.state["keygen-s"] = server.keygen_seconds
        self.state["decrypted"] = []
        card = self.new_card()
        public = server.public
        return Reply(
            {
                "name": self.setup.name,
                "role": self.setup.role,
                "pid": os.getpid(),
                "card": cards_text([card]),
                "n": int_bytes(public.n),
                "hs": b"" if public.hs is None else int_bytes(public.hs),
                "exponent-bits": public.exponent_bits,
                "keygen-s": server.keygen_seconds,
            }
        )

    def _holder(self) -> tuple[KeyHolder, Server]:
        keys = ServerKeys.restore_on_own_node(
            {k: self.state[k] for k in ("p", "q", "hs")}, float(self.state["keygen-s"])
        )
        server = Server.with_keys(keys)
        holder = KeyHolder(server, self.roster, self.run, self.config.hospitals, self.state["decrypted"])
        return holder, server

    def _decrypt(self, content: Content) -> Reply:
        round_ = int(content["round"])
        holder, server = self._holder()
        codec = agreed_codec(self.config, server.public.n)
        sender = hospital_name(self.config.hospitals - 1)
        head = header(self.run, round_, f"hop {self.config.hospitals}", sender, self.setup.name)
        cards = cards_from(content["cards"])
        payload = unseal(self.hop_key(), self.card(cards, sender), head, content["sealed"], self.setup.name)
        aggregate = from_payload(server.public, payload, codec.exponent)
        start = time.perf_counter()
        average = holder.open_ring(round_, aggregate, attestations_from(content["attestations"]), codec)
        seconds = time.perf_counter() - start
        self.state["decrypted"] = list(holder.decrypted)
        return Reply(
            {"average": [float(a) for a in average], "decrypt-s": seconds},
            [_opened(round_, self.config.hospitals, aggregate)],
        )

    def _decrypt_star(self, content: Content) -> Reply:
        round_ = int(content["round"])
        holder, server = self._holder()
        codec = agreed_codec(self.config, server.public.n)
        parts = [from_payload(server.public, p, codec.exponent) for p in content["parts"]]
        start = time.perf_counter()
        average = holder.open_star(round_, parts, attestations_from(content["attestations"]), codec)
        seconds = time.perf_counter() - start
        self.state["decrypted"] = list(holder.decrypted)
        return Reply({"average": [float(a) for a in average], "decrypt-s": seconds})


def _opened(round_: int, hop: int, ciphertexts: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "kind": "opened",
        "round": round_,
        "hop": hop,
        "ciphertexts": [[int(c.ciphertext(False)), int(c.exponent)] for c in ciphertexts],
    }


def attestation_of(reply: Content) -> Attestation:
    """The one signed statement a hospital's hop or contribution reply carries."""
    (attestation,) = attestations_from(reply["attestation"])
    return attestation


__all__ = [
    "HOSPITAL_ACTIONS",
    "KEY_HOLDER_ACTIONS",
    "NodeSetup",
    "Reply",
    "attestation_of",
    "attestations_text",
    "handle",
]
