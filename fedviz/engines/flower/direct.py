"""The Flower engine's relay and nodes without Flower: each node's `handle` called in this
process, each node with its own state dict. For unit tests of the protocol logic and as the
benchmark's floor (what the messages cost without any transport).

`tamper` lets a test change what a node receives (a flipped byte, a dropped statement) the
way a malicious relay could.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedviz.config import Config
from fedviz.engines.flower.content import Content
from fedviz.engines.flower.nodes import NodeSetup, handle
from fedviz.engines.flower.provision import node_configs
from fedviz.engines.flower.relay import FlowerRunError

Tamper = Callable[[str, str, Content], Content]


class DirectTransport:
    def __init__(self, config: Config, run: str = "direct-run", tamper: Tamper | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fedviz-direct-")
        configs = node_configs(Path(self._dir.name), config.hospitals, config.site_paths, config.target or "")
        self.setups = {1000 + i: NodeSetup.from_node_config(c) for i, c in enumerate(configs.values())}
        self.states: dict[int, dict[str, Any]] = {node: {} for node in self.setups}
        self.notes: list[dict[str, Any]] = []
        self.sent: list[tuple[str, str, Content]] = []
        self.replies: list[Content] = []
        self.config, self.run, self.tamper = config, run, tamper
        self.silent: set[str] = set()

    def nodes(self) -> list[int]:
        return list(self.setups)

    def ask(self, requests: Sequence[tuple[int, str, Content]], timeout_s: float) -> list[Content]:
        out = []
        for node, action, content in requests:
            setup = self.setups[node]
            if setup.name in self.silent:
                raise FlowerRunError(f"{setup.name} did not answer {action} within {timeout_s:g} s")
            if self.tamper is not None:
                content = self.tamper(setup.name, action, dict(content))
            self.sent.append((setup.name, action, content))
            reply = handle(action, content, self.states[node], setup, self.config, self.run)
            self.notes.extend(reply.notes)
            self.replies.append(reply.content)
            out.append(reply.content)
        return out

    def close(self) -> None:
        self._dir.cleanup()
