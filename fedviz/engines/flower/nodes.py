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
from fedviz.crypto.encoding import Codec, PerValueCodec
from fedviz.crypto.keys import PublicParams, ServerKeys, add_vectors, encrypt_with
from fedviz.crypto.sealing import Card, HopKey, Identity, Roster, SealError, digest, header, seal, unseal
from fedviz.data import FEATURES, split
from fedviz.data.diabetes import TARGET
from fedviz.data.sites import load_site
from fedviz.data.standardise import pooled, rescale
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
from fedviz.errors import DataError, EncodingOverflow, TrainingDiverged
from fedviz.models import for_kind
from fedviz.privacy.dp import DpPlan
from fedviz.protocol import SERVER_NAME, Hospital, RingMessage, Server, hospital_name
from fedviz.protocol.attestation import Attestation
from fedviz.protocol.keyholder import KeyHolder
from fedviz.protocol.masks import PairwiseMasks
from fedviz.protocol.parties import dp_plan
from fedviz.protocol.wire import from_payload, to_payload

Role = Literal["hospital", "key holder"]
HOSPITAL_ACTIONS = ("join", "stats", "local", "hop", "contribute", "finish")
KEY_HOLDER_ACTIONS = ("join", "decrypt", "decrypt_star", "decrypt_stats")
STATS_ROUND = 0
"""The round number the standardisation's one aggregate is signed and decrypted under."""


NODE_CONFIG_KEYS = ("role", "partition-id", "identity", "roster", "data", "target", "test-fraction")
"""Every `--node-config` key a node understands; any other is refused, never dropped."""


@dataclass(frozen=True)
class NodeSetup:
    """A node's identity, from its `--node-config` (set by the site's administrator), and for
    a hospital whose data is its own file: the file, its target and its test share."""

    role: Role
    name: str
    partition: int
    identity_path: str
    roster_path: str
    data: str = ""
    target: str = ""
    test_fraction: float = 0.0
    """0: the run's own setting."""

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> NodeSetup:
        unknown = sorted(set(node_config) - set(NODE_CONFIG_KEYS))
        if unknown:
            raise SealError(
                f"unknown node-config key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                f"a node understands {', '.join(NODE_CONFIG_KEYS)}"
            )
        role = str(node_config.get("role", "")).replace("-", " ")
        if role not in ("hospital", "key holder"):
            raise SealError(f"node role {role!r} is not hospital or key-holder")
        partition = int(node_config.get("partition-id", -1))
        name = hospital_name(partition) if role == "hospital" else SERVER_NAME
        for key in ("identity", "roster"):
            if not str(node_config.get(key, "")):
                raise SealError(f"{name}'s node-config lacks {key}=PATH")
        data, target = str(node_config.get("data", "")), str(node_config.get("target", ""))
        if role == "key holder" and (data or target):
            raise SealError("the key holder holds no data: its node-config takes no data or target")
        if bool(data) != bool(target):
            raise SealError(f"{name}'s node-config needs both data=FILE and target=COLUMN, or neither")
        fraction = float(node_config.get("test-fraction", 0.0))
        return cls(
            role,  # type: ignore[arg-type]
            name,
            partition,
            str(node_config["identity"]),
            str(node_config["roster"]),
            data,
            target,
            fraction,
        )


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
    except DataError as exc:
        return Reply({"error": f"{setup.name}'s data: {exc.plain}", "kind": "refused"})


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

    def public(self, content: Content, dims: int = len(FEATURES)) -> tuple[PublicParams, Codec]:
        """The key holder's public parameters and the codec agreed for `dims` values."""
        n = bytes_int(content["n"])
        hs = bytes_int(content["hs"]) if content["hs"] else None
        public = PublicParams(paillier.PaillierPublicKey(n), hs, int(content["exponent-bits"]))
        return public, agreed_codec(self.config, n, dims)


class _HospitalNode(_Node):
    def do(self, action: str, content: Content) -> Reply:
        self._load()
        if "weights" in self.state:
            self.hospital.weights = np.array(self.state["weights"], dtype=float)
        if action not in ("join", "stats", "local"):
            self._in_step(int(content["round"]), action)
        reply: Reply = getattr(self, "_" + action)(content)
        self.state["weights"] = [float(w) for w in self.hospital.weights]
        if action not in ("join", "stats", "local"):
            self.state["round"] = int(content.get("round", 0))
        return reply

    def _load(self) -> None:
        """This hospital's rows: its site's own file (standardised once the pooled statistics
        are known), or its block of the post's diabetes data."""
        config, i = self.config, self.setup.partition
        if not 0 <= i < config.hospitals:
            raise SealError(f"{self.setup.name} has no place in a run of {config.hospitals} hospitals")
        if config.per_site:
            if not self.setup.data:
                raise DataError(
                    "this run trains on each site's own file, but this SuperNode was started without one "
                    "(start it with `python -m fedviz site FOLDER --data FILE.csv --target COLUMN`)"
                )
            if config.target and self.setup.target != config.target:
                raise DataError(
                    f"the run predicts {config.target!r}; this site's target is {self.setup.target!r}"
                )
            site = load_site(
                self.setup.data,
                self.setup.target,
                self.setup.test_fraction or config.test_fraction,
                config.seed,
            )
            self.data_card: dict[str, Any] = site.card()
            X, y, self.X_test, self.y_test = site.X, site.y, site.X_test, site.y_test
            self.ready = "means" in self.state
            if self.ready:
                means, stds = np.array(self.state["means"]), np.array(self.state["stds"])
                X, self.X_test = rescale(X, means, stds), rescale(self.X_test, means, stds)
        else:
            if self.setup.data:
                raise DataError(
                    "this SuperNode was started with its own data file, but the run uses the post's built-in "
                    "diabetes split: submit the run with the sites' data (`pilot run`)"
                )
            data = split(config.hospitals, config.seed)
            X, y, self.X_test, self.y_test = data.hospital_X[i], data.hospital_y[i], data.X_test, data.y_test
            self.ready = True
            self.data_card = {
                "file": "",
                "columns": list(FEATURES[:-1]),
                "target": TARGET,
                "task": "regression",
                "classes": [],
                "rows": len(y) + len(self.y_test),
                "train-rows": len(y),
                "test-rows": len(self.y_test),
            }
        self.hospital = Hospital(i, X, y, config.gradient, self._dp(), model=for_kind(config.model))

    def _dp(self) -> DpPlan | None:
        """The run's DP plan, the accountant asked once per run (it costs half a second, and
        each message is a fresh process): its noise multiplier kept in the node's state."""
        epsilon = self.config.dp_epsilon
        if epsilon is None:
            return None
        if "dp-z" not in self.state:
            plan = dp_plan(self.config)
            assert plan is not None
            self.state["dp-z"] = plan.noise_multiplier
        c = self.config
        return DpPlan(epsilon, c.dp_delta, c.dp_clip, float(self.state["dp-z"]), c.rounds, c.hospitals)

    def _in_step(self, round_: int, action: str) -> None:
        """Refuse a message that does not follow the last one this node answered. (Flower saves
        a node's state just after the reply leaves; a message overtaking that save would
        otherwise run on stale weights.)"""
        last = int(self.state.get("round", 0))
        expected = last if action == "finish" else last + 1
        if round_ != expected:
            raise SealError(f"{action} for round {round_} arrived after round {last}: out of step")

    def _join(self, content: Content) -> Reply:
        card = self.new_card()
        reply: Content = {
            "name": self.setup.name,
            "role": self.setup.role,
            "pid": os.getpid(),
            "card": cards_text([card]),
            "data": json.dumps(self.data_card),
            "patients": self.hospital.patients,
            "test-patients": len(self.y_test),
        }
        if self.ready:  # the post's data is scaled already: train at once
            reply.update(self._train(content))
        return Reply(reply)

    def _local(self, content: Content) -> Reply:
        """Keep the pooled means and deviations the key holder decrypted (public, broadcast),
        rescale this site's rows with them, and train locally."""
        self.state["means"] = [float(v) for v in content["means"]]
        self.state["stds"] = [float(v) for v in content["stds"]]
        self._load()
        return Reply(self._train(content))

    def _train(self, content: Content) -> Content:
        """R local rounds, the cold restart if asked, then the broadcasts of a resumed run's
        finished rounds (`replay`), each applied as the step it was."""
        start = time.perf_counter()
        mse: list[float] = []
        for r in range(1, self.config.rounds + 1):
            local_round(r, [self.hospital], self.config.learning_rate)
            mse.append(self.hospital.test_score(self.X_test, self.y_test))
        seconds = time.perf_counter() - start
        if not self.config.warm_start:
            restart([self.hospital])
        out: Content = {"local-mse": mse, "local-s": seconds}
        replay = json.loads(str(content.get("replay") or "[]"))
        for r, average in enumerate(replay, start=1):
            self.hospital.step(np.array(average, dtype=float), self.config.learning_rate)
            check_finite("federated", r, [self.hospital], self.config.learning_rate)
        if replay:
            self.state["round"] = len(replay)
            out["mse"] = self.hospital.test_score(self.X_test, self.y_test)
        if self.config.model == "logistic":
            out["accuracy"] = self.hospital.test_accuracy(self.X_test, self.y_test)
        return out

    def _stats(self, content: Content) -> Reply:
        """The standardisation's ring: add this site's count, sums and sums of squares, one
        ciphertext each, to what the previous hospital sealed, and seal it to the next."""
        position = self.setup.partition + 1
        public, _ = self.public(content)
        stats = self.hospital.statistics()
        codec = PerValueCodec(public.n, len(stats), self.config.hospitals)
        drawn = obfuscators.draw(public.n, public.hs, public.exponent_bits, codec.ciphertexts)
        own = tuple(
            encrypt_with(public, m, r, codec.exponent)
            for m, r in zip(codec.encode(stats), drawn, strict=True)
        )
        cards = cards_from(content["cards"])
        received = b""
        summed = own
        if position > 1:
            sender = hospital_name(position - 2)
            head = header(self.run, STATS_ROUND, f"stats {position - 1}", sender, self.setup.name)
            payload = unseal(
                self.hop_key(), self.card(cards, sender), head, content["incoming"], self.setup.name
            )
            summed = add_vectors(from_payload(public, payload, codec.exponent), own)
            received = digest(payload)
        receiver = SERVER_NAME if position == self.config.hospitals else hospital_name(position)
        payload = to_payload(public, summed)
        head = header(self.run, STATS_ROUND, f"stats {position}", self.setup.name, receiver)
        sealed = seal(self.hop_key(), self.card(cards, receiver), head, payload)
        attestation = Attestation(self.run, STATS_ROUND, position, self.setup.name, received, digest(payload))
        return Reply(
            {"sealed": sealed, "attestation": attestations_text([attestation.signed_by(self.identity)])}
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
        public, codec = self.public(content, len(self.hospital.weights))
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
        if action == "decrypt_stats":
            return _decrypt_stats(self, content)
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
        codec = agreed_codec(self.config, server.public.n, int(content["dims"]))
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
        codec = agreed_codec(self.config, server.public.n, int(content["dims"]))
        parts = [from_payload(server.public, p, codec.exponent) for p in content["parts"]]
        start = time.perf_counter()
        average = holder.open_star(round_, parts, attestations_from(content["attestations"]), codec)
        seconds = time.perf_counter() - start
        self.state["decrypted"] = list(holder.decrypted)
        return Reply({"average": [float(a) for a in average], "decrypt-s": seconds})


def _decrypt_stats(self: _KeyHolderNode, content: Content) -> Reply:
    """The standardisation's one aggregate: the sites' summed counts, sums and squares, decrypted
    only if every hospital's signed statement chains to it; the pooled means and deviations."""
    holder, server = self._holder()
    n = self.config.hospitals
    codec = PerValueCodec(server.public.n, int(content["values"]), n)
    sender = hospital_name(n - 1)
    head = header(self.run, STATS_ROUND, f"stats {n}", sender, self.setup.name)
    cards = cards_from(content["cards"])
    payload = unseal(self.hop_key(), self.card(cards, sender), head, content["sealed"], self.setup.name)
    aggregate = from_payload(server.public, payload, codec.exponent)
    total = holder.open_ring(
        STATS_ROUND, aggregate, attestations_from(content["attestations"]), codec, total=True
    )
    self.state["decrypted"] = list(holder.decrypted)
    means, stds = pooled(total)
    return Reply(
        {
            "means": [float(v) for v in means],
            "stds": [float(v) for v in stds],
            "rows": round(float(total[0])),
            "ciphertexts": codec.ciphertexts,
        }
    )


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
