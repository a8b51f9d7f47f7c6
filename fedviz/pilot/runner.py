"""`pilot run` and `pilot resume`: submit the signed app to the coordinator's own SuperLink,
follow the relay's events round by round, and report as `python -m fedviz` does.

A run lives in `runs/<id>/` of the coordinator's folder: its settings, each part's events
(`events-1.jsonl`, `events-2.jsonl` after a resume, ...), every finished round's broadcast
average (`broadcasts.jsonl`: public, what a resumed part replays), Flower's run ids and, at
the end, `summary.json` (the `--json` object). Each part's end also keeps the merged run in
the coordinator's run store (`python -m fedviz runs`, the dashboard's Runs page), replacing
what an earlier part of the same run kept there (`stored-as` names it); `--no-save` skips it.

Invariants: a failure ends the command with exit 1 and one line naming the party and the
cause, and Flower's run is failed (the relay raises) or stopped (by this command); a
resumed run without DP ends with the numbers of an uninterrupted one (the broadcasts are the
whole public state; each hospital rebuilds its weights from its own data and them).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from fedviz.config import Config
from fedviz.engines.flower import control
from fedviz.engines.flower.relay import REPLY_TIMEOUT_S
from fedviz.eventlog import Failure, parse
from fedviz.events import Event, FederatedRound, RunFinished
from fedviz.pilot import bundle
from fedviz.pilot.folders import CoordinatorFolder, PilotError, parties, party_name
from fedviz.pilot.roles import registered
from fedviz.report.summary import RunRecord
from fedviz.store import RunStore, StoreError, Timing, UnknownRun
from fedviz.store.runs import Status

STATUS_EVERY_S = 2.0
UNREACHABLE_S = 8.0
"""How long the coordinator's SuperLink may not answer before the run is given up (resumable)."""
JOIN_TIMEOUT_S = 120.0


@dataclass
class RunFolder:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def settings(self) -> tuple[Config, str]:
        body = json.loads((self.path / "settings.json").read_text())
        return Config.from_dict(body["config"]), str(body["topology"])

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("events-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))

    def flower_runs(self) -> list[int]:
        path = self.path / "flower-runs.json"
        return [int(i) for i in json.loads(path.read_text())] if path.is_file() else []

    def add_flower_run(self, run_id: int) -> None:
        (self.path / "flower-runs.json").write_text(json.dumps([*self.flower_runs(), run_id]))

    def finished(self) -> bool:
        """Whether the run ended with every round done (its summary says so)."""
        path = self.path / "summary.json"
        return path.is_file() and json.loads(path.read_text()).get("status") == "finished"

    def broadcasts(self) -> int:
        path = self.path / "broadcasts.jsonl"
        return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def new_run(folder: CoordinatorFolder, config: Config, topology: str) -> RunFolder:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = folder.runs / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = folder.runs / f"{stamp}-{suffix}"
    path.mkdir(parents=True)
    (path / "settings.json").write_text(
        json.dumps({"config": config.to_dict(), "topology": topology}, indent=1) + "\n"
    )
    return RunFolder(path)


def open_run(folder: CoordinatorFolder, run_id: str) -> RunFolder:
    """A run of the coordinator's by its id, or "latest" for the newest."""
    if run_id == "latest":
        known = sorted(p.name for p in folder.runs.glob("*") if (p / "settings.json").is_file())
        if not known:
            raise PilotError(f"coordinator: {folder.runs} holds no run yet: start one with `pilot run`")
        run_id = known[-1]
    path = folder.runs / run_id
    if not (path / "settings.json").is_file():
        known = sorted(p.name for p in folder.runs.glob("*") if (p / "settings.json").is_file())
        raise PilotError(
            f"coordinator: no run {run_id!r} in {folder.runs}"
            + (f"; its runs are {', '.join(known[-5:])}" if known else "; it has no runs yet")
        )
    return RunFolder(path)


def expected_nodes(folder: CoordinatorFolder) -> dict[str, str]:
    """{Flower node id: "Hospital 1 (hospital-1)"} for every party, all registered."""
    nodes = registered(folder)
    missing = [p for p in parties(folder.hospitals) if p not in nodes]
    if missing:
        raise PilotError(
            f"coordinator: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no registered node key: "
            "start the coordinator after `pilot enrol`"
        )
    return {str(nodes[p]): f"{party_name(p)} ({p})" for p in parties(folder.hospitals)}


def execute(
    folder: CoordinatorFolder,
    run: RunFolder,
    resume: bool,
    out: TextIO,
    err: TextIO,
    events: bool,
    json_out: bool,
    patience_s: float = REPLY_TIMEOUT_S,
    save: bool = True,
) -> int:
    """One part of a run (the first, or a resumed one), followed to its end; the exit status.
    `save`: keep the run, as it stands at the end of this part, in the run store."""
    started = time.monotonic()
    config, topology = run.settings()
    part = len(run.parts()) + 1
    events_file = run.path / f"events-{part}.jsonl"
    events_file.touch()
    settings: dict[str, object] = {
        "fedviz-config": json.dumps(config.to_dict()),
        "topology": topology,
        "events-file": str(events_file),
        "nodes": config.hospitals + 1,
        "expected-nodes": json.dumps(expected_nodes(folder)),
        "broadcasts-file": str(run.path / "broadcasts.jsonl"),
        "join-timeout-s": JOIN_TIMEOUT_S,
        "reply-timeout-s": patience_s,
    }
    if resume:
        settings["replay-file"] = str(run.path / "broadcasts.jsonl")
    app = bundle.write_app(run.path / f"app-{part}", settings)
    fab = bundle.build(app)
    signed = bundle.sign(fab, folder.path / "publisher.key")
    ca = folder.path / "ca.crt"
    try:
        flower_id = bundle.submit(folder.superlink, ca, fab, signed)
    except Exception as exc:
        raise PilotError(
            f"coordinator: the SuperLink on {folder.superlink} did not take the run "
            f"({' '.join(str(exc).split())[:200]}): is `python -m fedviz coordinator` running?",
            failed=True,
        ) from None
    run.add_flower_run(flower_id)
    done = run.broadcasts()
    err.write(
        f"run {run.id}{f' (resumed after round {done})' if resume else ''}: Flower run {flower_id}, "
        f"{config.hospitals} hospitals, {topology}, {config.rounds} rounds; waiting for the sites to join\n"
    )
    err.flush()
    try:
        failure = _follow(folder, run, events_file, flower_id, config, out, err, events)
    except KeyboardInterrupt:
        control.stop(folder.superlink, ca, flower_id)
        failure = f"interrupted; continue with: python -m fedviz pilot resume {folder.path} {run.id}"
    stream = merged_events(run)
    record = RunRecord.of(stream)
    if failure is not None:
        record.fail(failure)
    (run.path / "summary.json").write_text(record.to_json() + "\n")
    if save:  # before the error line, so that a failure still ends with its one line
        keep(run, stream, failure, time.monotonic() - started, err)
    if failure is not None:
        err.write(f"error: {failure}\n")
    if json_out:
        out.write(record.to_json() + "\n")
    elif record.finished is not None:
        from fedviz.report.text import format_report

        out.write(format_report(record) + "\n")
    out.flush()
    return 0 if failure is None and record.finished is not None else 1


def _follow(
    folder: CoordinatorFolder,
    run: RunFolder,
    events_file: Path,
    flower_id: int,
    config: Config,
    out: TextIO,
    err: TextIO,
    events: bool,
) -> str | None:
    """Read the part's events as they come; None when it finished, else why it did not."""
    ca = folder.path / "ca.crt"
    started = time.monotonic()
    checked = 0.0
    unreachable_since: float | None = None
    resume_hint = f"; once it is back, continue with: python -m fedviz pilot resume {folder.path} {run.id}"
    with open(events_file, encoding="utf-8") as f:
        buffer = ""
        while True:
            chunk = f.readline()
            if chunk:
                buffer += chunk
                if not buffer.endswith("\n"):
                    continue
                line, buffer = buffer.rstrip("\n"), ""
                item = parse(line)
                if isinstance(item, Failure):
                    _settled(folder, flower_id)  # the relay raised: Flower marks the run failed
                    return item.message
                if events:
                    out.write(line + "\n")
                    out.flush()
                _progress(item, config, started, err)
                if isinstance(item, RunFinished):
                    return _settled(folder, flower_id)
                continue
            now = time.monotonic()
            if now - checked > STATUS_EVERY_S:
                checked = now
                state, details = control.status(folder.superlink, ca, flower_id)
                if state == "unreachable":
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > UNREACHABLE_S:
                        return f"the coordinator's SuperLink stopped answering ({details})" + resume_hint
                else:
                    unreachable_since = None
                if state.startswith("finished") and not f.readline():
                    why = details.removeprefix("ServerApp failed with exception: ") or state
                    return f"Flower ended the run ({state}): {why}" + (
                        resume_hint if state != "finished:completed" else ""
                    )
            time.sleep(0.05)


def _settled(folder: CoordinatorFolder, flower_id: int, wait_s: float = 30.0) -> str | None:
    """After the relay's last event: Flower's own verdict, once the ServerApp has returned."""
    deadline = time.monotonic() + wait_s
    state, details = "", ""
    while time.monotonic() < deadline:
        state, details = control.status(folder.superlink, folder.path / "ca.crt", flower_id)
        if state.startswith("finished"):
            break
        time.sleep(0.2)
    if state == "finished:completed":
        return None
    return f"the relay finished, but Flower reports the run {state or 'unknown'}: {details or 'no details'}"


def _progress(event: Event, config: Config, started: float, err: TextIO) -> None:
    if isinstance(event, FederatedRound):
        mean = sum(event.mse) / len(event.mse)
        err.write(
            f"round {event.round}/{config.rounds}: mean test {config.metric} {mean:.4g} "
            f"({time.monotonic() - started:.0f} s)\n"
        )
        err.flush()


def keep(run: RunFolder, events: list[Event], failure: str | None, seconds: float, err: TextIO) -> str | None:
    """Store the run as it stands in the run store (replacing what an earlier part stored);
    its id, or None with one line on `err` saying why it was not stored."""
    status: Status = (
        "finished"
        if failure is None and any(isinstance(e, RunFinished) for e in events)
        else "interrupted"
        if failure is None or failure.startswith("interrupted")
        else "failed"
    )
    store = RunStore()
    marker = run.path / "stored-as"
    try:
        stored = store.save(
            events,
            status,
            failure if status == "failed" else None,
            label=f"pilot run {run.id}",
            timing=Timing(seconds),
        )
    except ValueError:
        return None  # no site ever started it: nothing to keep
    except StoreError as exc:
        err.write(f"note: run {run.id} was not kept in the run store: {exc}\n")
        return None
    if marker.is_file():
        with contextlib.suppress(UnknownRun, StoreError):
            store.delete(marker.read_text().strip())
    marker.write_text(stored + "\n")
    err.write(f"kept in the run store as {stored} (python -m fedviz runs show {stored})\n")
    return stored


def merged(run: RunFolder) -> RunRecord:
    """The run as one record (`merged_events` folded)."""
    return RunRecord.of(merged_events(run))


def merged_events(run: RunFolder) -> list[Event]:
    """The run as one stream: the first part's events, then each resumed part's federated
    rounds from the round it replayed up to (its own take on that round wins)."""
    kept: list[Event] = []
    parts = [_read(p) for p in run.parts()]
    cut: list[int | None] = []
    for later in parts[1:]:
        rounds = [e.round for e in later if isinstance(e, FederatedRound)]
        cut.append(min(rounds) if rounds else None)
    cut.append(None)
    for i, events in enumerate(parts):
        first = i == 0
        limit = cut[i]
        for event in events:
            if isinstance(event, FederatedRound) and limit is not None and event.round >= limit:
                continue
            if not first and not isinstance(event, (FederatedRound, RunFinished)):
                continue
            if isinstance(event, RunFinished) and limit is not None:
                continue
            kept.append(event)
    return kept


def _read(path: Path) -> list[Event]:
    out: list[Event] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = parse(line)
        if not isinstance(item, Failure):
            out.append(item)
    return out


def stop_stale(folder: CoordinatorFolder, run: RunFolder) -> None:
    """Mark the run's earlier Flower runs stopped (one interrupted by a SuperLink restart still
    shows "running" until Flower notices)."""
    for flower_id in run.flower_runs():
        state, _ = control.status(folder.superlink, folder.path / "ca.crt", flower_id)
        if not state.startswith("finished") and state != "unreachable":
            control.stop(folder.superlink, folder.path / "ca.crt", flower_id)
