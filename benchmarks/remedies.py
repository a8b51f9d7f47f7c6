"""Benchmark: what each privacy remedy costs, against the same run without it, in one run.

    .venv/bin/python -m benchmarks.remedies                      # 3, 20 and 78 hospitals, 2048 bits
    .venv/bin/python -m benchmarks.remedies --hospitals 3 --rounds 50 --repeats 5

For each hospital count it runs the in-process engine (inline randomness, so the remedies'
own cost is not hidden behind worker processes) with no remedy, pairwise masks, DP and both,
`repeats` times each, interleaved, and prints the median federated-phase time, the part
spent on masks, the bytes per round and the one-off setup bytes, each as a ratio to no
remedy. It also checks that masks change no result. Wall times on a shared machine:
compare within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

from fedviz.config import Config
from fedviz.engines.inprocess import run
from fedviz.events import MasksAgreed, RunFinished

REMEDIES = {
    "none": {},
    "masks": {"masks": "pairwise"},
    "DP ε=1": {"dp_epsilon": 1.0},
    "masks + DP": {"masks": "pairwise", "dp_epsilon": 1.0},
}


def once(config: Config) -> tuple[RunFinished, int]:
    finished, setup = None, 0
    for event in run(config, pool=None):
        if isinstance(event, RunFinished):
            finished = event
        elif isinstance(event, MasksAgreed):
            setup = event.public_bytes
    assert finished is not None
    return finished, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, nargs="*", default=[3, 20, 78])
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.bits}-bit keys, {args.rounds} federated rounds, cold start, inline randomness")
    print(
        f"{'hospitals':>9} {'remedy':<11} {'federated s':>11} {'×':>6} {'masks s':>8} {'bytes/round':>11} {'setup B':>8}"
    )
    for n in args.hospitals:
        base = Config(
            hospitals=n,
            key_length=args.bits,
            rounds=args.rounds,
            warm_start=False,
            learning_rate=0.01 if n <= 20 else 0.002,
        )
        times: dict[str, list[float]] = {name: [] for name in REMEDIES}
        masks: dict[str, list[float]] = {name: [] for name in REMEDIES}
        results: dict[str, tuple[RunFinished, int]] = {}
        for _ in range(args.repeats):
            for name, change in REMEDIES.items():
                finished, setup = once(dataclasses.replace(base, **change))  # type: ignore[arg-type]
                times[name].append(finished.timings.federated)
                masks[name].append(finished.timings.masks)
                results[name] = (finished, setup)
        assert results["masks"][0].federated_mse == results["none"][0].federated_mse, "masks changed a result"
        reference = statistics.median(times["none"])
        for name in REMEDIES:
            t = statistics.median(times[name])
            finished, setup = results[name]
            print(
                f"{n:>9} {name:<11} {t:>11.3f} {t / reference:>6.2f} {statistics.median(masks[name]):>8.3f} "
                f"{finished.bytes_per_round:>11,} {setup:>8}"
            )


if __name__ == "__main__":
    main()
