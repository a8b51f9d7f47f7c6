"""Flower's own secure aggregation (SecAgg+, Flower 1.42), run for real on a loopback
deployment: one SuperLink, one SuperNode per hospital, no key holder.

Each federated round of the task is one SecAgg+ aggregation by `SecAggPlusWorkflow` (server)
and `secaggplus_mod` (each hospital), the app in `fedviz.protections.secagg_app`: four
exchanges (setup: fresh key pairs; share keys: Shamir shares of a self-mask seed and of a
mask key, encrypted to each neighbour; collect masked vectors: the hospital's gradient,
clipped, quantised, weighted and masked; unmask: shares that let the server remove the masks
from the sum). Every hospital keeps its own weights on its node and steps them with the
round's average, as `base.federate` does.

What the workflow returns (read in flwr 1.42's source, `server/workflow/secure_aggregation/
secaggplus_workflow.py` and `client/mod/secure_aggregation/secaggplus_mod.py`): the weighted
MEAN of the hospitals' vectors, weights num_examples, dequantised. A hospital with weight w
(num_examples / max_weight, quantised to q = round(w Q) / Q) sends k = stochastic_round(
(clip(q x, -C, C) + C) Q / 2C) and q; the server gets Σk and Σq mod the modulus, and returns
(Σ(k 2C/Q - C)) / Σq. With every num_examples 1 and max_weight 1 (q = 1) that is
mean(x) + (2C/Q) mean(e), |e| < 1 per hospital and value: the average is the plain mean,
off by less than 2C/Q per value, provided no |x| exceeds C (clipped) and n Q < modulus (the
sum must not wrap). Q is therefore the largest power of two with n Q < 2^32 (at most 2^30:
the quantiser casts to int32), which Flower allows: its only checks are Q > 0, integer,
modulus a power of two above Q (`_check_init_params`).

The driver (`run`) starts the deployment, submits the app, reads the ServerApp's record of
each round (its average, the exchanges' times) and each hospital's notes (the mod's seconds,
the bytes it received and sent, a digest of its gradient), and stops every process it started
(all carry `MARKER` in their environment), on success, failure and interruption. `measure`
then replays `base.federate` with the recorded averages: the scores and the errors against
the exact mean come from that replay, whose gradients are checked, bit for bit, against the
digests the hospitals computed on their own nodes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedviz.engines.flower import launcher
from fedviz.engines.flower.launcher import START_TIMEOUT_S
from fedviz.engines.flower.relay import FlowerRunError
from fedviz.protections.base import Measured, Task, Trust, federate

NAME = "SecAgg+ (Flower)"
MARKER = "FEDVIZ_SECAGG_DEPLOYMENT"
"""Environment variable every process of a SecAgg+ deployment inherits (value per run)."""
MODULUS = 2**32
"""Flower's default modulus_range: masks and sums live mod 2^32."""
CLIPPING_RANGE = 2.0**16
"""±65536: the diabetes sum-gradients reach about 2e4 from a cold start, 250 warm."""
MAX_QUANTIZATION_RANGE = 2**30
"""Flower's quantiser rounds through int32 (`quantization.py` _stochastic_round)."""
TIMEOUT_S = 60.0
"""How long the workflow waits for a stage's replies before it counts the silent as dropped."""
JOIN_TIMEOUT_S = 120.0
STALL_S = 60.0
"""Beyond 4 timeouts, how long a round may go without news before the run is given up."""
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")


def largest_quantization_range(hospitals: int, modulus: int = MODULUS) -> int:
    """The largest power of two Q with hospitals * Q < modulus (the sum of the quantised
    values must not wrap), at most 2^30."""
    q = 1 << ((modulus - 1) // hospitals).bit_length() - 1
    return min(q, MAX_QUANTIZATION_RANGE)


@dataclass(frozen=True)
class SecAggParameters:
    """SecAggPlusWorkflow's parameters for n hospitals."""

    hospitals: int
    num_shares: int
    """Shares of each secret = the hospital and its neighbours (n: every other hospital)."""
    reconstruction_threshold: int
    clipping_range: float
    quantization_range: int
    modulus: int = MODULUS
    max_weight: float = 1.0
    """With every num_examples 1, each hospital's weight is exactly 1 (q = Q)."""
    timeout_s: float = TIMEOUT_S

    @classmethod
    def for_hospitals(
        cls,
        hospitals: int,
        *,
        clipping_range: float = CLIPPING_RANGE,
        quantization_range: int | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> SecAggParameters:
        """Every hospital a neighbour of every other (num_shares = n) and a threshold of
        ceil(2n/3) (at least 2, below n as Flower requires of integers): a third of the
        hospitals may drop out of an aggregation, and reading one hospital takes the server
        with ceil(2n/3) others."""
        threshold = max(2, math.ceil(2 * hospitals / 3))
        if hospitals > 2:
            threshold = min(threshold, hospitals - 1)
        q = quantization_range if quantization_range is not None else largest_quantization_range(hospitals)
        if hospitals * q >= MODULUS:
            raise ValueError(
                f"quantization_range {q} is too large for {hospitals} hospitals: their sum would wrap "
                f"mod 2^32 (needs hospitals x range < 2^32)"
            )
        return cls(hospitals, hospitals, threshold, float(clipping_range), q, timeout_s=timeout_s)

    @property
    def weight(self) -> int:
        """q: each hospital's quantised weight, round(num_examples / max_weight * Q)."""
        return round(1 / self.max_weight * self.quantization_range)

    @property
    def clip_at(self) -> float:
        """The largest |value| that is not clipped, in the gradient's units."""
        return self.clipping_range * self.quantization_range / self.weight

    @property
    def step(self) -> float:
        """One quantisation step, in the gradient's units."""
        return 2 * self.clipping_range / self.weight

    @property
    def error_bound(self) -> float:
        """|SecAgg+ average − exact mean| per value when nothing is clipped: under one step
        (stochastic rounding moves each hospital's value by less than a step), plus float
        rounding of the dequantisation."""
        return self.step + 16 * self.hospitals * self.clipping_range * np.finfo(float).eps

    def to_json(self) -> str:
        return json.dumps(
            {
                "num_shares": self.num_shares,
                "reconstruction_threshold": self.reconstruction_threshold,
                "clipping_range": self.clipping_range,
                "quantization_range": self.quantization_range,
                "modulus": self.modulus,
                "max_weight": self.max_weight,
                "timeout_s": self.timeout_s,
            }
        )


@dataclass
class Deployment(launcher.Deployment):
    """The launcher's loopback deployment with SecAgg+'s app: one SuperNode per hospital (no
    key holder), a record file the ServerApp writes each round to, a folder for the nodes'
    notes; stopped (every process, by its marker) like any deployment."""

    server_app: ClassVar[str] = "fedviz.protections.secagg_app:server_app"
    client_app: ClassVar[str] = "fedviz.protections.secagg_app:client_app"
    marker_name: ClassVar[str] = MARKER
    run_settings: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nodes_dir = self.directory / "nodes"
        self.nodes_dir.mkdir()
        self.record_file = self.directory / "rounds.jsonl"
        self.record_file.touch()

    def node_configs(self) -> dict[str, tuple[str, str]]:
        n = self.config.hospitals
        return {f"Hospital {i + 1}": ("hospital", f"partition-id={i} num-partitions={n}") for i in range(n)}

    def settings(self) -> dict[str, str | int | float]:
        return self.run_settings


@dataclass
class Run:
    """What one deployment run recorded."""

    parameters: SecAggParameters
    started: float
    """Wall clock (time.time) when the deployment began starting."""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """The ServerApp's record of each aggregation (average, exchanges, times, contributors)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Every hospital's note of every message it answered."""
    submitted: float = 0.0
    joined: float = 0.0
    marker: str = ""
    """The deployment's marker ("NAME=value"): `marked(marker)` lists its live processes."""

    @property
    def averages(self) -> list[np.ndarray]:
        return [np.array(r["average"], dtype=float) for r in self.rounds]


def run(
    task: Task,
    parameters: SecAggParameters | None = None,
    *,
    short_waits: bool = True,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> Run:
    """The task's federated rounds, each one SecAgg+ aggregation on a fresh loopback
    deployment; everything it started is stopped before this returns or raises.
    `on_round` sees each round's record as it arrives."""
    config = task.config
    params = parameters or SecAggParameters.for_hospitals(config.hospitals)
    record = Run(params, time.time())
    deployment = Deployment(config, "star", short_waits)
    record.marker = deployment.marker
    try:
        deployment.start()
        deployment.run_settings = {
            "fedviz-config": json.dumps(config.to_dict()),
            "secagg": params.to_json(),
            "dims": int(task.data.dims),
            "record-file": str(deployment.record_file),
            "nodes-dir": str(deployment.nodes_dir),
            "join-timeout-s": JOIN_TIMEOUT_S,
        }
        run_id = deployment.submit()
        record.submitted = time.time()
        _follow(deployment, run_id, record, config.rounds, on_round)
        for path in sorted(deployment.nodes_dir.glob("*.jsonl")):
            record.notes += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return record
    finally:
        deployment.stop()


def _follow(
    deployment: Deployment,
    run_id: int,
    record: Run,
    rounds: int,
    on_round: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Read the ServerApp's lines until it is done; fail on its failure, on a process that
    exits, on Flower ending the run, or when a round stalls."""
    patience = 4 * record.parameters.timeout_s + STALL_S
    deadline = time.monotonic() + START_TIMEOUT_S + JOIN_TIMEOUT_S + patience
    checked = time.monotonic()
    ended = ""
    buffer = ""
    with open(deployment.record_file, encoding="utf-8") as f:
        while True:
            chunk = f.readline()
            if chunk:
                buffer += chunk
                if not buffer.endswith("\n"):
                    continue
                line, buffer = json.loads(buffer), ""
                deadline = time.monotonic() + patience
                kind = line["kind"]
                if kind == "failure":
                    raise FlowerRunError(f"the SecAgg+ ServerApp failed: {line['error']}")
                if kind == "joined":
                    record.joined = float(line["t"])
                elif kind == "round":
                    record.rounds.append(line)
                    if on_round is not None:
                        on_round(line)
                elif kind == "done":
                    if len(record.rounds) != rounds:
                        raise FlowerRunError(
                            f"the ServerApp ended after {len(record.rounds)} of {rounds} rounds"
                        )
                    return
                continue
            if ended:  # every line the ServerApp wrote has been read, and no "done"
                raise FlowerRunError(f"Flower ended the run ({ended}) before it finished")
            now = time.monotonic()
            if now > deadline:
                raise FlowerRunError(
                    f"no news from the SecAgg+ run for {patience:g} s (round {len(record.rounds) + 1})"
                )
            if now - checked > 2.0:
                checked = now
                dead = deployment.dead()
                if dead is not None:
                    raise FlowerRunError(
                        f"{dead.name}'s process (pid {dead.pid}) exited during the run"
                        + (f": {dead.tail(2)}" if dead.tail(2) else "")
                    )
                status = deployment.status(run_id)
                if status.startswith("finished"):
                    ended = status
                    continue
            time.sleep(0.05)


@dataclass(frozen=True)
class Replay:
    """`base.federate` with the recorded averages."""

    scores: tuple[float, ...]
    errors: tuple[float, ...]
    scales: tuple[float, ...]
    """Per round, the largest |exact average|."""
    mismatches: int
    """Hospital gradients whose digest differs from the one the hospital computed itself."""
    largest: float
    """The largest |gradient value| any hospital had."""
    clipped: int
    """Gradient values beyond the clipping range."""


def replay(task: Task, record: Run) -> Replay:
    from fedviz.protections.secagg_app import digest

    averages = record.averages
    digests = {
        (int(n["round"]), int(n["hospital"])): str(n["gradient"]) for n in record.notes if "gradient" in n
    }
    seen = {"mismatches": 0, "clipped": 0, "largest": 0.0}

    def aggregate(r: int, gradients: list[np.ndarray]) -> np.ndarray:
        for i, g in enumerate(gradients):
            theirs = digests.get((r, i))
            if theirs is not None and theirs != digest(g):
                seen["mismatches"] += 1
            seen["largest"] = max(seen["largest"], float(np.max(np.abs(g))))
            seen["clipped"] += int(np.sum(np.abs(g) > record.parameters.clip_at))
        return averages[r - 1]

    descent = federate(task, aggregate)
    return Replay(
        descent.scores,
        descent.errors,
        descent.scales,
        int(seen["mismatches"]),
        float(seen["largest"]),
        int(seen["clipped"]),
    )


def _power(value: int) -> str:
    return f"2^{value.bit_length() - 1}" if value > 0 and value & (value - 1) == 0 else str(value)


class SecAggPlus:
    """The SecAgg+ row: Flower 1.42's SecAggPlusWorkflow + secaggplus_mod, measured."""

    name = NAME

    def __init__(
        self,
        *,
        clipping_range: float = CLIPPING_RANGE,
        quantization_range: int | None = None,
        timeout_s: float = TIMEOUT_S,
        short_waits: bool = True,
    ) -> None:
        self.clipping_range = clipping_range
        self.quantization_range = quantization_range
        self.timeout_s = timeout_s
        self.short_waits = short_waits

    def parameters(self, hospitals: int) -> SecAggParameters:
        return SecAggParameters.for_hospitals(
            hospitals,
            clipping_range=self.clipping_range,
            quantization_range=self.quantization_range,
            timeout_s=self.timeout_s,
        )

    def how(self, p: SecAggParameters) -> str:
        return (
            f"Flower 1.42 SecAggPlusWorkflow + secaggplus_mod, num_shares {p.num_shares}, "
            f"reconstruction_threshold {p.reconstruction_threshold}, clipping_range {p.clipping_range:g}, "
            f"quantization_range {_power(p.quantization_range)}"
        )

    @property
    def engine(self) -> str:
        return "Flower 1.42 loopback deployment" + (" (short waits)" if self.short_waits else "")

    def measure(self, task: Task) -> Measured:
        config = task.config
        try:
            p = self.parameters(config.hospitals)
        except ValueError as exc:
            return Measured(self.name, "", self.engine, config.rounds, error=str(exc))
        try:
            record = run(task, p, short_waits=self.short_waits)
        except FlowerRunError as exc:
            return Measured(self.name, self.how(p), self.engine, config.rounds, error=str(exc))
        return self.row(task, record)

    def row(self, task: Task, record: Run) -> Measured:
        """The figures of one recorded run."""
        config = task.config
        p = record.parameters
        n, rounds = config.hospitals, len(record.rounds)
        done = replay(task, record)
        by_round: dict[int, list[dict[str, Any]]] = {}
        for note in record.notes:
            by_round.setdefault(int(note["round"]), []).append(note)
        hospital_crypto = [sum(x["secagg_s"] for x in by_round.get(r["round"], [])) for r in record.rounds]
        server_crypto = [float(r["server_s"]) for r in record.rounds]
        exchange = [sum(x["s"] for x in r["exchanges"]) for r in record.rounds]
        wall = [float(r["wall_s"]) for r in record.rounds]
        sent: dict[tuple[int, int], int] = {}
        received: dict[tuple[int, int], int] = {}
        for note in record.notes:
            key = (int(note["round"]), int(note["hospital"]))
            sent[key] = sent.get(key, 0) + int(note["sent"])
            received[key] = received.get(key, 0) + int(note["received"])
        dropped = [
            (int(r["round"]), n - int(r["contributors"])) for r in record.rounds if r["contributors"] < n
        ]
        max_error = max(done.errors) if done.errors else float("nan")
        caveats = [
            f"quantisation: every value is clipped to ±{p.clip_at:g} and stochastically rounded to a step of "
            f"2C/Q = {p.step:.3g}; the average is off the exact mean by less than {p.error_bound:.3g} per "
            f"value (largest here {max_error:.3g}), and differs from run to run within that",
            (
                f"clipping: {done.clipped} gradient values exceeded ±{p.clip_at:g} and were clipped "
                "(the average is then not the mean)"
                if done.clipped
                else f"clipping: no gradient value reached ±{p.clip_at:g} (largest |value| {done.largest:.3g})"
            ),
            "4 exchanges per aggregation (setup, share keys, collect masked vectors, unmask), and each redoes "
            "the key setup: fresh key pairs and Shamir shares of two secrets per hospital, every round",
            "the server learns the sum (so the average) of the gradients in the clear every round, as in fedviz",
            "the masks' seeds are folded to 32 bits and expanded with numpy's Mersenne Twister "
            "(flwr secaggplus_utils.pseudo_rand_gen): each mask is one of 2^32 streams of a generator that is "
            "not cryptographic (no attack was tried here)",
            "num_examples is 1 on every hospital and max_weight 1, so Flower's weighted mean is the plain mean",
            "every exchange starts a fresh ClientApp process per hospital (Flower's subprocess isolation): "
            "most of a round is process start-up and polling, not cryptography; fedviz's short waits shorten "
            "Flower's SuperNode polls and the ServerApp polls replies every 20 ms (Flower's own: 3 s)"
            if self.short_waits
            else "every exchange starts a fresh ClientApp process per hospital (Flower's subprocess isolation)",
            "bytes_per_hospital: the serialised content (every record object Flower pushes) of a hospital's "
            "4 replies per aggregation; Flower's message headers and HTTP framing are not counted",
            "crypto_s: per round, the seconds inside secaggplus_mod on every hospital (less computing the "
            "gradient) plus the ServerApp's seconds in SecAggPlusWorkflow outside the exchanges (recombining "
            "shares, regenerating masks, dequantising)",
        ]
        if dropped:
            caveats.append(
                "dropouts: "
                + ", ".join(f"round {r}: {k} hospital{'s' if k > 1 else ''} left out" for r, k in dropped)
                + " (that round's average is over the live hospitals only)"
            )
        if done.mismatches:
            caveats.append(
                f"{done.mismatches} hospital gradients differ from the replay's: the scores are the replay's"
            )
        t = p.reconstruction_threshold
        others = (
            f"the other {n - 1} hospitals"
            if t >= n - 1
            else f"any {t} other hospitals (pooling their shares of its mask key), or all {n - 1} others"
        )
        trust = Trust(
            decryptors=(
                f"nobody holds a key: masks whose seeds each hospital Shamir-shares with its {p.num_shares - 1} "
                f"neighbours; any {t} shares rebuild a seed"
            ),
            readers=(
                f"the server alone learns only the sum; the server with {others} reads one hospital, if it "
                "follows the protocol (a deviating server reads every hospital alone: see the caveats)"
            ),
            dropout=(
                f"yes after the key-share stage: a hospital silent for {p.timeout_s:g} s is left out of that "
                f"round while {t} neighbours answer; one silent before it halts the round"
            ),
        )
        caveats = [
            *caveats,
            "Flower 1.42's hospital hands over its shares of both a neighbour's self-mask seed and its mask key "
            "when the server lists that neighbour as both live and dropped (secaggplus_mod's _unmask checks "
            "neither list's overlap), so a server that deviates from the protocol reads every gradient alone.",
            "A hospital silent at setup or share keys (one that died between rounds, say) halts the "
            "aggregation: Flower then asks the live hospitals for shares of it they never received. Without "
            "a timeout Flower waits for a dead hospital forever.",
        ]
        mean = float(np.mean(list(sent.values()))) if sent else 0.0
        per_stage: dict[str, float] = {}
        for stage in STAGES:
            seconds = [x["s"] for r in record.rounds for x in r["exchanges"] if x["stage"] == stage]
            sizes = [x["sent"] for x in record.notes if x["stage"] == stage]
            per_stage[f"{stage} exchange s"] = float(np.mean(seconds)) if seconds else float("nan")
            per_stage[f"{stage} bytes sent"] = float(np.mean(sizes)) if sizes else float("nan")
        return Measured(
            protection=self.name,
            how=self.how(p),
            engine=self.engine,
            rounds=config.rounds,
            scores=done.scores,
            aggregate_errors=done.errors,
            aggregate_scales=done.scales,
            crypto_s=float(np.mean(hospital_crypto)) + float(np.mean(server_crypto)),
            exchange_s=float(np.mean(exchange)),
            round_s=float(np.mean(wall)),
            bytes_per_hospital=round(mean),
            setup_s=float(record.rounds[0]["start"]) - record.started,
            setup_bytes=0,
            parameters=(
                ("num_shares", str(p.num_shares)),
                ("reconstruction_threshold", str(t)),
                ("clipping_range", f"±{p.clipping_range:g}"),
                ("quantization_range", _power(p.quantization_range)),
                ("modulus", _power(p.modulus)),
                ("max_weight", f"{p.max_weight:g} (num_examples 1 per hospital)"),
                ("timeout", f"{p.timeout_s:g} s per stage"),
                ("key agreement", "ECDH P-384 + HKDF-SHA256, two fresh key pairs per hospital per round"),
                ("share encryption", "Fernet (AES-128-CBC + HMAC-SHA256)"),
                ("secret sharing", "Shamir (PyCryptodome), 16-byte chunks"),
            ),
            trust=trust,
            caveats=tuple(caveats),
            extra={
                "hospital crypto s": float(np.mean(hospital_crypto)),
                "server crypto s": float(np.mean(server_crypto)),
                "first round s": wall[0],
                "bytes received per hospital": float(np.mean(list(received.values()))) if received else 0.0,
                "bytes sent max": float(max(sent.values())) if sent else 0.0,
                "error bound": p.error_bound,
                "quantisation step": p.step,
                "largest |gradient|": done.largest,
                "clipped values": float(done.clipped),
                "dropouts": float(sum(k for _, k in dropped)),
                "replay mismatches": float(done.mismatches),
                "rounds recorded": float(rounds),
                "submit to joined s": record.joined - record.submitted if record.joined else float("nan"),
                **per_stage,
            },
        )
