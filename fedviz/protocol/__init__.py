"""The protocol's roles and how their messages flow, whatever engine carries them.

- `parties`: Hospital, Server (the key holder) and the RingMessage one hop carries.
- `ring`: the ring's order and one in-process round.
- `attestation`: signed statements that let a key holder check an aggregate is complete.
"""

from fedviz.protocol.parties import (
    SERVER_NAME,
    Hospital,
    RingMessage,
    Server,
    hospital_name,
    hospitals_for,
)
from fedviz.protocol.ring import Ring, RoundResult

__all__ = [
    "SERVER_NAME",
    "Hospital",
    "Ring",
    "RingMessage",
    "RoundResult",
    "Server",
    "hospital_name",
    "hospitals_for",
]
