"""The relay: what the ServerApp does. It orchestrates, carries bytes and holds no key.

It asks every node to join (hospitals train locally and publish a signed hop key; the key
holder makes the Paillier keys), then runs the rounds:
- ring: hospital 1 .. n in order, each handed the sealed hop of the one before; the last
  hop goes, with the hospitals' signed statements, to the key holder, whose average is the
  next round's broadcast (n + 1 exchanges per round);
- star: every hospital at once sends its encrypted gradient; the relay multiplies them and
  hands the product and the signed parts to the key holder (2 exchanges per round).

It yields the in-process engine's events from what it sees. Three kinds it cannot know are
left for the launcher's observer (`fedviz.engines.flower.observer`): the reference (it has no
data), the ciphertexts inside sealed hops, and each hospital's own gradient.

`Transport` is the only way out: Flower's grid in the ServerApp, a fake in the unit tests.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Literal, Protocol

from phe import paillier

from fedviz.config import Config
from fedviz.crypto.keys import PublicParams, add_vectors
from fedviz.data.sites import agree
from fedviz.engines.flower.content import Content, attestations_text, bytes_int, cards_from, cards_text
from fedviz.engines.flower.nodes import attestation_of
from fedviz.engines.inprocess import agreed_codec, keys_generated, masks_agreed, privacy_budget
from fedviz.errors import DataError, FedvizError, TrainingDiverged
from fedviz.events import (
    Ciphertext,
    Event,
    Exchange,
    FederatedRound,
    LocalRound,
    PartiesStarted,
    Party,
    PhaseStarted,
    RingHop,
    RunFinished,
    RunStarted,
    Standardised,
    Timings,
)
from fedviz.protocol import SERVER_NAME, hospital_name
from fedviz.protocol.parties import dp_plan
from fedviz.protocol.wire import from_payload

Topology = Literal["ring", "star"]
TOPOLOGIES: tuple[Topology, ...] = ("ring", "star")
RELAY_NAME = "Relay"
REPLY_TIMEOUT_S = 60.0
"""How long the relay waits for one exchange before it names the silent party and stops."""
PREVIEW_BYTES = 16


class FlowerRunError(FedvizError):
    """The distributed run could not go on; the message names the party and what happened.
    `unavailable`: Flower said the party's node is not there now (it may be coming back)."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class Transport(Protocol):
    def nodes(self) -> list[int]: ...

    def ask(self, requests: Sequence[tuple[int, str, Content]], timeout_s: float) -> list[Content]:
        """Send each (node, action, content) at once; the replies in the same order. Raises
        `FlowerRunError` naming the node when one does not answer in time or fails."""
        ...


@dataclass
class _Pending:
    """A round the relay has finished but cannot yet report: hospitals tell their MSE after
    applying its average, which they do with the next message."""

    round: int
    hops: list[RingHop]
    average: tuple[float, ...]
    encrypt_s: float
    add_s: float
    decrypt_s: float


class Relay:
    def __init__(
        self,
        transport: Transport,
        config: Config,
        topology: Topology,
        emit: Callable[[Event], None],
        timeout_s: float = REPLY_TIMEOUT_S,
        *,
        expected: dict[int, str] | None = None,
        replay: Sequence[Sequence[float]] = (),
        broadcasts: str | None = None,
        join_timeout_s: float | None = None,
    ) -> None:
        """`expected`: the registered node ids and whom they belong to (a pilot), so a missing
        site is named; `replay`: the broadcast averages of a resumed run's finished rounds;
        `broadcasts`: a file each finished round's average is appended to."""
        self.transport, self.config, self.topology, self.emit = transport, config, topology, emit
        self.timeout_s = timeout_s
        self.join_timeout_s = timeout_s if join_timeout_s is None else join_timeout_s
        self.expected = dict(expected or {})
        self.replay = [list(a) for a in replay]
        self.broadcasts = broadcasts
        self.names: dict[int, str] = dict(self.expected)
        self.ids: dict[str, int] = {}

    def _ask(self, requests: Sequence[tuple[str, str, Content]]) -> tuple[list[Content], float]:
        start = time.perf_counter()
        replies = self.transport.ask([(self.ids[n], a, c) for n, a, c in requests], self.timeout_s)
        for (name, action, _), reply in zip(requests, replies, strict=True):
            _raise_error(name, action, reply, self.config.learning_rate)
        return replies, time.perf_counter() - start

    def run(self) -> None:
        started = time.perf_counter()
        config = self.config
        hospitals = [hospital_name(i) for i in range(config.hospitals)]
        node_ids = self._wait_for_nodes(config.hospitals + 1)
        replay = [list(map(float, a)) for a in self.replay]
        start = time.perf_counter()
        joined = self._join(node_ids, replay)
        join_s = time.perf_counter() - start
        for node, reply in zip(node_ids, joined, strict=True):
            _raise_error(self.expected.get(node, f"node {node}"), "join", reply, config.learning_rate)
            self.names[node], self.ids[str(reply["name"])] = str(reply["name"]), node
        by_name = {str(r["name"]): r for r in joined}
        missing = [n for n in [*hospitals, SERVER_NAME] if n not in by_name]
        if missing or len(by_name) != config.hospitals + 1:
            raise FlowerRunError(
                f"expected {config.hospitals} hospitals and a key holder; missing {', '.join(missing) or 'none'},"
                f" found {', '.join(sorted(by_name))}"
            )
        keyholder = by_name[SERVER_NAME]
        self.cards = cards_text([cards_from(str(by_name[n]["card"]))[n] for n in [*hospitals, SERVER_NAME]])
        data = {h: json.loads(str(by_name[h]["data"])) for h in hospitals}
        try:
            agree([(h, data[h]) for h in hospitals])
        except DataError as exc:
            raise FlowerRunError(exc.plain.rstrip(".")) from None
        first = data[hospitals[0]]
        if config.model == "logistic" and first["task"] != "classification":
            raise FlowerRunError(
                f"logistic regression needs a two-valued target; the sites' {first['target']!r} is a number"
            )
        self.dims = len(first["columns"]) + 1
        own_tests = tuple(int(data[h]["test-rows"]) for h in hospitals) if config.per_site else ()
        self.emit(
            RunStarted(
                config,
                tuple(int(data[h]["train-rows"]) for h in hospitals),
                sum(own_tests) if own_tests else int(first["test-rows"]),
                (*first["columns"], "intercept"),
                str(first["target"]),
                tuple(first["classes"]),
                own_tests,
            )
        )
        parties = [Party(RELAY_NAME, "relay", os.getpid(), None)]
        parties += [Party(n, "hospital", int(by_name[n]["pid"]), self.ids[n]) for n in hospitals]
        parties.append(Party(SERVER_NAME, "key holder", int(keyholder["pid"]), self.ids[SERVER_NAME]))
        dp = dp_plan(config)
        self.emit(PartiesStarted("flower", self.topology, tuple(parties)))
        for name in [*hospitals, SERVER_NAME]:
            self.emit(Exchange(0, "join", name, join_s, len(str(by_name[name]["card"])), "", False))

        n = bytes_int(keyholder["n"])
        public = PublicParams(
            paillier.PaillierPublicKey(n),
            bytes_int(keyholder["hs"]) if keyholder["hs"] else None,
            int(keyholder["exponent-bits"]),
        )
        self.public = public
        codec = agreed_codec(config, n, self.dims)
        self.codec = codec
        keygen_s = float(keyholder["keygen-s"])
        self.public_content: Content = {
            "n": keyholder["n"],
            "hs": keyholder["hs"],
            "exponent-bits": public.exponent_bits,
        }
        trained = {h: by_name[h] for h in hospitals}
        keys_told = False
        if "local-mse" not in by_name[hospitals[0]]:  # a site's own units: pooled statistics first
            self.emit(PhaseStarted("keygen", config.rounds))
            self.emit(keys_generated(config, keygen_s, n, codec))
            keys_told = True
            scale = self._standardise(hospitals)
            replies, seconds = self._ask(
                [(h, "local", {**scale, "replay": json.dumps(replay)}) for h in hospitals]
            )
            trained = dict(zip(hospitals, replies, strict=True))
            for h in hospitals:
                self.emit(Exchange(0, "local", h, seconds, 16 * len(scale["means"]), "", False))
        if dp is not None:
            self.emit(privacy_budget(dp))

        self.emit(PhaseStarted("local", config.rounds))
        local = [list(map(float, trained[h]["local-mse"])) for h in hospitals]
        for r in range(config.rounds):
            self.emit(LocalRound(r + 1, tuple(m[r] for m in local)))
        local_mse = tuple(m[-1] for m in local) if config.rounds else ()

        if not keys_told:
            self.emit(PhaseStarted("keygen", config.rounds))
            self.emit(keys_generated(config, keygen_s, n, codec))
        if config.masks == "pairwise":
            # Each hospital derives its seeds from its own hop key and the others' signed cards,
            # which every hop already carries: no message and no byte of its own.
            self.emit(masks_agreed(config, 0.0, 0))

        self.emit(PhaseStarted("federated", config.rounds))
        federated_start = time.perf_counter()
        totals = [0.0, 0.0, 0.0]
        pending: _Pending | None = None
        average: list[float] = []
        mse: tuple[float, ...] = ()
        if replay:  # a resumed run: its last finished round, as the hospitals now stand
            mse = tuple(float(trained[h]["mse"]) for h in hospitals)
            order = tuple(range(config.hospitals)) if self.topology == "ring" else ()
            self.emit(FederatedRound(len(replay), mse, tuple(replay[-1]), 0.0, 0.0, 0.0, order))
        for r in range(len(replay) + 1, config.rounds + 1):
            play = self._ring_round if self.topology == "ring" else self._star_round
            done, mse_before = play(r, average)
            if pending is not None:
                mse = self._report(pending, mse_before)
            pending = done
            average = list(done.average)
            self.broadcast(r, done.average)
            for i, t in enumerate((done.encrypt_s, done.add_s, done.decrypt_s)):
                totals[i] += t
        if pending is not None:
            replies, seconds = self._ask(
                [(h, "finish", {"round": pending.round, "average": average}) for h in hospitals]
            )
            for h in hospitals:
                self.emit(Exchange(pending.round, "final step", h, seconds, 8 * len(average), "", False))
            mse = self._report(
                pending, {h: float(rep["mse"]) for h, rep in zip(hospitals, replies, strict=True)}
            )
        federated_s = time.perf_counter() - federated_start
        wire = public.ciphertext_bytes
        self.emit(
            RunFinished(
                local_mse,
                mse,
                math.nan,
                math.nan,
                wire * codec.ciphertexts * config.hospitals,
                Timings(
                    keygen=keygen_s,
                    local=max(float(trained[h]["local-s"]) for h in hospitals),
                    federated=federated_s,
                    encrypt=totals[0],
                    add=totals[1],
                    decrypt=totals[2],
                    total=time.perf_counter() - started,
                ),
            )
        )

    def _join(self, node_ids: list[int], replay: list[list[float]]) -> list[Content]:
        """Every party's join. A site restarted a moment ago can still be listed under its old,
        silent connection (Flower answers "node unavailable" until its heartbeat is in): ask
        again until the join deadline."""
        deadline = time.monotonic() + self.join_timeout_s
        while True:
            try:
                return self.transport.ask(
                    [(i, "join", {"replay": json.dumps(replay)}) for i in node_ids], self.timeout_s
                )
            except FlowerRunError as exc:
                if not exc.unavailable or time.monotonic() > deadline:
                    raise
                time.sleep(2.0)

    def _standardise(self, hospitals: list[str]) -> Content:
        """The sites' counts, sums and squares summed round the ring, sealed hop by hop; the
        key holder decrypts only the total and returns the pooled means and deviations."""
        sealed = b""
        attestations = []
        for k, name in enumerate(hospitals, start=1):
            content = {**self.public_content, "cards": self.cards, "incoming": sealed}
            (reply,), seconds = self._ask([(name, "stats", content)])
            sealed = bytes(reply["sealed"])
            attestations.append(attestation_of(reply))
            self.emit(
                Exchange(0, f"stats {k}", name, seconds, len(sealed), sealed[:PREVIEW_BYTES].hex(), True)
            )
        content = {
            "cards": self.cards,
            "sealed": sealed,
            "attestations": attestations_text(attestations),
            "values": 2 * (self.dims - 1) + 1,
        }
        (reply,), seconds = self._ask([(SERVER_NAME, "decrypt_stats", content)])
        self.emit(Exchange(0, "decrypt stats", SERVER_NAME, seconds, 16 * (self.dims - 1), "", False))
        means, stds = list(map(float, reply["means"])), list(map(float, reply["stds"]))
        self.emit(
            Standardised(tuple(means), tuple(stds), int(reply["rows"]), int(reply["ciphertexts"]), seconds)
        )
        return {"means": means, "stds": stds}

    def broadcast(self, round_: int, average: Sequence[float]) -> None:
        """Keep a finished round's broadcast average (public): a resumed run starts from them."""
        if self.broadcasts is not None:
            with open(self.broadcasts, "a", encoding="utf-8") as f:
                f.write(json.dumps({"round": round_, "average": [float(a) for a in average]}) + "\n")

    def _wait_for_nodes(self, expected: int) -> list[int]:
        """The nodes to ask: every connected one once `expected` are there; with the pilot's
        registered node ids, exactly those, and a site that does not come is named."""
        deadline = time.monotonic() + self.join_timeout_s
        while True:
            nodes = self.transport.nodes()
            if self.expected:
                absent = [i for i in self.expected if i not in nodes]
                if not absent:
                    return [i for i in self.expected]
            elif len(nodes) >= expected:
                return nodes
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if self.expected:
            names = ", ".join(self.expected[i] for i in absent)
            raise FlowerRunError(
                f"{names} did not connect within {self.join_timeout_s:g} s: "
                f"{'its' if len(absent) == 1 else 'their'} SuperNode is not running or cannot reach the coordinator"
            )
        raise FlowerRunError(
            f"only {len(nodes)} of {expected} parties connected within {self.join_timeout_s:g} s"
        )

    def _hospitals(self) -> list[str]:
        return [hospital_name(i) for i in range(self.config.hospitals)]

    def _ring_round(self, r: int, average: list[float]) -> tuple[_Pending, dict[str, float]]:
        hospitals = self._hospitals()
        sealed = b""
        attestations = []
        mse_before: dict[str, float] = {}
        hops: list[RingHop] = []
        encrypt_s = add_s = 0.0
        wire = self.public.ciphertext_bytes * self.codec.ciphertexts
        for k, name in enumerate(hospitals, start=1):
            content = {
                **self.public_content,
                "round": r,
                "cards": self.cards,
                "average": average,
                "incoming": sealed,
            }
            (reply,), seconds = self._ask([(name, "hop", content)])
            sealed = bytes(reply["sealed"])
            receiver = SERVER_NAME if k == len(hospitals) else hospitals[k]
            self.emit(Exchange(r, f"hop {k}", name, seconds, len(sealed), sealed[:PREVIEW_BYTES].hex(), True))
            attestations.append(attestation_of(reply))
            if "mse" in reply:
                mse_before[name] = float(reply["mse"])
            encrypt_s += float(reply["encrypt-s"])
            add_s += float(reply["add-s"])
            hops.append(RingHop(r, k, name, receiver, (), k, wire))
        content = {
            "round": r,
            "cards": self.cards,
            "sealed": sealed,
            "attestations": attestations_text(attestations),
        }
        content["dims"] = self.dims
        (reply,), seconds = self._ask([(SERVER_NAME, "decrypt", content)])
        self.emit(Exchange(r, "decrypt", SERVER_NAME, seconds, 8 * len(reply["average"]), "", False))
        done = _Pending(
            r, hops, tuple(map(float, reply["average"])), encrypt_s, add_s, float(reply["decrypt-s"])
        )
        return done, mse_before

    def _star_round(self, r: int, average: list[float]) -> tuple[_Pending, dict[str, float]]:
        hospitals = self._hospitals()
        content = {**self.public_content, "round": r, "average": average, "cards": self.cards}
        replies, seconds = self._ask([(h, "contribute", content) for h in hospitals])
        parts = [bytes(reply["part"]) for reply in replies]
        hops = []
        for k, (h, part) in enumerate(zip(hospitals, parts, strict=True), start=1):
            self.emit(Exchange(r, f"part {k}", h, seconds, len(part), part[:PREVIEW_BYTES].hex(), False))
            hops.append(
                RingHop(
                    r, k, h, RELAY_NAME, _ciphertexts(self.public, part, self.codec.exponent), 1, len(part)
                )
            )
        start = time.perf_counter()
        numbers = [from_payload(self.public, p, self.codec.exponent) for p in parts]
        product = reduce(add_vectors, numbers)
        add_s = time.perf_counter() - start
        aggregate = tuple(Ciphertext(int(c.ciphertext(False)), c.exponent) for c in product)
        hops.append(
            RingHop(r, len(hospitals) + 1, RELAY_NAME, SERVER_NAME, aggregate, len(hospitals), len(parts[0]))
        )
        attestations = [attestation_of(reply) for reply in replies]
        content = {
            "round": r,
            "parts": parts,
            "attestations": attestations_text(attestations),
            "dims": self.dims,
        }
        (reply,), seconds = self._ask([(SERVER_NAME, "decrypt_star", content)])
        self.emit(Exchange(r, "decrypt", SERVER_NAME, seconds, 8 * len(reply["average"]), "", False))
        mse_before = {h: float(rep["mse"]) for h, rep in zip(hospitals, replies, strict=True) if "mse" in rep}
        encrypt_s = sum(float(rep["encrypt-s"]) for rep in replies)
        done = _Pending(
            r, hops, tuple(map(float, reply["average"])), encrypt_s, add_s, float(reply["decrypt-s"])
        )
        return done, mse_before

    def _report(self, done: _Pending, mse_after: dict[str, float]) -> tuple[float, ...]:
        """Emit a finished round once every hospital has told its MSE after the step."""
        mse = tuple(mse_after[h] for h in self._hospitals())
        for hop in done.hops:
            self.emit(hop)
        order = tuple(range(self.config.hospitals)) if self.topology == "ring" else ()
        self.emit(
            FederatedRound(done.round, mse, done.average, done.encrypt_s, done.add_s, done.decrypt_s, order)
        )
        return mse


def _ciphertexts(public: PublicParams, payload: bytes, exponent: int) -> tuple[Ciphertext, ...]:
    return tuple(
        Ciphertext(int(c.ciphertext(False)), exponent) for c in from_payload(public, payload, exponent)
    )


def _raise_error(name: str, action: str, reply: Content, learning_rate: float) -> None:
    if "error" not in reply:
        return
    if reply.get("kind") == "diverged":
        raise TrainingDiverged(
            str(reply["phase"]),
            int(reply["round"]),
            f"{name}: {reply['error']}",
            learning_rate,
            cause=reply.get("cause"),  # type: ignore[arg-type]
        )
    raise FlowerRunError(f"{name} failed at {action}: {reply['error']}")
