"""Benchmark: fedviz against the protections people pick instead, on the same task, one run.

    .venv/bin/python -m benchmarks.compare                       # defaults: 2048 bits, 50 rounds
    .venv/bin/python -m benchmarks.compare --hospitals 3 10 78 --rounds 5

First the README's table: every protection on the default task (`python -m fedviz compare`'s
rows). Then seconds per round of each encrypted protection at each hospital count, with its
ratio to fedviz's default ring side by side (a ratio above 1: fedviz is faster). Wall times
on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import dataclasses

from fedviz.config import Config
from fedviz.protections import compare
from fedviz.protections.base import Task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--hospitals", type=int, nargs="+", default=[3, 10, 78])
    p.add_argument("--sweep-rounds", type=int, default=5)
    p.add_argument("--protections", default="all")
    p.add_argument("--secagg-up-to", type=int, default=10, help="the largest ring SecAgg+ is deployed for")
    args = p.parse_args(argv)
    names = compare.parse_names(args.protections)
    config = Config(key_length=args.bits, rounds=args.rounds)

    print(
        f"## Every protection, {config.hospitals} hospitals, {config.key_length} bits, {config.rounds} rounds\n"
    )
    rows = []
    for row in compare.compare(config, names):
        rows.append(row)
        print(f"  measured {row.protection}", flush=True)
    print()
    print(
        "| protection | mean test MSE | largest aggregate error | crypto ms/round | whole ms/round | bytes/hospital/round |"
        " set-up | who holds a key | who reads one hospital | dropout |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in rows:
        if r.error is not None:
            print(f"| {r.protection} | cannot run here: {r.error} |||||||||")
            continue
        mean = sum(r.scores) / len(r.scores)
        whole = r.exchange_s if r.exchange_s is not None else r.round_s
        trust = r.trust
        print(
            f"| {r.protection} | {mean:.2f} | {r.max_error:.1e} | {r.crypto_s * 1000:.2f} | {whole * 1000:.2f} | "
            f"{r.bytes_per_hospital:,} | {r.setup_s:.2f} s, {r.setup_bytes:,} B | "
            f"{trust.decryptors if trust else ''} | {trust.readers if trust else ''} | {trust.dropout if trust else ''} |"
        )
    print()
    for line in compare.verdict(rows):
        print(f"- {line}")

    racers = [n for n in names if n in ("fedviz", "phe", "ckks", "secagg")]
    print(f"\n## Seconds per round, {args.sweep_rounds} rounds each, {config.key_length} bits\n")
    print("| hospitals | " + " | ".join(racers) + " | ratios to fedviz ring |")
    print("|---:|" + "---:|" * len(racers) + "---|")
    for n in args.hospitals:
        task = Task.of(dataclasses.replace(config, hospitals=n, rounds=args.sweep_rounds))
        seconds: dict[str, float] = {}
        for name in racers:
            if name == "secagg" and n > args.secagg_up_to:
                continue
            row = compare.measure_one(name, task)
            if row.error is None:
                seconds[name] = row.round_s
        base = seconds.get("fedviz")
        cells = [f"{seconds[k] * 1000:.1f} ms" if k in seconds else "—" for k in racers]
        ratios = ", ".join(
            f"{k} {seconds[k] / base:.1f}×" for k in racers if k != "fedviz" and k in seconds and base
        )
        print(f"| {n} | " + " | ".join(cells) + f" | {ratios} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
