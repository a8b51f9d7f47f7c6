"""What travels in a Flower message's content, and how our objects become it.

Flower's records hold 64-bit ints, floats, strings, bytes, bools and lists of one of those.
So: big integers travel as big-endian bytes; cards and signed statements as small JSON
strings (bytes in hex); float vectors as lists of floats (float64, exact).

Invariant: nothing here knows a secret; every value it writes is meant for the relay's eyes
or is sealed before it gets here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fedviz.crypto.sealing import Card
from fedviz.protocol.attestation import Attestation

Content = dict[str, Any]
"""A message's content: keys to int, float, str, bytes, bool or a list of one of those."""


def int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def bytes_int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def cards_text(cards: Sequence[Card]) -> str:
    return json.dumps(
        [
            {
                "name": c.name,
                "role": c.role,
                "run": c.run,
                "hop": c.hop_public.hex(),
                "sig": c.signature.hex(),
            }
            for c in cards
        ]
    )


def cards_from(text: str) -> dict[str, Card]:
    return {
        d["name"]: Card(d["name"], d["role"], d["run"], bytes.fromhex(d["hop"]), bytes.fromhex(d["sig"]))
        for d in json.loads(text)
    }


def attestations_text(attestations: Sequence[Attestation]) -> str:
    return json.dumps([_attestation_dict(a) for a in attestations])


def attestations_from(text: str) -> list[Attestation]:
    return [
        Attestation(
            d["run"],
            int(d["round"]),
            int(d["position"]),
            d["sender"],
            bytes.fromhex(d["received"]),
            bytes.fromhex(d["sent"]),
            bytes.fromhex(d["sig"]),
        )
        for d in json.loads(text)
    ]


def _attestation_dict(a: Attestation) -> dict[str, Any]:
    return {
        "run": a.run,
        "round": a.round,
        "position": a.position,
        "sender": a.sender,
        "received": a.received.hex(),
        "sent": a.sent.hex(),
        "sig": a.signature.hex(),
    }
