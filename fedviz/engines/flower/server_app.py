"""The ServerApp: Flower's side of the relay. It holds no key and sees no plaintext.

Run config (set by the launcher): `fedviz-config` (the Config as JSON), `topology`, and
`events-file`, where every event goes as one JSON line (a failure ends with one failure
line) for the launcher to read back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedviz.config import Config
from fedviz.engines.flower.content import Content
from fedviz.engines.flower.relay import FlowerRunError, Relay
from fedviz.eventlog import Failure, to_line
from fedviz.events import Event

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
                raise FlowerRunError(
                    f"{self.names.get(node, f'node {node}')} failed at {action}: {reply.error.reason}"
                )
            out.append(dict(reply.content["c"]))
        return out


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = context.run_config
    config = Config.from_dict(json.loads(str(settings["fedviz-config"])))
    with open(str(settings["events-file"]), "a", encoding="utf-8") as sink:

        def emit(event: Event) -> None:
            sink.write(to_line(event) + "\n")
            sink.flush()

        transport = GridTransport(grid)
        relay = Relay(transport, config, str(settings["topology"]), emit)  # type: ignore[arg-type]
        transport.names = relay.names
        try:
            relay.run()
        except Exception as exc:  # the launcher reports it; Flower would only log it
            sink.write(Failure.of(exc).line() + "\n")
