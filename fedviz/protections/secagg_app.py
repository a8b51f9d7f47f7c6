"""The Flower app the SecAgg+ row runs (`fedviz.protections.secagg`): Flower 1.42's own
`SecAggPlusWorkflow` on the server, its own `secaggplus_mod` on every hospital.

ServerApp (`server_app`): in Flower 1.42 the SecAgg+ workflow only runs on the legacy path, a
`LegacyContext` (strategy, client manager, history) driven by `DefaultWorkflow` with the
workflow as its fit step. Each federated round of the task is one SecAgg+ aggregation (four
exchanges: setup, share keys, collect masked vectors, unmask). The strategy sends every
hospital the averages of the rounds so far and keeps each round's average, which the workflow
hands it already unmasked and dequantised. The grid is wrapped so that a stage's replies are
polled every `POLL_S` (Flower's own `send_and_receive` sleeps 3 s between polls), and each
exchange is timed.

ClientApp (`client_app`): one `train` handler behind `secaggplus_mod`. The handler keeps its
hospital's weights in the node's own state (`context.state`, never sent anywhere), applies
the averages it has not applied yet (w <- w - eta * average, the arithmetic of
`base.federate`), and answers with a legacy fit reply: its gradient at those weights, with
num_examples 1 so that the workflow's weighted mean is the plain mean. The mod masks it.

Run config (set by `secagg.run`): `fedviz-config` (the Config as JSON), `secagg` (the
workflow's parameters as JSON), `dims`, `record-file` (the ServerApp appends one JSON line per
round, then "done", or one "failure" line), `nodes-dir` (each hospital appends one JSON line
per message: the stage, the mod's own seconds, the bytes it received and sent, a digest of
its gradient), `join-timeout-s`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid, ServerApp

from fedviz.engines.flower import short_waits

POLL_S = 0.02
"""How often the ServerApp asks the SuperLink for a stage's replies."""
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")
"""SecAggPlusWorkflow's four exchanges, in the order it makes them."""
STATE = "fedviz.secagg"
"""The ClientApp's own record in its node state (weights, averages applied)."""

server_app = ServerApp()
client_app = ClientApp()


class SecAggHalted(RuntimeError):
    """The workflow stopped an aggregation (too few live neighbours) or the run cannot go on."""


# ---------------------------------------------------------------- the ServerApp


@dataclass
class Exchange:
    stage: str
    seconds: float
    sent: int
    replies: int
    errors: list[str]


class PollingGrid(Grid):
    """Flower's grid, with `send_and_receive` polling every `POLL_S` and timing each call.

    Same contract as Flower's (`superlink/grid/http_grid.py`): push, then pull until every
    reply is in or `timeout` seconds have passed (None: no limit); replies that are errors
    are returned as they are (the workflow counts their senders as dropped)."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.exchanges: list[Exchange] = []

    def set_run(self, run: Any) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Any:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        start = time.perf_counter()
        out = list(messages)
        pending = {i for i in self._grid.push_messages(out) if i}
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            got = list(self._grid.pull_messages(sorted(pending)))
            replies += got
            pending -= {m.metadata.reply_to_message_id for m in got}
            if not pending or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(POLL_S)
        stage = STAGES[len(self.exchanges) % len(STAGES)]
        errors = [str(m.error.reason) for m in replies if m.has_error()]
        self.exchanges.append(Exchange(stage, time.perf_counter() - start, len(out), len(replies), errors))
        return replies


class _Averages:
    """The strategy's state: each round's unmasked average and who contributed."""

    def __init__(self, hospitals: int, dims: int) -> None:
        self.hospitals = hospitals
        self.dims = dims
        self.averages: list[np.ndarray] = []
        self.contributors: list[int] = []
        self.failures: list[list[str]] = []


class Relay(FedAvg):  # type: ignore[misc]
    """A FedAvg whose fit step sends every hospital the averages so far and keeps, as the
    round's average, the vector SecAggPlusWorkflow puts in every result (its unmask stage
    sets each FitRes's parameters to the unmasked, dequantised aggregate), not FedAvg's
    re-weighting of those identical copies. No federated evaluation."""

    def __init__(self, averages: _Averages) -> None:
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=2,
            min_available_clients=2,
            initial_parameters=ndarrays_to_parameters([]),
        )
        self.averages = averages

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: Any) -> Any:
        history = np.array(self.averages.averages, dtype=float).reshape(-1, self.averages.dims)
        ins = FitIns(ndarrays_to_parameters([history]), {"server_round": server_round})
        clients = client_manager.all()
        return [(clients[k], ins) for k in sorted(clients)[: self.averages.hospitals]]

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        if not results:
            return None, {}
        parameters = results[0][1].parameters
        (average,) = parameters_to_ndarrays(parameters)
        self.averages.averages.append(np.asarray(average, dtype=float))
        self.averages.contributors.append(len(results))
        self.averages.failures.append([str(f) for f in failures])
        return parameters, {}


@dataclass
class _TimedAggregation:
    """The fit step: one SecAgg+ aggregation, timed; a halted one ends the run."""

    workflow: Callable[[Grid, Context], None]
    grid: PollingGrid
    averages: _Averages
    write: Callable[..., None]

    def __call__(self, grid: Grid, context: Context) -> None:
        current = int(cast(int, context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND]))
        self.grid.exchanges.clear()
        wall_start = time.time()
        start = time.perf_counter()
        self.workflow(grid, context)
        wall = time.perf_counter() - start
        exchanges = list(self.grid.exchanges)
        if len(self.averages.averages) < current:
            replies = ", ".join(f"{x.stage} {x.replies}/{x.sent}" for x in exchanges)
            said = "; ".join(sorted({e for x in exchanges for e in x.errors})) or "see the ServerApp's log"
            raise SecAggHalted(
                f"SecAgg+ halted in round {current} (replies: {replies}): a hospital was silent before it "
                f"had sent its key shares, or fewer live neighbours than the reconstruction threshold "
                f"were left. Hospitals' errors: {said}"
            )
        self.write(
            "round",
            round=current,
            start=wall_start,
            wall_s=wall,
            exchanges=[
                {"stage": x.stage, "s": x.seconds, "sent": x.sent, "replies": x.replies, "errors": x.errors}
                for x in exchanges
            ],
            server_s=wall - sum(x.seconds for x in exchanges),
            contributors=self.averages.contributors[-1],
            failures=self.averages.failures[-1],
            average=[float(v) for v in self.averages.averages[-1]],
        )


def _no_evaluation(grid: Grid, context: Context) -> None:
    """The task's scores are computed by the driver from the final weights."""


def _wait_for_hospitals(grid: Grid, hospitals: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(set(grid.get_node_ids())) < hospitals:
        if time.monotonic() > deadline:
            raise SecAggHalted(
                f"only {len(set(grid.get_node_ids()))} of {hospitals} hospitals joined within {timeout_s:g} s"
            )
        time.sleep(0.05)


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    short_waits.patch_relay_backoff()
    settings = dict(context.run_config)
    with open(str(settings["record-file"]), "a", encoding="utf-8") as sink:

        def write(kind: str, **fields: Any) -> None:
            sink.write(json.dumps({"kind": kind, **fields}) + "\n")
            sink.flush()

        try:
            _serve(grid, context, settings, write)
        except Exception as exc:  # told to the driver, then to Flower: the run fails
            write("failure", error=f"{type(exc).__name__}: {exc}")
            raise
        write("done", t=time.time())


def _serve(grid: Grid, context: Context, settings: dict[str, Any], write: Callable[..., None]) -> None:
    from fedviz.config import Config

    config = Config.from_dict(json.loads(str(settings["fedviz-config"])))
    p = json.loads(str(settings["secagg"]))
    workflow = SecAggPlusWorkflow(
        # Flower reads an int 1 as "1.0 = every sampled client"; 2 hospitals need that form
        # (an int num_shares must be > 2: secaggplus_workflow.py _check_init_params)
        p["num_shares"] if p["num_shares"] > 2 else 1.0,
        p["reconstruction_threshold"],
        max_weight=float(p["max_weight"]),
        clipping_range=float(p["clipping_range"]),
        quantization_range=int(p["quantization_range"]),
        modulus_range=int(p["modulus"]),
        timeout=float(p["timeout_s"]),
    )
    _wait_for_hospitals(grid, config.hospitals, float(settings["join-timeout-s"]))
    write("joined", t=time.time())
    averages = _Averages(config.hospitals, int(settings["dims"]))
    polling = PollingGrid(grid)
    fit = _TimedAggregation(workflow, polling, averages, write)
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=config.rounds), strategy=Relay(averages))
    DefaultWorkflow(fit_workflow=fit, evaluate_workflow=_no_evaluation)(polling, legacy)


# ---------------------------------------------------------------- the ClientApp

_handled: dict[str, Any] = {}
"""What the handler did in this process (one message per ClientApp process), for the mod."""


def content_bytes(content: RecordDict) -> int:
    """The bytes of a message's content as Flower sends it: every object of its tree
    (records, arrays, chunks), serialised."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return sum(len(o.deflate()) for o in get_all_nested_objects(content).values())


def measured(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Outside `secaggplus_mod`: time it (less the handler's own gradient work), size what
    the hospital received and sent, and note it in the hospital's diagnostics file."""
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    stage = str(configs.get(Key.STAGE, "")) if configs is not None else ""
    received = content_bytes(msg.content)
    _handled.clear()
    start = time.perf_counter()
    reply = call_next(msg, context)
    seconds = time.perf_counter() - start
    handler_s = float(_handled.get("seconds", 0.0))
    note = {
        "hospital": int(cast(int, context.node_config["partition-id"])),
        "round": int(msg.metadata.group_id or 0),
        "stage": stage,
        "secagg_s": seconds - handler_s,
        "handler_s": handler_s,
        "received": received,
        "sent": content_bytes(reply.content) if reply.has_content() else 0,
    }
    if "gradient" in _handled:
        note["gradient"] = _handled["gradient"]
    directory = str(context.run_config.get("nodes-dir", ""))
    if directory:
        with open(os.path.join(directory, f"{note['hospital']}.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(note) + "\n")
    return reply


def digest(gradient: np.ndarray) -> str:
    """A digest of a gradient's exact float64 bits (the driver's replay checks its own)."""
    return hashlib.sha256(np.ascontiguousarray(gradient, dtype=np.float64).tobytes()).hexdigest()[:16]


@client_app.train(mods=[measured, secaggplus_mod])
def train(msg: Message, context: Context) -> Message:
    start = time.perf_counter()
    from fedviz.config import Config
    from fedviz.models import for_kind
    from fedviz.protections.base import Task

    config = Config.from_dict(json.loads(str(context.run_config["fedviz-config"])))
    hospital = int(cast(int, context.node_config["partition-id"]))
    fit = compat.recorddict_to_fitins(msg.content, keep_input=True)
    (history,) = parameters_to_ndarrays(fit.parameters)
    task = Task.of(config)
    mine = context.state.config_records.get(STATE)
    if mine is None:
        weights = task.start[hospital].copy()
        applied = 0
    else:
        weights = np.array(cast(list[float], mine["weights"]), dtype=float)
        applied = int(cast(int, mine["applied"]))
    for average in history[applied:]:
        weights = weights - config.learning_rate * np.asarray(average, dtype=float)
    X, y = task.data.hospital_X[hospital], task.data.hospital_y[hospital]
    gradient = np.asarray(for_kind(config.model).gradient(weights, X, y, config.gradient))
    context.state.config_records[STATE] = ConfigRecord(
        {"weights": [float(v) for v in weights], "applied": len(history)}
    )
    _handled["gradient"] = digest(gradient)
    _handled["seconds"] = time.perf_counter() - start
    reply = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters([gradient]), 1, {})
    return Message(compat.fitres_to_recorddict(reply, keep_input=True), reply_to=msg)
