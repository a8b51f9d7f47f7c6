"""Start a whole Flower deployment on loopback, run one experiment on it, and tear it down.

Processes (each in its own process group, all ended by `Deployment.stop`, on success, on
failure and on Ctrl-C):
- one SuperLink (with the relay: Flower starts the ServerApp under it),
- one SuperNode per hospital and one for the key holder, each with its own node config
  (role, partition, its own identity key, the roster).

Everything a run writes (Flower's home, the identity keys, the app's pyproject, the event
and observer files, logs) lives in one private temporary directory, deleted at the end.
Free ports are picked per run, so several runs (e.g. two dashboard sessions) can coexist.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fedviz.config import Config
from fedviz.engines.flower import short_waits as waits
from fedviz.engines.flower.provision import node_configs
from fedviz.engines.flower.relay import FlowerRunError, Topology

ROOT = Path(__file__).resolve().parents[3]
"""The repository root: put on the Flower processes' PYTHONPATH so they import `fedviz`."""
MARKER = "FEDVIZ_FLOWER_DEPLOYMENT"
"""Environment variable every process of a deployment inherits (its value is per deployment)."""
START_TIMEOUT_S = 60.0
TASK_POLL_S = 0.05
"""Flower's supported knob for its task launchers' poll (its SuperNodes' own 3 s idle poll
has none): measured 6.1 s -> 3.3-5.4 s per hop together with the relay's 20 ms pull loop."""
STOP_GRACE_S = 3.0


def _bin(name: str) -> str:
    """A console script of this Python's environment (flower-superlink, flwr, ...)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FlowerRunError(
            f"{name} is not installed next to {sys.executable}; run scripts/setup.sh requirements-flower.txt"
        )
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


@dataclass
class Process:
    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])


@dataclass
class Deployment:
    """One loopback deployment; use as a context manager (it always stops what it started).

    fedviz's relay and nodes by default; another app (the Compare page's SecAgg+) subclasses it
    with its own `server_app`, `client_app`, `marker_name` and `node_configs`."""

    config: Config
    topology: Topology
    short_waits: bool = False
    """Shorten three of Flower's hard-coded waits (`fedviz.engines.flower.short_waits`)."""
    directory: Path = field(init=False)
    processes: list[Process] = field(default_factory=list)
    server_app: ClassVar[str] = "fedviz.engines.flower.server_app:app"
    client_app: ClassVar[str] = "fedviz.engines.flower.client_app:app"
    marker_name: ClassVar[str] = MARKER
    """The environment variable every process of such a deployment carries."""

    def __post_init__(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix="fedviz-flower-")
        self.directory = Path(self._tmp)
        os.chmod(self.directory, 0o700)
        for sub in ("home", "keys", "logs", "app", "observer"):
            (self.directory / sub).mkdir()
        self.events_file = self.directory / "events.jsonl"
        self.events_file.touch()
        self.observer_dir = self.directory / "observer"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        """The SuperLink's one HTTP port (Fleet, Control and Runtime APIs, Flower 1.42)."""
        self.marker = f"{self.marker_name}={uuid.uuid4().hex}"
        self.env = dict(os.environ)
        self.env[self.marker_name] = self.marker.split("=", 1)[1]
        self.env.update(
            PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            FLWR_HOME=str(self.directory / "home"),
            FLWR_TELEMETRY_ENABLED="0",
            # how often Flower's task launchers look for a new message to run (default 1 s)
            FLWR_SUPEREXEC_TASK_POLL_INTERVAL=str(TASK_POLL_S),
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        )
        self.supernode = _bin("flower-supernode")
        if self.short_waits:
            self.supernode = waits.install(self.directory / "bin", self.env)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, role: str, command: list[str]) -> Process:
        log = self.directory / "logs" / f"{len(self.processes)}.log"
        popen = start_logged(command, log, self.env, self.directory)
        process = Process(name, role, popen, log)
        self.processes.append(process)
        return process

    def start(self) -> None:
        """SuperLink, then every SuperNode; returns once the SuperLink listens."""
        link = self._spawn(
            "SuperLink",
            "superlink",
            [
                _bin("flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--port",
                str(self.port),
            ],
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(self.port):
            if link.popen.poll() is not None:
                raise FlowerRunError(f"the SuperLink exited at start: {link.tail()}")
            if time.monotonic() > deadline:
                raise FlowerRunError(f"the SuperLink did not listen within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)
        for name, (role, node_config) in self.node_configs().items():
            self._spawn(
                name,
                role,
                [
                    self.supernode,
                    "--insecure",
                    "--superlink",
                    self.address,
                    "--port",
                    str(free_port()),
                    "--node-config",
                    node_config,
                ],
            )
        (self.directory / "home" / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "{self.address}"\ninsecure = true\n'
        )

    def node_configs(self) -> dict[str, tuple[str, str]]:
        """{party: (role, its --node-config)}: every party's identity and the roster made here."""
        sites = node_configs(
            self.directory / "keys", self.config.hospitals, self.config.site_paths, self.config.target or ""
        )
        return {
            name: (
                "key holder" if settings["role"] == "key-holder" else "hospital",
                " ".join(f"{k}={json.dumps(v)}" for k, v in settings.items()),
            )
            for name, settings in sites.items()
        }

    def settings(self) -> dict[str, str | int | float]:
        """The run config the app is submitted with."""
        return {
            "fedviz-config": json.dumps(self.config.to_dict()),
            "topology": self.topology,
            "events-file": str(self.events_file),
            "observer-dir": str(self.observer_dir),
            "nodes": self.config.hospitals + 1,
        }

    def submit(self) -> int:
        """Start the app on the deployment; its Flower run id."""
        settings = self.settings()
        config_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        (self.directory / "app" / "pyproject.toml").write_text(
            "[build-system]\n"
            'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            '[project]\nname = "fedviz-flower"\nversion = "1.0.0"\ndependencies = []\n\n'
            '[tool.hatch.build.targets.wheel]\npackages = ["."]\n\n'
            '[tool.flwr.app]\npublisher = "fedviz"\n\n'
            "[tool.flwr.app.components]\n"
            f'serverapp = "{self.server_app}"\n'
            f'clientapp = "{self.client_app}"\n\n'
            f"[tool.flwr.app.config]\n{config_lines}\n"
        )
        done = subprocess.run(
            [_bin("flwr"), "run", str(self.directory / "app"), "local", "--format", "json"],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.directory,
            timeout=START_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        try:
            answer = json.loads(done.stdout)
        except json.JSONDecodeError:
            answer = {}
        if not answer.get("success"):
            detail = (done.stdout + done.stderr).strip().splitlines()
            raise FlowerRunError(f"Flower refused the run: {' '.join(detail[-3:]) or 'no answer'}")
        return int(answer["run-id"])

    def status(self, run_id: int) -> str:
        """Flower's status of the run ("running", "finished:completed", "finished:failed", ...)."""
        from fedviz.engines.flower import control

        return control.status(self.address, None, run_id)[0]

    def dead(self) -> Process | None:
        """The first started process that has exited, if any."""
        return next((p for p in self.processes if p.popen.poll() is not None), None)

    def lines(self) -> Iterator[str]:
        """Lines appended to the events file so far, then new ones as they come (never ends)."""
        with open(self.events_file, encoding="utf-8") as f:
            buffer = ""
            while True:
                chunk = f.readline()
                if not chunk:
                    yield ""
                    continue
                buffer += chunk
                if buffer.endswith("\n"):
                    yield buffer.rstrip("\n")
                    buffer = ""

    def pids(self) -> list[int]:
        """Every live process of this deployment: the ones it started and all they started
        (found by the marker in their environment, so also those Flower detached into their
        own sessions or that were re-parented when their parent died)."""
        return marked(self.marker)

    def stop(self) -> None:
        """End every process of the deployment (SIGTERM, then SIGKILL after a grace) and
        remove its files. Afterwards none of its processes is alive."""
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while (pids := self.pids()) and time.monotonic() < deadline:
            _reap(self.processes)
            time.sleep(0.05)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self.pids() and time.monotonic() < deadline:
            _reap(self.processes)
            time.sleep(0.05)
        _reap(self.processes)
        shutil.rmtree(self._tmp, ignore_errors=True)


def start_logged(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """A process of a deployment: its output appended to `log`, no stdin, its own session (so
    a terminal's Ctrl-C reaches only its owner, which stops it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def _reap(processes: list[Process]) -> None:
    """Collect the exit status of our direct children (no zombies left behind)."""
    for p in processes:
        p.popen.poll()


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def marked(marker: str = MARKER) -> list[int]:
    """Live processes whose environment holds `marker` ("NAME=value" exactly, or "NAME" for
    any value): how a deployment, and a test, finds every process a run started."""
    exact = "=" in marker
    needle = marker.encode() if exact else marker.encode() + b"="
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            items = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        hit = needle in items if exact else any(item.startswith(needle) for item in items)
        if hit and _alive(int(entry.name)):
            out.append(int(entry.name))
    return out
