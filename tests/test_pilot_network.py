"""The README's pilot, run as written across five hosts: each party in its own network
namespace (its own address, `coordinator` resolving to the coordinator's), its own home
with its own folder and its own CSV. Then what the pilot must survive or refuse: a site's
`flwr` aimed at the Control API, an unsigned app bundle, a hospital killed mid-run, the
coordinator restarted mid-run (and `pilot resume`). Nothing may be left running."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_until
from netns import Host, Network, available

from fedviz.data import diabetes
from fedviz.engines.flower.launcher import marked
from fedviz.pilot.processes import MARKER
from fedviz.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
HOSTS = {
    "the coordinator": "coordinator",
    "the key holder": "key-holder",
    "hospital 1": "hospital-1",
    "hospital 2": "hospital-2",
    "hospital 3": "hospital-3",
}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def readme_steps() -> list[tuple[str, str]]:
    """(host, command) for every command of the README's "Run a pilot", in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Run a pilot")
    section = text[start : text.index("\n## ", start + 5)]
    steps = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        host = ""
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("# on "):
                host = HOSTS[line[5:]]
            elif line and not line.startswith("#"):
                assert host, f"a README command with no host: {line}"
                steps.append((host, line))
    return steps


def site_files(count: int = 3) -> list[str]:
    """Each hospital's own patients, in their own units (different rows per site)."""
    X, y = diabetes.load_raw()
    order = np.random.RandomState(5).permutation(len(y))
    header = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression"
    out = []
    for k, rows in enumerate(np.array_split(order[: 90 * count + 30], count)):
        rows = rows[: 80 + 10 * k]
        out.append(header + "\n" + "\n".join(",".join(f"{v:g}" for v in (*X[i], y[i])) for i in rows) + "\n")
    return out


class Party:
    """A host's home with this checkout as `fedviz`, and its long-running role."""

    def __init__(self, host: Host, home: Path) -> None:
        self.host, self.home = host, home
        self.role: subprocess.Popen[str] | None = None
        self.log = home / "role.log"

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.host.run(
            shlex.split(command), timeout=timeout, cwd=self.home, capture_output=True, text=True
        )

    def start(self, command: str, ready: str, timeout: float = 120) -> None:
        with open(self.log, "w") as out:
            self.role = self.host.popen(
                shlex.split(command), cwd=self.home, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        assert wait_until(lambda: ready in self.log.read_text() or self.role.poll() is not None, timeout), (
            self.log.read_text()
        )
        assert self.role.poll() is None, self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, as systemd stops a service: the role stops what it started and exits 0."""
        assert self.role is not None
        os.killpg(self.role.pid, signal.SIGTERM)
        code = self.role.wait(60)
        self.role = None
        return code


def in_process(home: Path, rounds: int) -> dict[str, object]:
    files = [str(home / f"hospital-{k}" / "patients.csv") for k in (1, 2, 3)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedviz",
            "--site-data",
            *files,
            "--target",
            "progression",
            "--rounds",
            str(rounds),
            "--key-length",
            "1024",
            "--learning-rate",
            "0.001",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def summary(coordinator: Party, run: str) -> dict[str, object]:
    return json.loads(
        (coordinator.home / "pilot" / "coordinator" / "runs" / run / "summary.json").read_text()
    )


def runs(coordinator: Party) -> list[str]:
    return sorted(p.name for p in (coordinator.home / "pilot" / "coordinator" / "runs").iterdir())


def flower_status(coordinator: Party, run: str) -> str:
    """`flwr ls` as the coordinator's operator would run it: the run's Flower status."""
    folder = coordinator.home / "pilot" / "coordinator"
    (flower_id,) = json.loads((folder / "runs" / run / "flower-runs.json").read_text())[-1:]
    done = coordinator.host.run(
        [
            str(Path(sys.executable).parent / "flwr"),
            "ls",
            "pilot",
            "--run-id",
            str(flower_id),
            "--format",
            "json",
        ],
        timeout=60,
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "FLWR_HOME": str(folder / "flwr-home"), "FLWR_TELEMETRY_ENABLED": "0"},
    )
    return str(json.loads(done.stdout)["runs"][0]["status"])


def test_the_readmes_pilot_across_five_hosts(tmp_path: Path) -> None:
    why = available()
    assert why is None, f"network namespaces are needed for this test: {why}"
    Network.cleanup_stale()
    steps = readme_steps()
    assert [c.split()[1:3] for _, c in steps if "fedviz/scripts/fedviz" in c][:2] == [
        ["pilot", "init"],
        ["site", "keys"],
    ]
    with Network() as net:
        parties: dict[str, Party] = {}
        for name in HOSTS.values():
            home = tmp_path / name
            home.mkdir()
            (home / "fedviz").symlink_to(ROOT)
            parties[name] = Party(net.add_host(name), home)
        coordinator = parties["coordinator"]
        pilot = coordinator.home / "pilot"
        try:
            _readme(steps, parties, pilot)
            _control_api_is_out_of_reach(parties)
            _unsigned_bundles_are_refused(parties)
            _a_killed_hospital_fails_the_run(parties)
            _a_restarted_coordinator_resumes(parties, steps)
            for party in parties.values():
                if party.role is not None:
                    assert party.stop() == 0, party.log.read_text()[-2000:]
                    assert not party.host.pids(), f"{party.host.name} left processes behind"
        finally:
            for party in parties.values():
                if party.role is not None and party.role.poll() is None:
                    os.killpg(party.role.pid, signal.SIGKILL)
    assert not marked(MARKER), "a role's processes outlived the test"


def _readme(steps: list[tuple[str, str]], parties: dict[str, Party], pilot: Path) -> None:
    """Every command as written, on its host; the copies the README says to make between them."""
    coordinator = parties["coordinator"]
    sent = enrolled = False
    for host, command in steps:
        party = parties[host]
        words = command.split()
        if "resume" in words:
            continue  # the README's resume: after an interruption (below)
        if words[1:3] == ["site", "keys"] and not sent:  # "send pilot/<site> to its host"
            for name, site in parties.items():
                if name != "coordinator":
                    shutil.copytree(pilot / name, site.home / name)
            for k, text in enumerate(site_files(), start=1):
                (parties[f"hospital-{k}"].home / "patients.csv").write_text(text)
            sent = True
        if words[1:3] == ["pilot", "enrol"]:  # each site sent back its public keys file
            for name, site in parties.items():
                if name != "coordinator":
                    shutil.copy(site.home / name / f"{name}.keys.json", coordinator.home)
        if words[1:2] == ["coordinator"]:
            if not enrolled:  # "send roster.json into every site's folder"
                for name, site in parties.items():
                    if name != "coordinator":
                        shutil.copy(pilot / "coordinator" / "roster.json", site.home / name)
                enrolled = True
            party.start(command, "coordinator up")
            continue
        if words[1:2] == ["site"] and words[2] != "keys":
            party.start(command, "SuperNode connecting")
            continue
        done = party.run(command)
        assert done.returncode == 0, (host, command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        if words[1:3] == ["pilot", "run"]:
            (run,) = runs(coordinator)
            got, want = summary(coordinator, run), in_process(coordinator.home.parent, rounds=2)
            assert got["status"] == "finished"
            assert got["federated_score"] == want["federated_score"]  # digit for digit
            assert got["local_score"] == want["local_score"]
            assert got["patients"] == want["patients"] == [64, 72, 80]  # each site's own training rows
            assert got["data"]["rows_per_hospital"] == [80, 90, 100]  # what each site loaded
            assert got["data"]["test_rows_per_hospital"] == [16, 18, 20]
            assert "Test MSE (each hospital on its own held-out rows: 16 / 18 / 20" in done.stdout
            assert flower_status(coordinator, run) == "finished:completed"
            kept = [r for r in RunStore().list() if r.label == f"pilot run {run}"]  # kept by default
            assert [r.status for r in kept] == [
                "finished"
            ] and f"kept in the run store as {kept[0].id}" in done.stderr
            assert kept[0].summary["federated_score"] == got["federated_score"]
    for name, site in parties.items():  # a site's secrets stayed home; the coordinator has none
        if name != "coordinator":
            assert (site.home / name / "identity.key").stat().st_mode & 0o777 == 0o600
            assert not (pilot / name / "identity.key").exists()


def _control_api_is_out_of_reach(parties: dict[str, Party]) -> None:
    """From a hospital, with the pilot's CA: the gateway answers the Fleet API only, and the
    SuperLink's own port does not answer at all."""
    hospital = parties["hospital-1"]
    probe = (
        "import httpx, sys\n"
        "ca = 'hospital-1/ca.crt'\n"
        "for url in sys.argv[1:]:\n"
        "    try:\n"
        "        r = httpx.post(url, verify=ca, content=b'', headers={'content-type': 'application/protobuf'}, timeout=5)\n"
        "        print(url, r.status_code)\n"
        "    except httpx.HTTPError as exc:\n"
        "        print(url, type(exc).__name__)\n"
    )
    done = hospital.host.run(
        [
            sys.executable,
            "-c",
            probe,
            "https://coordinator:9443/v1/control/list-runs",
            "https://coordinator:9443/v1/control/register-node",
            "https://coordinator:9443/v1/runtime/acquire-task",
            "https://coordinator:9092/v1/control/list-runs",
            "https://coordinator:9443/v1/fleet/pull-messages",
        ],
        timeout=60,
        cwd=hospital.home,
        capture_output=True,
        text=True,
    )
    answers = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
    assert answers["https://coordinator:9443/v1/control/list-runs"] == "404", done
    assert answers["https://coordinator:9443/v1/control/register-node"] == "404"
    assert answers["https://coordinator:9443/v1/runtime/acquire-task"] == "404"
    assert answers["https://coordinator:9092/v1/control/list-runs"] == "ConnectError"  # loopback only
    assert answers["https://coordinator:9443/v1/fleet/pull-messages"] not in (
        "404",
        "ConnectError",
    )  # the Fleet API
    home = hospital.home / "flwr-probe"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "c"\n\n[superlink.c]\naddress = "coordinator:9443"\n'
        f'root-certificates = "{hospital.home / "hospital-1" / "ca.crt"}"\n'
    )
    done = hospital.host.run(
        [str(Path(sys.executable).parent / "flwr"), "ls", "c", "--format", "json"],
        timeout=60,
        cwd=hospital.home,
        capture_output=True,
        text=True,
        env={**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0"},
    )
    assert '"success": true' not in done.stdout and "run-id" not in done.stdout, done.stdout


UNSIGNED = """
import sys
from pathlib import Path
from fedviz.config import Config
from fedviz.pilot import bundle, runner
from fedviz.pilot.folders import CoordinatorFolder

folder = CoordinatorFolder.open(Path("pilot/coordinator"))
config = Config(hospitals=3, key_length=1024, rounds=1, learning_rate=0.001, dataset="sites")
run = runner.new_run(folder, config, "ring")
bundle.sign = lambda fab, key, signed_at=None: {}  # an app bundle nobody signed
sys.exit(runner.execute(folder, run, False, sys.stdout, sys.stderr, False, False))
"""


def _unsigned_bundles_are_refused(parties: dict[str, Party]) -> None:
    coordinator = parties["coordinator"]
    done = coordinator.host.run(
        [sys.executable, "-c", UNSIGNED],
        timeout=300,
        cwd=coordinator.home,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "refused the app bundle" in last, done.stderr
    assert flower_status(coordinator, runs(coordinator)[-1]) == "finished:failed"
    for k in (1, 2, 3):  # no node ran a line of it
        log = (parties[f"hospital-{k}"].home / f"hospital-{k}" / "logs" / "supernode.log").read_text()
        assert "could not be verified" in log


def started_run(coordinator: Party, log: Path, extra: str = "") -> subprocess.Popen[str]:
    """A 2-round pilot run in the background, once it has finished its first round."""
    command = (
        "fedviz/scripts/fedviz pilot run pilot/coordinator --rounds 2 --key-length 1024 --learning-rate 0.001"
    )
    with open(log, "w") as err:
        run = coordinator.host.popen(
            shlex.split(f"{command} {extra}"),
            cwd=coordinator.home,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    assert wait_until(lambda: "round 1/2" in log.read_text() or run.poll() is not None, 300), log.read_text()
    return run


def _a_killed_hospital_fails_the_run(parties: dict[str, Party]) -> None:
    coordinator, victim = parties["coordinator"], parties["hospital-2"]
    log = coordinator.home / "killed.log"
    run = started_run(coordinator, log, "--patience 20")
    victim.host.kill_all()  # SIGKILL: the site command, its SuperNode, everything on that host
    victim.role = None
    assert run.wait(180) == 1, log.read_text()
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("error: Hospital 2"), log.read_text()
    assert "Traceback" not in log.read_text()
    assert flower_status(coordinator, runs(coordinator)[-1]) == "finished:failed"
    victim.start(
        "fedviz/scripts/fedviz site hospital-2 --data patients.csv --target progression",
        "SuperNode connecting",
    )


def _a_restarted_coordinator_resumes(parties: dict[str, Party], steps: list[tuple[str, str]]) -> None:
    coordinator = parties["coordinator"]
    start = next(c for h, c in steps if h == "coordinator" and c.split()[1:2] == ["coordinator"])
    resume = next(c for _, c in steps if "resume" in c.split())
    log = coordinator.home / "restarted.log"
    run = started_run(coordinator, log)
    assert coordinator.stop() == 0  # the SuperLink goes down mid-run
    assert run.wait(120) == 1
    assert "pilot resume" in log.read_text().strip().splitlines()[-1], log.read_text()
    interrupted = runs(coordinator)[-1]
    coordinator.start(start, "coordinator up")
    done = coordinator.run(resume, timeout=600)
    assert done.returncode == 0, done.stderr
    got, want = summary(coordinator, interrupted), in_process(coordinator.home.parent, rounds=2)
    assert got["federated_score"] == want["federated_score"]  # as if never interrupted
    assert got["rounds_completed"] == {"local": 2, "federated": 2}
    kept = [r for r in RunStore().list() if r.label == f"pilot run {interrupted}"]
    assert [r.status for r in kept] == ["finished"]  # the resumed part replaced the interrupted one
    assert kept[0].summary["federated_score"] == want["federated_score"]
