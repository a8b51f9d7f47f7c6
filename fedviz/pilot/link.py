"""Flower's SuperLink as the coordinator runs it: Flower 1.42's own `flower-superlink`, with
one change, so that SuperNodes started with `--trusted-entities` can run the pilot's app.

Flower 1.42 checks app-bundle signatures on the SuperNode (Ed25519 over the bundle's
SHA-256 and a timestamp, `--trusted-entities`), but its SuperLink drops the signatures of a
bundle submitted directly and fills them in only for apps from Flower's online hub. Here a
bundle submitted with signatures keeps them, so each SuperNode checks them against the one
key its site trusts; a bundle without a valid signature from that key is refused by every
SuperNode before any of its code runs. Nothing else of Flower changes.

Run: `python -m fedviz.pilot.link [flower-superlink's arguments]`.
"""

from __future__ import annotations

import sys
from typing import Any


class _KeepSignatures:
    """The SuperLink's state, storing a submitted bundle with the signatures it came with."""

    def __init__(self, state: Any, verifications: dict[str, str]) -> None:
        self._state, self._verifications = state, verifications

    def store_app(self, fab: Any, *args: Any, **kwargs: Any) -> Any:
        from flwr.supercore.fab import Fab

        signed = Fab(fab.hash_str, fab.content, dict(self._verifications))
        return self._state.store_app(signed, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


def keep_signatures() -> None:
    """Patch Flower's start-run handler (refuses to start on a Flower it does not know)."""
    from flwr.superlink.servicer.control import control_handlers

    original = control_handlers.start_run
    if getattr(original, "_fedviz", False):
        return

    def start_run(request: Any, account: Any, state: Any, fleet_api_type: Any, **kwargs: Any) -> Any:
        signed = dict(request.fab.verifications)
        if signed and request.fab.content:
            state = _KeepSignatures(state, signed)
        return original(request, account, state, fleet_api_type, **kwargs)

    start_run._fedviz = True  # type: ignore[attr-defined]
    control_handlers.start_run = start_run


def main() -> None:
    import flwr

    if flwr.__version__ != "1.42.0":
        print(
            f"error: the pilot's coordinator needs Flower 1.42.0 (found {flwr.__version__}): "
            "run scripts/setup.sh",
            file=sys.stderr,
        )
        raise SystemExit(2)
    keep_signatures()
    from flwr.superlink.cli import flower_superlink

    sys.argv[0] = "flower-superlink"
    flower_superlink()


if __name__ == "__main__":
    main()
