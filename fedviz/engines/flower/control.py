"""Asking a SuperLink's Control API about a run, from Python (no `flwr` process per question:
each costs about a second of CPU on these machines).

`ca` None: a loopback SuperLink without TLS (the demo's launcher); else the pilot's CA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def client(address: str, ca: Path | None) -> Any:
    from flwr.supercore.control import ControlHttpClient

    return ControlHttpClient.from_server_address(
        server_address=address,
        insecure=ca is None,
        root_certificates=None if ca is None else ca.read_bytes(),
        interceptors=[],
    )


def status(address: str, ca: Path | None, run_id: int) -> tuple[str, str]:
    """Flower's status of a run ("running", "finished:failed", ...) and its details;
    ("unreachable", why) when the SuperLink does not answer."""
    from flwr.proto.control_pb2 import ListRunsRequest

    try:
        runs = client(address, ca).ListRuns(ListRunsRequest(run_id=run_id)).run_dict
    except Exception as exc:  # refused, TLS, timeouts: all mean "not answering"
        return "unreachable", " ".join(str(exc).split())[:200]
    if run_id not in runs:
        return "unknown", ""
    s = runs[run_id].status
    return (f"{s.status}:{s.sub_status}" if s.sub_status else s.status), s.details


def stop(address: str, ca: Path | None, run_id: int) -> bool:
    """Mark a run stopped; True if Flower agreed (False for one already finished)."""
    from flwr.proto.control_pb2 import StopRunRequest

    try:
        return bool(client(address, ca).StopRun(StopRunRequest(run_id=run_id)).success)
    except Exception:
        return False
