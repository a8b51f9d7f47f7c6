"""The pilot's app bundle: written, built and signed by the coordinator, submitted with its
signature, so each site's SuperNode runs it only if the coordinator's key signed it.

The run's settings live inside the bundle (its pyproject's run config), so the signature
covers them too: a changed setting is a different, unsigned bundle. (Flower's run-config
overrides would not be covered, so none is ever sent.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from fedviz.engines.flower import control
from fedviz.pilot.pki import PUBLISHER_KEY_ID, load_publisher_key

APP_ID = "fedviz/pilot"


def write_app(folder: Path, settings: dict[str, Any]) -> Path:
    """An app folder whose pyproject names fedviz's relay and nodes and holds `settings`."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    (folder / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "fedviz-pilot"\nversion = "1.0.0"\ndependencies = []\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["."]\n\n'
        '[tool.flwr.app]\npublisher = "fedviz"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "fedviz.engines.flower.server_app:app"\n'
        'clientapp = "fedviz.engines.flower.client_app:app"\n\n'
        f"[tool.flwr.app.config]\n{lines}\n"
    )
    return folder


def build(folder: Path) -> bytes:
    """The bundle (FAB) exactly as `flwr build` makes it."""
    from flwr.cli.build import build_fab_from_disk

    return bytes(build_fab_from_disk(folder.resolve()))


def sign(fab: bytes, key_path: Path, signed_at: int | None = None) -> dict[str, str]:
    """Flower 1.42's verification record: Ed25519 over the 8-byte big-endian time and the
    bundle's SHA-256, base64url without padding, under the coordinator's key id."""
    key = load_publisher_key(key_path)
    when = int(time.time()) if signed_at is None else signed_at
    signature = key.sign(when.to_bytes(8, "big") + hashlib.sha256(fab).digest())
    text = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    return {PUBLISHER_KEY_ID: json.dumps({"signature": text, "signed_at": when}), "valid_license": "Valid"}


def submit(address: str, ca: Path, fab: bytes, verifications: dict[str, str]) -> int:
    """Start a run of `fab` on the SuperLink at `address` (the coordinator's loopback); its
    Flower run id."""
    from flwr.proto.control_pb2 import StartRunRequest
    from flwr.proto.fab_pb2 import Fab

    client = control.client(address, ca)
    digest = hashlib.sha256(fab).hexdigest()
    reply = client.StartRun(
        StartRunRequest(fab=Fab(hash_str=digest, content=fab, verifications=verifications))
    )
    if not reply.HasField("run_id"):
        raise RuntimeError("the SuperLink did not start the run")
    return int(reply.run_id)
