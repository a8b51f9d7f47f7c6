"""The pilot's folders: one per party, each holding everything that party needs and nothing it
must not have, with a config file a person can read.

    DIR/coordinator   pilot.toml, ca.crt, ca.key, server.crt, server.key, publisher.key(.pub),
                      roster.json, nodes/<party>.pub; later state/ (Flower's database),
                      flwr-home/, runs/<id>/ (events, broadcasts, summary)
    DIR/key-holder    site.toml, ca.crt, trusted-entities.yaml, roster.json,
    DIR/hospital-K    identity.key, node.key, node.key.pub

Invariants: a site folder never holds another party's private key; the coordinator's folder
never holds a site's private key; every private key file is mode 0600.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedviz.errors import FedvizError
from fedviz.protocol import SERVER_NAME, hospital_name

COORDINATOR = "coordinator"
KEY_HOLDER = "key-holder"
DEFAULT_PORT = 9443
"""The Fleet port sites connect to (HTTPS) when `--coordinator` names none."""
SUPERLINK_PORT = 9092
"""The SuperLink's own port, on the coordinator's loopback only."""


class PilotError(FedvizError):
    """A pilot command cannot go on; the message names the party, the file or the cause.
    `failed`: it went wrong while running (exit 1), not bad input before anything ran (exit 2)."""

    def __init__(self, message: str, failed: bool = False) -> None:
        super().__init__(message)
        self.failed = failed


def hospital_folder(k: int) -> str:
    """The folder name of hospital k (1-based)."""
    return f"hospital-{k}"


def party_name(folder: str) -> str:
    """The protocol's name of the party a folder belongs to ("Hospital 2", "Server")."""
    if folder == KEY_HOLDER:
        return SERVER_NAME
    if folder.startswith("hospital-") and folder[9:].isdigit():
        return hospital_name(int(folder[9:]) - 1)
    raise PilotError(f"{folder!r} is not a party's folder (key-holder or hospital-K)")


def parties(hospitals: int) -> list[str]:
    return [*(hospital_folder(k) for k in range(1, hospitals + 1)), KEY_HOLDER]


def split_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets) into host and port, refused in words."""
    host, port = text, default_port
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise PilotError(
                f"--coordinator {text!r}: an IPv6 address goes in brackets, e.g. [2001:db8::1]:9443"
            )
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            port = _port(text, rest.lstrip(":"))
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(text, port_text)
    if not host or any(c.isspace() for c in host):
        raise PilotError(
            f"--coordinator {text!r}: give the host sites reach it by, e.g. coordinator.example:9443"
        )
    return host, port


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise PilotError(f"--coordinator {text!r}: the port must be a number from 1 to 65535")
    return int(port_text)


def joined(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_toml(path: Path, comment: str, sections: dict[str, dict[str, Any]]) -> None:
    """A small TOML file (strings, integers, booleans) with a comment at the top."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    for section, values in sections.items():
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int):
                text = str(value)
            else:
                text = json.dumps(str(value))
            lines.append(f"{json.dumps(key) if not key.replace('-', '').isalnum() else key} = {text}")
    path.write_text("\n".join(lines) + "\n")


def read_toml(path: Path, who: str) -> dict[str, Any]:
    if not path.is_file():
        raise PilotError(f"{who}: {path} is missing: is this the folder `pilot init` made?")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PilotError(f"{who}: {path} cannot be read ({exc})") from None


@dataclass(frozen=True)
class CoordinatorFolder:
    path: Path
    hospitals: int
    address: str
    """HOST:PORT sites connect to."""
    listen: str
    """Where the Fleet gateway listens on this host."""
    superlink: str
    """The SuperLink's own address (loopback)."""

    @classmethod
    def open(cls, path: Path) -> CoordinatorFolder:
        who = f"coordinator ({path})"
        if not path.is_dir():
            raise PilotError(f"{who}: no such folder; make it with `python -m fedviz pilot init`")
        pilot = read_toml(path / "pilot.toml", who).get("pilot", {})
        try:
            return cls(
                path.resolve(),
                int(pilot["hospitals"]),
                str(pilot["address"]),
                str(pilot["listen"]),
                str(pilot["superlink"]),
            )
        except (KeyError, ValueError) as exc:
            raise PilotError(f"{who}: pilot.toml lacks a valid {exc} setting") from None

    def need(self, *names: str) -> None:
        missing = [n for n in names if not (self.path / n).exists()]
        if missing:
            raise PilotError(f"coordinator ({self.path}): {', '.join(missing)} missing from its folder")

    def roster(self) -> dict[str, str]:
        """{party name: identity public key hex}; refused in words while incomplete."""
        path = self.path / "roster.json"
        if not path.is_file():
            raise PilotError(
                f"coordinator ({self.path}): no roster.json yet: enrol every site's public keys first "
                "(`python -m fedviz pilot enrol`)"
            )
        roster: dict[str, str] = json.loads(path.read_text())
        missing = [party_name(p) for p in parties(self.hospitals) if party_name(p) not in roster]
        if missing:
            raise PilotError(
                f"coordinator ({self.path}): the roster lacks {', '.join(missing)}: enrol their keys"
            )
        return roster

    @property
    def runs(self) -> Path:
        return self.path / "runs"


@dataclass(frozen=True)
class SiteFolder:
    path: Path
    party: str
    """The folder's party: "hospital-K" or "key-holder"."""
    name: str
    role: str
    coordinator: str

    @classmethod
    def open(cls, path: Path) -> SiteFolder:
        who = f"site ({path})"
        if not path.is_dir():
            raise PilotError(
                f"{who}: no such folder; the coordinator makes it with `python -m fedviz pilot init`"
            )
        site = read_toml(path / "site.toml", who).get("site", {})
        try:
            party, coordinator = str(site["party"]), str(site["coordinator"])
        except KeyError as exc:
            raise PilotError(f"{who}: site.toml lacks its {exc} setting") from None
        name = party_name(party)
        role = "key-holder" if party == KEY_HOLDER else "hospital"
        return cls(path.resolve(), party, name, role, coordinator)

    @property
    def who(self) -> str:
        return f"{self.name} ({self.party})"

    def need(self, *names: str) -> None:
        for n in names:
            if not (self.path / n).exists():
                raise PilotError(f"{self.who}: {n} is missing from {self.path}" + _HOW.get(n, ""))


_HOW = {
    "identity.key": ": make this site's keys with `python -m fedviz site keys FOLDER`",
    "node.key": ": make this site's keys with `python -m fedviz site keys FOLDER`",
    "roster.json": ": copy the coordinator's roster.json here once every site's keys are enrolled",
    "ca.crt": ": copy it from the coordinator's folder",
    "trusted-entities.yaml": ": copy it from the folder `pilot init` made for this site",
}
