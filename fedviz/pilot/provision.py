"""Making the pilot's folders: `pilot init`, a site's own keys (`site keys`), and enrolling
what the sites sent (`pilot enrol`).

Two ways, both ending in the same folders:
- a trial: `pilot init` makes every party's keys in that party's own folder, and the
  roster at once;
- a real pilot (`--sites-make-keys`): `pilot init` makes the coordinator's folder and a
  folder per site without private keys; each site runs `site keys` and sends back the one
  public file it writes; `pilot enrol` puts them in the roster and queues their node keys
  for registration; the roster then goes to every site out of band.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fedviz.crypto.sealing import Identity
from fedviz.pilot import pki
from fedviz.pilot.folders import (
    COORDINATOR,
    KEY_HOLDER,
    SUPERLINK_PORT,
    CoordinatorFolder,
    PilotError,
    SiteFolder,
    joined,
    parties,
    party_name,
    split_address,
    write_toml,
)

MAX_HOSPITALS = 78


def init(directory: Path, hospitals: int, coordinator: str, sites_make_keys: bool = False) -> list[Path]:
    """Write DIR/coordinator and one folder per site; the folders made."""
    if not 2 <= hospitals <= MAX_HOSPITALS:
        raise PilotError(
            f"--hospitals {hospitals}: a pilot needs 2 to {MAX_HOSPITALS} hospitals (3 or more to be private)"
        )
    host, port = split_address(coordinator)
    if directory.exists() and any(directory.iterdir()):
        raise PilotError(
            f"{directory} exists and is not empty: pilot init never overwrites keys; choose a new folder"
        )
    directory.mkdir(parents=True, exist_ok=True)
    coord = directory / COORDINATOR
    coord.mkdir(mode=0o700)
    (coord / "nodes").mkdir()
    ca_key, ca_cert = pki.make_ca(coord)
    names = pki.make_server_cert(coord, host, ca_key, ca_cert)
    publisher = pki.make_publisher_key(coord / "publisher.key")
    write_toml(
        coord / "pilot.toml",
        "fedviz pilot: the coordinator's folder. Keep ca.key, server.key and publisher.key secret;\n"
        "ca.crt and the .pub files are public. Sites connect to `address` (HTTPS, the Fleet API only);\n"
        "the SuperLink itself listens on `superlink`, this host's loopback, where its Control API stays.\n"
        f"server.crt is valid for: {', '.join(names)}.",
        {
            "pilot": {
                "hospitals": hospitals,
                "address": joined(host, port),
                "listen": joined("0.0.0.0", port),
                "superlink": joined("127.0.0.1", SUPERLINK_PORT),
            },
            "parties": {p: party_name(p) for p in parties(hospitals)},
        },
    )
    made = [coord]
    roster: dict[str, str] = {}
    for party in parties(hospitals):
        folder = directory / party
        folder.mkdir(mode=0o700)
        shutil.copy(coord / "ca.crt", folder / "ca.crt")
        (folder / "trusted-entities.yaml").write_text(pki.trusted_entities(publisher))
        write_toml(
            folder / "site.toml",
            f"fedviz pilot: {party_name(party)}'s folder ({party}). Keep identity.key and node.key secret:\n"
            "they never leave this host. ca.crt checks the coordinator; trusted-entities.yaml names the only\n"
            "key whose app bundles this site runs; roster.json lists every party's public identity key.",
            {"site": {"party": party, "coordinator": joined(host, port)}},
        )
        if not sites_make_keys:
            public = _site_keys(folder, party)
            roster[party_name(party)] = public["identity"]
            (coord / "nodes" / f"{party}.pub").write_text(public["node"] + "\n")
        made.append(folder)
    if not sites_make_keys:
        _write_roster(coord, roster)
        for party in parties(hospitals):
            shutil.copy(coord / "roster.json", directory / party / "roster.json")
    return made


def _site_keys(folder: Path, party: str) -> dict[str, str]:
    """A site's identity key and node key, made in its own folder; their public halves."""
    for name in ("identity.key", "node.key"):
        if (folder / name).exists():
            raise PilotError(
                f"{party_name(party)} ({party}): {folder / name} exists; a key is never overwritten"
            )
    identity = Identity.save_new(str(folder / "identity.key")).hex()
    node = pki.make_node_key(folder / "node.key", f"fedviz-{party}")
    return {"party": party, "name": party_name(party), "identity": identity, "node": node}


def site_keys(folder: Path) -> Path:
    """`site keys FOLDER`: this site makes its own keys; returns the public file to send."""
    site = SiteFolder.open(folder)
    public = _site_keys(site.path, site.party)
    out = site.path / f"{site.party}.keys.json"
    out.write_text(json.dumps(public, indent=1) + "\n")
    return out


def enrol(coordinator: Path, files: list[Path]) -> list[str]:
    """`pilot enrol`: put the sites' public keys in the roster and queue their node keys for
    registration (the coordinator registers them when it starts, or at once if it runs)."""
    coord = CoordinatorFolder.open(coordinator)
    roster_path = coord.path / "roster.json"
    roster: dict[str, str] = json.loads(roster_path.read_text()) if roster_path.is_file() else {}
    done = []
    for file in files:
        try:
            public = json.loads(file.read_text())
            party, identity, node = str(public["party"]), str(public["identity"]), str(public["node"])
        except (OSError, ValueError, KeyError, TypeError):
            raise PilotError(
                f"{file}: not a site's keys file (written by `python -m fedviz site keys`)"
            ) from None
        if party not in parties(coord.hospitals):
            raise PilotError(
                f"{file}: {party!r} is not a party of this pilot ({coord.hospitals} hospitals and the key holder)"
            )
        if len(bytes.fromhex(identity)) != 32 or not node.startswith("ecdsa-sha2-nistp"):
            raise PilotError(f"{file}: {party}'s keys are not an Ed25519 identity and an ECDSA node key")
        roster[party_name(party)] = identity
        (coord.path / "nodes" / f"{party}.pub").write_text(node + "\n")
        done.append(party)
    _write_roster(coord.path, roster)
    return done


def _write_roster(coordinator: Path, roster: dict[str, str]) -> None:
    order = {party_name(p): i for i, p in enumerate(parties(78)) if p != KEY_HOLDER}
    ordered = dict(sorted(roster.items(), key=lambda kv: order.get(kv[0], 10_000)))
    (coordinator / "roster.json").write_text(json.dumps(ordered, indent=1) + "\n")


def fingerprint(hex_key: str) -> str:
    """A short, readable fingerprint of a public key, to compare over the phone."""
    import hashlib

    digest = hashlib.sha256(bytes.fromhex(hex_key)).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))
