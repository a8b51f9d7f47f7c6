"""The ClientApp: Flower's side of a node (a hospital or the key holder).

Each message runs `nodes.handle` with the node's own state, which Flower keeps on the node
between messages (`context.state`, never sent to the SuperLink). With run config
`observer-dir` (the loopback demo only) a party also appends what it saw to its own
`<dir>/<party>.jsonl`, for the launcher's observer; replies never carry it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, cast

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedviz.config import Config
from fedviz.engines.flower.nodes import HOSPITAL_ACTIONS, KEY_HOLDER_ACTIONS, NodeSetup, handle

STATE = "fedviz"

app = ClientApp()


def _serve(action: str) -> Callable[[Message, Context], Message]:
    def handler(message: Message, context: Context) -> Message:
        setup = NodeSetup.from_node_config(dict(context.node_config))
        config = Config.from_dict(json.loads(str(context.run_config["fedviz-config"])))
        state: dict[str, Any] = (
            dict(cast(ConfigRecord, context.state[STATE])) if STATE in context.state else {}
        )
        reply = handle(action, dict(message.content["c"]), state, setup, config, str(context.run_id))
        context.state[STATE] = ConfigRecord(state)
        observer = str(context.run_config.get("observer-dir", ""))
        if observer and reply.notes:
            path = os.path.join(observer, f"{setup.name}.jsonl")
            with open(path, "a", encoding="utf-8") as notebook:
                for note in reply.notes:
                    notebook.write(json.dumps(note) + "\n")
        return Message(RecordDict({"c": ConfigRecord(reply.content)}), reply_to=message)

    return handler


for _action in sorted(set(HOSPITAL_ACTIONS) | set(KEY_HOLDER_ACTIONS)):
    app.query(_action)(_serve(_action))
