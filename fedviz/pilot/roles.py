"""The role commands: `coordinator FOLDER` and `site FOLDER`, each in the foreground until
SIGTERM or Ctrl-C, which stop everything the role started.

The coordinator runs Flower's SuperLink on its loopback only (TLS, node authentication with
the registered keys, a database in its folder) and the Fleet gateway where sites connect
(`fedviz.pilot.gateway`): the Control API never faces the sites. It registers every node
key `pilot init` or `pilot enrol` put in its folder.

A site runs one SuperNode: TLS checked against the pilot's CA, its own node key, and only app
bundles signed by the coordinator's key (`--trusted-entities`). A hospital's SuperNode is
told its own CSV, which it alone reads; the command reads the file first with the same checks
as `--data`, so a bad file is refused before anything starts.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from fedviz.config import MIN_PATIENTS_PER_HOSPITAL
from fedviz.crypto.sealing import Identity
from fedviz.engines.flower import short_waits as waits
from fedviz.errors import DataError
from fedviz.pilot.folders import CoordinatorFolder, PilotError, SiteFolder, party_name, split_address
from fedviz.pilot.processes import Children, Stopped, console, stop_on_signals

START_TIMEOUT_S = 60.0
NOT_ADMITTED = 305
"""A SuperNode's exit code when the SuperLink refuses to activate it."""
ADMIT_PATIENCE_S = 150.0
"""How long a site keeps asking to be admitted: Flower lets a dead connection of the same node
go after 2 x 30 s without heartbeats."""
ADMIT_RETRY_S = 10.0
EXITS = {
    305: "the coordinator did not admit this site's node key: has it been enrolled (`pilot enrol`) and "
    "the coordinator restarted or told (`pilot enrol` while it runs)?",
    303: "the node key needs TLS (this folder's ca.crt)",
}


def _listening(host: str, port: int, ca: Path) -> bool:
    """A TLS server on host:port whose certificate the pilot's CA vouches for."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection((host, port), 0.5) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- coordinator


def flwr_connection(folder: CoordinatorFolder) -> Path:
    """`flwr`'s own config for this coordinator: connection "pilot" to the loopback SuperLink,
    checked against the pilot's CA (absolute path, as Flower needs)."""
    home = folder.path / "flwr-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "pilot"\n\n[superlink.pilot]\n'
        f'address = "{folder.superlink}"\nroot-certificates = "{folder.path / "ca.crt"}"\ninsecure = false\n'
    )
    return home


def flwr(folder: CoordinatorFolder, *args: str, timeout: float = 60.0) -> dict[str, object]:
    """A `flwr` command on the coordinator's own connection; its JSON answer."""
    home = flwr_connection(folder)
    children = Children(folder.path / "logs", home)
    done = subprocess.run(
        [console("flwr"), *args, "--format", "json"],
        capture_output=True,
        text=True,
        env=children.env,
        cwd=folder.path,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    try:
        answer = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if not answer.get("success", False):
        answer.setdefault("error-message", " ".join((done.stdout + done.stderr).split())[-300:])
    return answer


def registered(folder: CoordinatorFolder) -> dict[str, int]:
    """{party folder: Flower node id} of the node keys registered so far."""
    path = folder.path / "state" / "nodes.json"
    return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def register_nodes(folder: CoordinatorFolder, say: TextIO) -> dict[str, int]:
    """Register every node key in `nodes/` not yet known to the SuperLink."""
    done = registered(folder)
    for pub in sorted((folder.path / "nodes").glob("*.pub")):
        party = pub.stem
        if party in done:
            continue
        answer = flwr(folder, "supernode", "register", str(pub), "pilot")
        if not answer.get("success"):
            raise PilotError(
                f"coordinator: Flower refused {party}'s node key: {answer.get('error-message')}", failed=True
            )
        done[party] = int(str(answer["node-id"]))
        say.write(f"registered {party_name(party)} ({party})'s node key: node {done[party]}\n")
    (folder.path / "state" / "nodes.json").write_text(json.dumps(done, indent=1) + "\n")
    return done


def coordinator(path: Path, say: TextIO = sys.stdout, short_waits: bool = False) -> int:
    folder = CoordinatorFolder.open(path)
    folder.need("ca.crt", "server.crt", "server.key", "publisher.key", "nodes")
    folder.roster()  # every party enrolled
    (folder.path / "state").mkdir(exist_ok=True)
    home = flwr_connection(folder)
    children = Children(folder.path / "logs", home)
    if short_waits:  # the relay (the ServerApp, started under the SuperLink) retries pulls sooner
        children.extra[waits.ENV] = "1"
    link_host, link_port = split_address(folder.superlink)
    listen_host, listen_port = split_address(folder.listen)
    stop_on_signals()
    try:
        link = children.spawn(
            "superlink",
            [
                sys.executable,
                "-m",
                "fedviz.pilot.link",
                "--ssl-ca-certfile",
                "ca.crt",
                "--ssl-certfile",
                "server.crt",
                "--ssl-keyfile",
                "server.key",
                "--host",
                link_host,
                "--port",
                str(link_port),
                "--database",
                str(folder.path / "state" / "flower.db"),
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
            ],
            folder.path,
        )
        _wait_up(children, link, link_host, link_port, folder.path / "ca.crt", "the SuperLink")
        nodes = register_nodes(folder, say)
        gateway = children.spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "fedviz.pilot.gateway",
                folder.listen,
                folder.superlink,
                "server.crt",
                "server.key",
                "ca.crt",
            ],
            folder.path,
        )
        probe = "127.0.0.1" if listen_host in ("0.0.0.0", "::") else listen_host
        _wait_up(children, gateway, probe, listen_port, folder.path / "ca.crt", "the Fleet gateway")
        say.write(
            f"coordinator up: sites connect to {folder.address} (HTTPS, Flower's Fleet API only, listening on "
            f"{folder.listen}); the SuperLink and its Control API stay on {folder.superlink}, this host only; "
            f"{len(nodes)} node keys registered ({', '.join(sorted(nodes))}). Ctrl-C or SIGTERM stops it.\n"
        )
        say.flush()
        while True:
            dead = children.dead()
            if dead is not None:
                raise PilotError(
                    f"coordinator: {dead.name} exited (code {dead.popen.returncode}): {dead.tail()}",
                    failed=True,
                )
            time.sleep(0.2)
    except Stopped:
        say.write("coordinator stopped\n")
        return 0
    finally:
        children.stop()


def _wait_up(children: Children, child: object, host: str, port: int, ca: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(host, port, ca):
        dead = children.dead()
        if dead is not None:
            raise PilotError(f"coordinator: {what} exited at start: {dead.tail()}", failed=True)
        if time.monotonic() > deadline:
            raise PilotError(
                f"coordinator: {what} did not answer on {host}:{port} within {START_TIMEOUT_S:g} s",
                failed=True,
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------- sites


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_site(site: SiteFolder) -> None:
    """The folder has this site's keys, the roster and the trust files, and its identity is
    the one the roster lists for it."""
    site.need("ca.crt", "trusted-entities.yaml", "identity.key", "node.key", "roster.json")
    try:
        roster = json.loads((site.path / "roster.json").read_text())
    except ValueError:
        raise PilotError(f"{site.who}: roster.json is not JSON: copy the coordinator's again") from None
    try:
        identity = Identity.load(site.name, str(site.path / "identity.key"))
    except (OSError, ValueError) as exc:
        raise PilotError(f"{site.who}: identity.key cannot be read ({exc})") from None
    if roster.get(site.name) != identity.public.hex():
        raise PilotError(
            f"{site.who}: roster.json lists another identity key for {site.name} than this folder's identity.key"
            " (an old roster, or keys made again): enrol this site's keys and copy the new roster here"
        )
    if "Server" not in roster:
        raise PilotError(
            f"{site.who}: roster.json lacks the key holder (Server): copy the coordinator's complete roster"
        )


def site_config(
    site: SiteFolder, data: str | None, target: str | None, test_fraction: float
) -> dict[str, object]:
    """The SuperNode's --node-config for this site, after checking its data as `--data` would."""
    config: dict[str, object] = {
        "role": site.role,
        "identity": str(site.path / "identity.key"),
        "roster": str(site.path / "roster.json"),
    }
    if site.role == "key-holder":
        if data or target:
            raise PilotError(
                f"{site.who}: the key holder holds no data; start it without --data and --target"
            )
        return config
    config["partition-id"] = int(site.party.split("-")[1]) - 1
    if not data or not target:
        raise PilotError(f"{site.who}: a hospital's site needs its own data: --data FILE.csv --target COLUMN")
    from fedviz.data.sites import load_site

    try:
        loaded = load_site(data, target, test_fraction, 0)
    except DataError as exc:
        raise PilotError(f"{site.who}: {exc.plain.rstrip('.')}") from None
    if loaded.X.shape[0] < MIN_PATIENTS_PER_HOSPITAL:  # load_site refuses this already
        raise PilotError(f"{site.who}: too few rows")
    config.update(data=str(Path(data).resolve()), target=target, **{"test-fraction": test_fraction})
    return config


def _node_config_text(config: dict[str, object]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in config.items())


def site(
    path: Path,
    data: str | None = None,
    target: str | None = None,
    test_fraction: float = 0.2,
    say: TextIO = sys.stdout,
    short_waits: bool = False,
) -> int:
    folder = SiteFolder.open(path)
    check_site(folder)
    node_config = site_config(folder, data, target, test_fraction)
    home = folder.path / "flwr-home"
    home.mkdir(exist_ok=True)
    children = Children(folder.path / "logs", home)
    supernode = console("flower-supernode")
    if short_waits:
        path_env = {"PATH": children.env["PATH"]}
        supernode = waits.install(folder.path / "short-waits", path_env)
        children.extra.update(path_env)
    command = [
        supernode,
        "--root-certificates",
        str(folder.path / "ca.crt"),
        "--superlink",
        folder.coordinator,
        "--auth-supernode-private-key",
        str(folder.path / "node.key"),
        "--trusted-entities",
        str(folder.path / "trusted-entities.yaml"),
        "--port",
        str(_free_port()),
        "--node-config",
        _node_config_text(node_config),
    ]
    stop_on_signals()
    try:
        what = (
            f"its own {Path(str(node_config['data'])).name} (target {target!r}, "
            f"{test_fraction:g} of its rows held out for its own test)"
            if folder.role == "hospital"
            else "no data (it makes the run's key pair and decrypts one total per round)"
        )
        say.write(
            f"{folder.who}: SuperNode connecting to {folder.coordinator} with {what}; it runs only app "
            "bundles signed by the coordinator's key. Ctrl-C or SIGTERM stops it.\n"
        )
        say.flush()
        refused_since: float | None = None
        while True:
            log = folder.path / "logs" / "supernode.log"
            before = log.stat().st_size if log.exists() else 0
            node = children.spawn("supernode", command, folder.path)
            started = time.monotonic()
            while node.popen.poll() is None:
                time.sleep(0.2)
            code = node.popen.returncode
            with open(log, "rb") as f:
                f.seek(before)
                said = f.read().decode(errors="replace")
            if f"Exit Code: {NOT_ADMITTED}" in said:  # Flower prints its code, then exits with 1
                code = NOT_ADMITTED
            # Refused at once: the coordinator may still hold this site's previous connection
            # (it lets one go after about a minute without heartbeats): try again for a while.
            if code == NOT_ADMITTED and time.monotonic() - started < 30:
                refused_since = refused_since or started
                if time.monotonic() - refused_since < ADMIT_PATIENCE_S:
                    say.write(
                        f"{folder.who}: the coordinator did not admit this node yet (it may still hold this "
                        f"site's previous connection); trying again in {ADMIT_RETRY_S:g} s\n"
                    )
                    say.flush()
                    time.sleep(ADMIT_RETRY_S)
                    continue
            why = EXITS.get(code, node.tail())
            raise PilotError(f"{folder.who}: the SuperNode exited (code {code}): {why}", failed=True)
    except Stopped:
        say.write(f"{folder.who}: stopped\n")
        return 0
    finally:
        children.stop()
