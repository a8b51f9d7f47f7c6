"""Benchmark: per-round latency of the same experiment on each engine, and where Flower's time goes.

    .venv/bin/python -m benchmarks.flower                 # 3 hospitals, 1024 bits, 3 rounds
    .venv/bin/python -m benchmarks.flower --bits 2048 --rounds 4
    .venv/bin/python -m benchmarks.flower --only-ring     # Flower's ring, as is and with short waits

In one run, for the same config:
- in-process: the default engine (every party an object in this process);
- direct: the Flower engine's relay and nodes without Flower (each node's handler called in
  this process): what the protocol's messages cost without any transport;
- Flower ring and Flower star: a loopback deployment (SuperLink, one SuperNode per party), as
  Flower 1.42 is, and with `--flower-short-waits` (three of its hard-coded waits shortened in
  fedviz's own processes: `fedviz.engines.flower.short_waits`), the ratio printed side by side.
It prints the start-up time, the median wall time per federated round, the exchanges per
round, and for Flower the split of an exchange into the parties' own work (encryption,
additions, decryption, as they report it) and Flower's share (everything else: polling,
a new ClientApp process per message, serialisation). It checks that every engine's final
MSE is identical. Wall times on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fedviz.config import Config
from fedviz.engines.flower.direct import DirectTransport
from fedviz.engines.flower.engine import run as run_flower
from fedviz.engines.flower.relay import Relay
from fedviz.engines.inprocess import run as run_inprocess
from fedviz.events import Event, Exchange, FederatedRound, PhaseStarted, RunFinished


@dataclass
class Measure:
    name: str
    start_s: float = 0.0
    rounds_s: list[float] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    work_s: float = 0.0
    mse: tuple[float, ...] = ()


def timed(name: str, events: Iterator[Event]) -> Measure:
    """Time a run's event stream: start-up until the federated phase, then each round."""
    m = Measure(name)
    t0 = time.perf_counter()
    last = None
    for event in events:
        now = time.perf_counter()
        if isinstance(event, PhaseStarted) and event.phase == "federated":
            m.start_s = now - t0
            last = now
        if isinstance(event, Exchange):
            m.exchanges.append(event)
        if isinstance(event, FederatedRound):
            m.work_s += event.encrypt_s + event.add_s + event.decrypt_s
        if isinstance(event, RunFinished):
            m.mse = event.federated_mse
    # a round's events arrive one round late on Flower (hospitals report MSE with the next
    # message), so per-round wall time comes from the exchanges themselves when there are any
    if m.exchanges:
        for r in sorted({e.round for e in m.exchanges if e.round > 0}):
            per = [e for e in m.exchanges if e.round == r and e.step != "final step"]
            parallel = {e.step.split()[0] for e in per} == {"part", "decrypt"}
            if parallel:
                m.rounds_s.append(
                    max(e.seconds for e in per if e.step.startswith("part"))
                    + sum(e.seconds for e in per if e.step == "decrypt")
                )
            else:
                m.rounds_s.append(sum(e.seconds for e in per))
    elif last is not None:
        m.rounds_s.append(time.perf_counter() - last)
    return m


def direct(config: Config, topology: str) -> Iterator[Event]:
    seen: list[Event] = []
    transport = DirectTransport(config)
    try:
        Relay(transport, config, topology, seen.append).run()  # type: ignore[arg-type]
    finally:
        transport.close()
    yield from seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", type=int, default=1024)
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only-ring", action="store_true", help="only Flower's ring, as is and with short waits")
    args = p.parse_args(argv)
    config = Config(hospitals=args.hospitals, key_length=args.bits, rounds=args.rounds)

    runs: list[tuple[str, Callable[[], Iterator[Event]]]] = [
        ("in-process", lambda: run_inprocess(config, pool=None)),
        ("direct ring (no transport)", lambda: direct(config, "ring")),
        ("direct star (no transport)", lambda: direct(config, "star")),
        ("Flower ring", lambda: run_flower(config, "ring")),
        ("Flower ring, short waits", lambda: run_flower(config, "ring", short_waits=True)),
        ("Flower star", lambda: run_flower(config, "star")),
        ("Flower star, short waits", lambda: run_flower(config, "star", short_waits=True)),
    ]
    if args.only_ring:
        runs = [runs[0], runs[3], runs[4]]
    results = []
    for name, start in runs:
        t = time.perf_counter()
        m = timed(name, start())
        total = time.perf_counter() - t
        if name == "in-process":
            m.rounds_s = [m.rounds_s[0] / config.rounds] if m.rounds_s else []
        results.append((m, total))
        print(f"{name}: {total:.1f} s", flush=True)

    print()
    print(f"{config.hospitals} hospitals, {config.key_length} bits, {config.rounds} rounds")
    print()
    print(
        "| engine | whole run s | start-up until the federated phase s | per federated round s (median) | sequential exchanges per round | parties' own work per round s | share of a round that is not the parties' work |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = results[0][0].mse
    for m, total in results:
        per_round = statistics.median(m.rounds_s) if m.rounds_s else float("nan")
        steps = {e.step for e in m.exchanges if e.round == 1}
        exchanges = len([x for x in steps if not x.startswith("part")]) + any(
            x.startswith("part") for x in steps
        )
        work = m.work_s / config.rounds
        share = 1 - work / per_round if m.exchanges and per_round > 0 else 0.0
        same = "" if m.mse == base else " (MSE differs!)"
        print(
            f"| {m.name}{same} | {total:.2f} | {m.start_s:.2f} | {per_round:.3f} | {exchanges or '—'} | {work:.4f} | "
            f"{f'{share:.1%}' if m.exchanges else '—'} |"
        )
    exchanges: dict[str, list[float]] = {}
    rounds: dict[str, float] = {}
    for m, _ in results:
        if m.name.startswith("Flower"):
            exchanges[m.name] = [
                e.seconds
                for e in m.exchanges
                if e.round > 0 and (e.step.startswith(("hop", "part")) or e.step == "decrypt")
            ]
            rounds[m.name] = statistics.median(m.rounds_s) if m.rounds_s else float("nan")
    if exchanges:
        print()
        print(
            "| Flower | one exchange, median s (min–max) | over | round, median s | ratio to as-is (exchange / round) |"
        )
        print("|---|---:|---:|---:|---|")
        for name, hops in exchanges.items():
            base_name = name.replace(", short waits", "")
            ratio = ""
            if name != base_name and exchanges.get(base_name):
                ratio = (
                    f"{statistics.median(hops) / statistics.median(exchanges[base_name]):.2f}× / "
                    f"{rounds[name] / rounds[base_name]:.2f}×"
                )
            print(
                f"| {name} | {statistics.median(hops):.2f} ({min(hops):.2f}–{max(hops):.2f}) | {len(hops)} | "
                f"{rounds[name]:.1f} | {ratio} |"
            )
    return 0 if all(m.mse == base for m, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
