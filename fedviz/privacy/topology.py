"""What each coalition can learn of a hospital's gradient under each topology, measured.

A real run of the Flower engine's parties (relay and nodes through the direct transport, so
every party has exactly the secrets and messages it has on Flower) is replayed from each
coalition's side: its members pool what they saw and what they hold, and try, with those
real keys and bytes, to read hospital 1's round-1 gradient. The score is the largest error
of their best estimate; everyone knows the broadcast average, so "only the average" is the
floor of what the protocol gives away.

Attempts (each a real computation, not a rule of thumb):
- the relay opens a sealed hop with the hop keys its coalition holds (it holds none itself);
- the key holder decrypts any ciphertext its coalition saw (a ring hop a hospital opened, a
  star part it was handed to check);
- n - 1 hospitals subtract their own gradients from n times the average.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedviz.config import Config
from fedviz.crypto.keys import ServerKeys
from fedviz.crypto.sealing import HopKey, SealError, header, unseal
from fedviz.engines.flower.content import cards_from
from fedviz.engines.flower.direct import DirectTransport
from fedviz.engines.flower.relay import Relay, Topology
from fedviz.engines.inprocess import agreed_codec
from fedviz.events import FederatedRound
from fedviz.privacy.attacks import decode_masked
from fedviz.protocol import SERVER_NAME, RingMessage, Server, hospital_name
from fedviz.protocol.wire import from_payload

COALITIONS = (
    "the relay",
    "the key holder",
    "relay + key holder",
    "hospital 2 + key holder",
    "hospitals 2 … n (all but one)",
)


@dataclass(frozen=True)
class Exposure:
    topology: str
    coalition: str
    exact: bool
    """True when the coalition reads hospital 1's gradient (to float rounding)."""
    error: float
    """Largest error of its best estimate of hospital 1's gradient."""
    how: str


LAYOUTS = ("ring", "star", "ring + masks", "star + masks")
"""The measured columns: each topology plain and with pairwise masks (the remedy)."""


def measure(config: Config | None = None) -> list[Exposure]:
    """Every coalition of `COALITIONS` under each of `LAYOUTS`, on one small real run each."""
    config = config or Config(key_length=1024, rounds=1)
    out = []
    for layout in LAYOUTS:
        topology, masked = layout.split(" + ")[0], layout.endswith("masks")
        run_config = dataclasses.replace(config, masks="pairwise" if masked else "none")
        out += [dataclasses.replace(e, topology=layout) for e in _measure(run_config, topology)]  # type: ignore[arg-type]
    return out


def _measure(config: Config, topology: Topology) -> list[Exposure]:
    transport = DirectTransport(config)
    seen: list[Any] = []
    try:
        Relay(transport, config, topology, seen.append).run()
    finally:
        transport.close()
    n = config.hospitals
    truth = np.array(
        next(x["values"] for x in transport.notes if x["kind"] == "gradient" and x["round"] == 1)
    )
    others = [
        np.array(
            next(
                x["values"]
                for x in transport.notes
                if x["kind"] == "gradient" and x["round"] == 1 and x["party"] == hospital_name(i)
            )
        )
        for i in range(1, n)
    ]
    average = np.array(
        next(e for e in seen if isinstance(e, FederatedRound) and e.round == 1).average_gradient
    )
    states = {s.name: transport.states[node] for node, s in transport.setups.items()}
    holder = states[SERVER_NAME]
    server = Server.with_keys(ServerKeys.restore_on_own_node({k: holder[k] for k in ("p", "q", "hs")}, 0.0))
    codec = agreed_codec(config, server.public.n)
    run = transport.run
    sent = [(party, action, content) for party, action, content in transport.sent]

    def score(coalition: str, estimate: np.ndarray, how: str, decrypted: bool = False) -> Exposure:
        """`decrypted`: the estimate is a lone ciphertext the key holder decrypted."""
        error = float(np.max(np.abs(estimate - truth)))
        exact = error <= 1e-9 * (1 + float(np.max(np.abs(truth))))
        if decrypted and not exact and config.masks == "pairwise":
            how += "; but it still carries pair masks the coalition has no seed for: it reads noise"
        return Exposure(topology, coalition, exact, error, how)

    def decrypt_one(payload: bytes) -> np.ndarray:
        """What the key holder reads from one hospital's lone ciphertext (a sum of one; under
        masks, still masked: it holds no pair seed)."""
        numbers = from_payload(server.public, payload, codec.exponent)
        return decode_masked(codec, server.open(RingMessage(hospital_name(0), SERVER_NAME, numbers, 1)), 1)

    out = [score("the relay", average, "no key: it sees only sealed bytes or ciphertexts, and the average")]
    if topology == "ring":
        hop1 = next(
            c["incoming"] for p, a, c in sent if p == hospital_name(1) and a == "hop" and c["round"] == 1
        )
        cards = cards_from(next(c["cards"] for p, a, c in sent if a == "hop"))
        head = header(run, 1, "hop 1", hospital_name(0), hospital_name(1))
        try:  # the relay hands hop 1 to the key holder, who tries its own hop key
            unseal(HopKey(holder["hop_key"]), cards[hospital_name(0)], head, hop1, SERVER_NAME)
            raise AssertionError("the key holder opened a hop sealed for hospital 2")
        except SealError:
            pass
        out.append(score("the key holder", average, "decrypts only the full sum"))
        out.append(
            score(
                "relay + key holder",
                average,
                "hop 1 is sealed for hospital 2: the key holder's hop key fails to open it",
            )
        )
        payload = unseal(
            HopKey(states[hospital_name(1)]["hop_key"]), cards[hospital_name(0)], head, hop1, hospital_name(1)
        )
        out.append(
            score(
                "hospital 2 + key holder",
                decrypt_one(payload),
                "hospital 2 opens hop 1, Enc(g1); the key holder decrypts it",
                decrypted=True,
            )
        )
    else:
        part1 = next(c["parts"][0] for p, a, c in sent if a == "decrypt_star" and c["round"] == 1)
        g1 = decrypt_one(part1)
        out.append(
            score(
                "the key holder",
                g1,
                "it is handed every part to check the sum is complete, and can decrypt each",
                decrypted=True,
            )
        )
        out.append(
            score(
                "relay + key holder",
                g1,
                "the relay saw every part; the key holder decrypts hospital 1's",
                decrypted=True,
            )
        )
        out.append(
            score("hospital 2 + key holder", g1, "the key holder decrypts hospital 1's part", decrypted=True)
        )
    out.append(
        score("hospitals 2 … n (all but one)", n * average - sum(others), "n × average − their own gradients")
    )
    return out
