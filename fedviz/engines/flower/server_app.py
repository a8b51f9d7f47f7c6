"""The ServerApp: Flower's side of the relay. It holds no key and sees no plaintext.

Run config (set by the launcher): `fedviz-config` (the Config as JSON), `topology`, and
`events-file`, where every event goes as one JSON line (a failure ends with one failure
line) for the launcher to read back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedviz.config import Config
from fedviz.engines.flower import short_waits
from fedviz.engines.flower.content import Content
from fedviz.engines.flower.relay import REPLY_TIMEOUT_S, FlowerRunError, Relay
from fedviz.eventlog import Failure, to_line
from fedviz.events import Event

NODE_UNAVAILABLE = 5
"""Flower's error code for a message to a node that stopped reporting its heartbeat."""
FAB_NOT_VERIFIED = 7
"""Flower's error code in a SuperNode's reply when an app bundle's signature did not check."""
POLL_S = 0.02
"""How often the relay asks the SuperLink for replies (Flower's own send_and_receive sleeps 3 s)."""

app = ServerApp()


class GridTransport:
    """The relay's `Transport` over Flower's grid: push, then poll for the replies."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.names: dict[int, str] = {}

    def nodes(self) -> list[int]:
        return sorted(self.grid.get_node_ids())

    def ask(self, requests: Sequence[tuple[int, str, Content]], timeout_s: float) -> list[Content]:
        messages = [
            Message(
                RecordDict({"c": ConfigRecord(content)}), dst_node_id=node, message_type=f"query.{action}"
            )
            for node, action, content in requests
        ]
        ids = list(self.grid.push_messages(messages))
        wanted = dict(zip(ids, requests, strict=True))
        replies: dict[str, Message] = {}
        deadline = time.monotonic() + timeout_s
        while len(replies) < len(ids):
            waiting = [i for i in ids if i not in replies]
            for reply in self.grid.pull_messages(waiting):
                replies[reply.metadata.reply_to_message_id] = reply
            if len(replies) < len(ids):
                if time.monotonic() > deadline:
                    node, action, _ = wanted[next(i for i in ids if i not in replies)]
                    raise FlowerRunError(
                        f"{self.names.get(node, f'node {node}')} did not answer {action} within {timeout_s:g} s"
                    )
                time.sleep(POLL_S)
        out = []
        for message_id in ids:
            reply = replies[message_id]
            node, action, _ = wanted[message_id]
            if reply.has_error():
                who = self.names.get(node, f"node {node}")
                if reply.error.code == FAB_NOT_VERIFIED:
                    raise FlowerRunError(
                        f"{who} refused the app bundle: it is not signed by the key its site trusts "
                        "(Flower: the FAB could not be verified)"
                    )
                raise FlowerRunError(
                    f"{who} failed at {action}: {reply.error.reason}",
                    unavailable=reply.error.code == NODE_UNAVAILABLE,
                )
            out.append(dict(reply.content["c"]))
        return out


RUN_CONFIG_KEYS = (
    "fedviz-config",
    "topology",
    "events-file",
    "observer-dir",
    "nodes",
    "expected-nodes",
    "replay-file",
    "broadcasts-file",
    "join-timeout-s",
    "reply-timeout-s",
)
"""Every run setting the relay and the nodes understand; any other is refused in words."""


def refuse_unknown(settings: Mapping[str, object]) -> None:
    unknown = sorted(set(settings) - set(RUN_CONFIG_KEYS))
    if unknown:
        raise FlowerRunError(
            f"unknown run setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"the fedviz app understands {', '.join(RUN_CONFIG_KEYS)}"
        )


@app.main()
def main(grid: Grid, context: Context) -> None:
    short_waits.patch_relay_backoff()
    settings = dict(context.run_config)
    with open(str(settings["events-file"]), "a", encoding="utf-8") as sink:

        def emit(event: Event) -> None:
            sink.write(to_line(event) + "\n")
            sink.flush()

        try:
            refuse_unknown(settings)
            config = Config.from_dict(json.loads(str(settings["fedviz-config"])))
            expected = {
                int(k): str(v) for k, v in json.loads(str(settings.get("expected-nodes") or "{}")).items()
            }
            replay: list[list[float]] = []
            if settings.get("replay-file"):
                with open(str(settings["replay-file"]), encoding="utf-8") as f:
                    replay = [json.loads(line)["average"] for line in f if line.strip()]
            transport = GridTransport(grid)
            relay = Relay(
                transport,
                config,
                str(settings["topology"]),  # type: ignore[arg-type]
                emit,
                float(str(settings.get("reply-timeout-s") or REPLY_TIMEOUT_S)),
                expected=expected,
                replay=replay,
                broadcasts=str(settings["broadcasts-file"]) if settings.get("broadcasts-file") else None,
                join_timeout_s=float(str(settings.get("join-timeout-s") or REPLY_TIMEOUT_S)),
            )
            transport.names = relay.names
            relay.run()
        except Exception as exc:  # told to whoever follows the events, then to Flower: the run fails
            sink.write(Failure.of(exc).line() + "\n")
            sink.flush()
            raise
