"""Short waits: an explicit option, off by default, that patches three of Flower 1.42's
hard-coded waits in fedviz's own Flower processes (`--flower-short-waits` for the loopback
engine, `--short-waits` for a pilot's roles). Flower's files are never touched.

Where an exchange's 3.8 s went without it (`benchmarks/flower.py`, loopback, 2 cores): the
SuperNode's idle sleep (mean 1.6 s), importing Flower in a fresh ClientApp process
(1.3-1.5 s), the relay's 1 s retry of a reply whose data is still uploading (0.5 s on
average), the SuperNode's 0.5 s wait for the ClientApp's reply (0.25 s); fedviz's own
handler takes 20 ms and its imports 40-90 ms. With it:

- `supernode`: `flower-supernode`'s main with `time.sleep` replaced in
  `flwr.supernode.start_client_internal` only: the 3 s idle sleep between empty pulls
  becomes `IDLE_S`, the 0.5 s waits for the ClientApp's reply `REPLY_S`;
- `clientapp`: `flwr-clientapp`'s main without `flwr.supernode.cli`'s package init, which
  imports the whole SuperNode (SQLAlchemy, Alembic, uvicorn, YAML: ~0.4 s a message) that a
  ClientApp never uses;
- object pulls retry after `RELAY_BACKOFF_S` instead of 1 s, in the SuperNode, the ClientApp
  and (`patch_relay_backoff`, called by the ServerApp) the relay.

Each falls back to Flower's own behaviour if the names it patches are not there (another
Flower version). The cost: a SuperNode asks the SuperLink for work 5 times a second instead of
every 3 s.
"""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

IDLE_S = float(os.environ.get("FEDVIZ_FLOWER_IDLE_S", "0.2"))
REPLY_S = float(os.environ.get("FEDVIZ_FLOWER_REPLY_S", "0.05"))
RELAY_BACKOFF_S = 0.05
ENV = "FEDVIZ_FLOWER_SHORT_WAITS"
"""Set (to "1") in the environment of a deployment's or a role's processes when on."""


def _short_sleep(real: types.ModuleType):  # type: ignore[no-untyped-def]
    def sleep(seconds: float) -> None:
        if seconds == 3:
            seconds = IDLE_S
        elif seconds == 0.5:
            seconds = REPLY_S
        real.sleep(seconds)

    return sleep


def supernode() -> None:
    from flwr.supernode import start_client_internal as sci

    if getattr(sci, "time", None) is time:
        proxy = types.ModuleType("time")
        proxy.__dict__.update(time.__dict__)
        proxy.sleep = _short_sleep(time)  # type: ignore[attr-defined]
        sci.time = proxy  # type: ignore[attr-defined]
    _short_backoff(sci)
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv[0] = "flower-supernode"
    flower_supernode()


def clientapp() -> None:
    import flwr.supernode

    if "flwr.supernode.cli" not in sys.modules:
        cli = types.ModuleType("flwr.supernode.cli")
        cli.__path__ = [os.path.join(os.path.dirname(flwr.supernode.__file__), "cli")]
        sys.modules["flwr.supernode.cli"] = cli
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

    _short_backoff(inflatable_utils)
    sys.argv[0] = "flwr-clientapp"
    flwr_clientapp()


def _short_backoff(module: types.ModuleType) -> None:
    """`module.pull_objects` retries an object that is not uploaded yet after 1 s, then 2 s, ...
    (PULL_INITIAL_BACKOFF); on loopback the upload is milliseconds behind: retry after
    RELAY_BACKOFF_S instead (still doubling, same cap and limits)."""
    import functools

    pull = getattr(module, "pull_objects", None)
    if pull is not None and not isinstance(pull, functools.partial):
        module.pull_objects = functools.partial(pull, initial_backoff=RELAY_BACKOFF_S)  # type: ignore[attr-defined]


def install(bindir: Path, env: dict[str, str]) -> str:
    """Write the `flower-supernode` and `flwr-clientapp` wrappers into `bindir`, put it first
    on `env`'s PATH (a SuperNode's SuperExec finds `flwr-clientapp` by name) and switch the
    option on in `env`; the SuperNode command to start."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name, entry in (("flower-supernode", "supernode"), ("flwr-clientapp", "clientapp")):
        shim = bindir / name
        shim.write_text(
            f"#!{sys.executable}\nfrom fedviz.engines.flower.short_waits import {entry}\n{entry}()\n"
        )
        shim.chmod(0o755)
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    env[ENV] = "1"
    return str(bindir / "flower-supernode")


def patch_relay_backoff() -> None:
    """Called by the ServerApp (the relay's process)."""
    if os.environ.get(ENV) != "1":
        return
    try:
        from flwr.superlink.grid import http_grid
    except ImportError:
        return
    _short_backoff(http_grid)


if __name__ == "__main__":
    which = sys.argv.pop(1)
    {"supernode": supernode, "clientapp": clientapp}[which]()
