"""The Flower engine for real: a loopback deployment (SuperLink, one SuperNode per hospital
and one for the key holder, the relay as Flower's ServerApp), driven through the CLI.

Slow by nature (Flower's polling and a process per message): one small run for equality
with the in-process engine, one run where a hospital dies mid-run. Both check that no
process of the deployment is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import alive, default_sigint, of_type, sigint_ignored, wait_until

from fedviz.config import Config
from fedviz.engines.flower.launcher import MARKER, marked
from fedviz.engines.inprocess import run
from fedviz.eventlog import from_line
from fedviz.events import (
    Exchange,
    FederatedRound,
    HospitalGradients,
    LocalRound,
    PartiesStarted,
    RingHop,
    RunFinished,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Config(key_length=1024, rounds=1)
"""One round keeps the suite short: every node still carries its state from join through its
hop to the final step (a round's start with the previous broadcast is covered, round after
round, by the same nodes through the direct transport in test_flower_logic.py)."""


def cli(*args: str) -> subprocess.Popen[str]:
    with sigint_ignored():  # as when .ci/run is a background job of a non-interactive shell
        return subprocess.Popen(
            [sys.executable, "-m", "fedviz", "--engine", "flower", "--key-length", "1024", "--events", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=default_sigint,  # Ctrl-C must reach it whatever the suite's shell ignores
        )


def leftovers() -> list[int]:
    return marked(MARKER)


@pytest.fixture(autouse=True)
def nothing_left_behind():
    assert leftovers() == [], "a previous deployment is still running"
    yield
    assert wait_until(lambda: not leftovers(), 10), f"processes left: {leftovers()}"


@pytest.mark.timeout(300)
def test_a_ring_of_separate_processes_gives_the_in_process_numbers():
    proc = cli("--rounds", str(CONFIG.rounds), "--json")
    out, err = proc.communicate(timeout=280)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    seen = [from_line(line) for line in lines[:-1]]
    summary = json.loads(lines[-1])
    theirs = list(run(CONFIG, pool=None))
    assert of_type(seen, LocalRound) == of_type(theirs, LocalRound)
    ours_rounds, their_rounds = of_type(seen, FederatedRound), of_type(theirs, FederatedRound)
    assert [r.mse for r in ours_rounds] == [r.mse for r in their_rounds]
    assert [r.average_gradient for r in ours_rounds] == [r.average_gradient for r in their_rounds]
    assert of_type(seen, HospitalGradients) == of_type(theirs, HospitalGradients)
    # the ciphertexts the hospitals opened are real hops: same shape as in-process, fresh values
    hops = of_type(seen, RingHop)
    assert [(h.round, h.hop, h.sender, h.receiver, h.contributions) for h in hops] == [
        (h.round, h.hop, h.sender, h.receiver, h.contributions) for h in of_type(theirs, RingHop)
    ]
    assert all(len(h.ciphertexts) == 1 and h.ciphertexts[0].value > 0 for h in hops)
    # every party is its own process: SuperLink, relay, 3 hospitals, key holder
    (parties,) = of_type(seen, PartiesStarted)
    pids = {p.pid for p in parties.parties}
    assert len(pids) == 6 and os.getpid() not in pids
    assert [p.role for p in parties.parties] == [
        "superlink",
        "relay",
        "hospital",
        "hospital",
        "hospital",
        "key holder",
    ]
    assert not any(alive(pid) for pid in pids)
    # the relay carried sealed bytes on every ring hop, never the ciphertext itself
    for exchange in of_type(seen, Exchange):
        if exchange.step.startswith("hop"):
            hop = next(h for h in hops if h.round == exchange.round and f"hop {h.hop}" == exchange.step)
            assert (
                exchange.sealed
                and hop.ciphertexts[0].value.to_bytes(256, "big").hex()[:32] != exchange.preview
            )
    assert summary["status"] == "finished" and summary["engine"] == "flower (ring)"
    assert [p["name"] for p in summary["parties"]][2:] == ["Hospital 1", "Hospital 2", "Hospital 3", "Server"]
    assert of_type(seen, RunFinished)[0].federated_mse == of_type(theirs, RunFinished)[0].federated_mse


@pytest.mark.timeout(240)
def test_a_hospital_that_dies_ends_the_run_naming_it():
    proc = cli("--rounds", "3")
    assert proc.stdout is not None
    victim = None
    started = None
    for line in proc.stdout:
        event = from_line(line)
        if isinstance(event, PartiesStarted):
            victim = next(p for p in event.parties if p.name == "Hospital 2")
        if isinstance(event, Exchange) and event.step == "hop 1":
            assert victim is not None
            os.kill(victim.pid, signal.SIGKILL)
            started = time.monotonic()
            break
    assert started is not None
    _, err = proc.communicate(timeout=120)
    ended = time.monotonic() - started
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: Hospital 2") and "exited" in err
    assert ended < 60, f"the run took {ended:.0f} s to notice"
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_ctrl_c_stops_every_process_of_the_deployment():
    """Ctrl-C while the deployment is still starting (the SuperLink up, nodes coming up)."""
    proc = cli("--rounds", "5", "--json")
    assert wait_until(lambda: len(leftovers()) >= 3, 60), "the deployment should be starting"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "interrupted"


@pytest.mark.timeout(120)
def test_a_dashboard_job_on_flower_stops_its_deployment_when_cancelled():
    from fedviz.engines.background import Job

    seen: list = []
    job = Job(CONFIG, [seen.append], engine="flower", topology="star").start()
    assert wait_until(lambda: len(leftovers()) >= 3, 60), "the deployment should be starting"
    job.cancel("Stop was pressed")
    assert job.join(20)
    assert job.status == "cancelled" and job.server is None and seen == []
    assert not leftovers()
