"""Benchmark: the seed's per-value ring against fedviz's default path, in one process run.

    .venv/bin/python -m benchmarks.ring                  # the README table (takes ~10 min)
    .venv/bin/python -m benchmarks.ring --keys 2048 --hospitals 3 --repeat 5

For every (key length, hospitals) row it alternates, `--repeat` times:
(a) the post's federated loop exactly as published: phe (with gmpy2) encrypting each of
    the 11 gradient values separately, sequential, hospital after hospital;
(b) fedviz's default run (packed encoding, DJN obfuscators drawn in the process pool).
Both start federated training from the same local models on the same data. It prints the
median and min-max of the federated phase for each, the ratio (a)/(b) of the medians, and
checks that the federated MSE agrees to 0.01. Then the wall time of the whole default CLI
process. Timings are wall-clock on a shared machine: compare ratios, not absolute seconds.
On a loaded machine wall time swings several-fold, so each row also gives CPU seconds:
the seed ring's process time against fedviz's (this process plus its pool workers, read
from /proc) over the federated phase, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
from phe import paillier

from fedviz.config import Config
from fedviz.crypto.pool import shared_pool, warm
from fedviz.data import split
from fedviz.engines.inprocess import run
from fedviz.events import PhaseStarted, RunFinished

TOLERANCE = 0.01


@dataclass(frozen=True)
class Timing:
    seconds: float
    mse: tuple[float, ...]
    detail: dict[str, float]
    cpu: float


def _worker_cpu() -> dict[int, float]:
    """CPU seconds (user + system) used so far by each live worker of the shared pool."""
    out = {}
    for process in list((getattr(shared_pool(), "_processes", None) or {}).values()):
        try:
            with open(f"/proc/{process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[process.pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class CpuClock:
    """CPU seconds of this process (all its threads) plus the shared pool's workers since start."""

    def __init__(self) -> None:
        self._process = time.process_time()
        self._workers = _worker_cpu()

    def seconds(self) -> float:
        workers = sum(t - self._workers.get(pid, 0.0) for pid, t in _worker_cpu().items())
        return time.process_time() - self._process + workers


def seed_ring(config: Config) -> Timing:
    """The post's code path: local fit, then `encrypt_vector` / `sum_encrypted_vectors` /
    `decrypt_vector` round the ring. Only the federated loop is timed."""
    data = split(config.hospitals, config.seed)
    pubkey, privkey = paillier.generate_paillier_keypair(n_length=config.key_length)
    weights = [np.zeros(11) for _ in data.hospital_X]
    for _ in range(config.rounds):
        for k, (X, y) in enumerate(zip(data.hospital_X, data.hospital_y, strict=True)):
            weights[k] = weights[k] - config.learning_rate * (X.dot(weights[k]) - y).dot(X)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(config.rounds):
        aggregate = None
        for k, (X, y) in enumerate(zip(data.hospital_X, data.hospital_y, strict=True)):
            gradient = (X.dot(weights[k]) - y).dot(X)
            encrypted = [pubkey.encrypt(gradient[i]) for i in range(gradient.shape[0])]
            aggregate = (
                encrypted if aggregate is None else [a + b for a, b in zip(aggregate, encrypted, strict=True)]
            )
        assert aggregate is not None
        average = np.array([privkey.decrypt(c) for c in aggregate]) / config.hospitals
        weights = [w - config.learning_rate * average for w in weights]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    mse = tuple(float(np.mean((data.y_test - data.X_test.dot(w)) ** 2)) for w in weights)
    return Timing(seconds, mse, {}, cpu)


def fedviz_ring(config: Config) -> Timing:
    """fedviz's default path; `timings.federated` is the wall time of all federated rounds,
    obfuscator precomputation included (it starts when the federated phase does). CPU is
    counted from the federated phase's start to the run's end, pool workers included."""
    finished = clock = None
    for event in run(config):
        if isinstance(event, PhaseStarted) and event.phase == "federated":
            clock = CpuClock()
        if isinstance(event, RunFinished):
            finished = event
    assert finished is not None and clock is not None
    cpu = clock.seconds()
    t = finished.timings
    detail = {"encrypt": t.encrypt, "add": t.add, "decrypt": t.decrypt, "total": t.total, "keygen": t.keygen}
    return Timing(t.federated, finished.federated_mse, detail, cpu)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} ({min(values):.3f}–{max(values):.3f})"


def cli_wall(bits: int, repeat: int) -> list[float]:
    """Wall time of the whole `python -m fedviz --key-length BITS --json` process."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fedviz", "--key-length", str(bits), "--json"],
            check=True,
            capture_output=True,
        )
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, nargs="+", default=[1024, 2048, 3072])
    p.add_argument("--hospitals", type=int, nargs="+", default=[3, 5, 10])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--seed-repeat-3072", type=int, default=1, help="repetitions of the (slow) seed ring at 3072 bits"
    )
    p.add_argument("--no-cli", action="store_true", help="skip the whole-process CLI timing")
    args = p.parse_args(argv)

    warm(shared_pool())  # like the dashboard, which warms its pool at start-up
    time.sleep(0.5)
    print(
        "| key bits | hospitals | seed ring federated s, median (min–max) | fedviz federated s, median (min–max) "
        "| ratio | max ΔMSE | fedviz: encrypt wait / add / decrypt s | CPU s seed / fedviz (ratio) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    failures = 0
    for bits in args.keys:
        for hospitals in args.hospitals:
            config = Config(hospitals=hospitals, key_length=bits, rounds=args.rounds)
            seed_runs: list[Timing] = []
            ours: list[Timing] = []
            seed_repeat = args.seed_repeat_3072 if bits >= 3072 else args.repeat
            for i in range(args.repeat):
                if i < seed_repeat:
                    seed_runs.append(seed_ring(config))
                ours.append(fedviz_ring(config))
            a = [t.seconds for t in seed_runs]
            b = [t.seconds for t in ours]
            delta = max(
                abs(x - y) for s in seed_runs for o in ours for x, y in zip(s.mse, o.mse, strict=True)
            )
            failures += delta > TOLERANCE
            d = {k: statistics.median(t.detail[k] for t in ours) for k in ("encrypt", "add", "decrypt")}
            cpu_a = statistics.median(t.cpu for t in seed_runs)
            cpu_b = statistics.median(t.cpu for t in ours)
            print(
                f"| {bits} | {hospitals} | {spread(a)} | {spread(b)} | "
                f"{statistics.median(a) / statistics.median(b):6.1f}× | {delta:.1e}{'' if delta <= TOLERANCE else ' ✗'} | "
                f"{d['encrypt']:.3f} / {d['add']:.3f} / {d['decrypt']:.3f} | "
                f"{cpu_a:.2f} / {cpu_b:.3f} ({cpu_a / cpu_b:.0f}×) |",
                flush=True,
            )
    if not args.no_cli:
        print()
        print("| whole `python -m fedviz --json` process | median s (min–max) |")
        print("|---|---:|")
        for bits in (2048, 3072):
            print(
                f"| {bits} bits, 3 hospitals, 50 rounds | {spread(cli_wall(bits, args.repeat))} |", flush=True
            )
    if failures:
        print(
            f"error: {failures} row(s) disagree with the seed ring by more than {TOLERANCE}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
