"""Benchmark: fedviz at scale against the naive single-core cost of the same crypto, in one run.

    .venv/bin/python -m benchmarks.scale            # 40 hospitals x 200 rounds at 4096 bits (~2 min)
    .venv/bin/python -m benchmarks.scale --quick    # 10 x 50 at 2048 bits, tables up to 2048 bits

1. Per-obfuscator cost of hs**a (DJN, a of 2*kappa bits) at 1024-4096 bits: plain
   gmpy2.powmod against `FixedBaseTable.pow` at the two windows `obfuscators.LADDER` uses,
   with each table's build time and memory (one process, one key), and one CRT decryption.
2. The naive single-core cost of the run's crypto: for every hospital-round, as many plain
   gmpy2.powmod(hs, a, n**2) obfuscators as the packed encoding needs, plus the same
   decryptions (phe's CRT), sequential, on a real key of the configured length.
3. fedviz's engine on that config (packed, djn, the shared process pool, warmed first):
   its federated phase, how long the first federated round took after the keys existed, and
   its MSE against the same protocol in plaintext.
It prints the ratio naive / fedviz, in wall time and in CPU seconds (fedviz: this process
plus its pool workers; see `benchmarks.ring.CpuClock`). Timings are wall-clock on a shared
machine: compare ratios, not absolute seconds; when the machine is loaded, trust the CPU ratio.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import gmpy2
import numpy as np

from benchmarks.ring import CpuClock, spread
from fedviz.config import SECURITY_BITS, Config
from fedviz.crypto import obfuscators
from fedviz.crypto.encoding import make_codec
from fedviz.crypto.fixedbase import FixedBaseTable
from fedviz.crypto.keys import ServerKeys
from fedviz.crypto.pool import shared_pool, warm
from fedviz.data import FEATURES, split
from fedviz.engines.inprocess import run
from fedviz.events import FederatedRound, KeysGenerated, PhaseStarted, RunFinished
from fedviz.protocol import hospitals_for

TOLERANCE = 0.01
WINDOWS = tuple(window for _, window in obfuscators.LADDER)


def per_obfuscator(bits: int, samples: int) -> str:
    """One markdown row: plain powmod vs the tables, build time and memory, one decryption."""
    keys = ServerKeys(bits, "djn")
    n, hs = keys.public.n, keys.public.hs
    assert hs is not None
    nsquare = gmpy2.mpz(n) * n
    exponent_bits = 2 * SECURITY_BITS[bits]
    exps = [secrets.randbits(exponent_bits) | 1 for _ in range(samples)]

    def per_call(f: Callable[[int], object], args: list[int] = exps, chunks: int = 5) -> float:
        """ms per call: the fastest of `chunks` slices of `args` (robust to a busy machine)."""
        size = max(1, len(args) // chunks)
        best = float("inf")
        for i in range(0, len(args), size):
            start = time.perf_counter()
            for a in args[i : i + size]:
                f(a)
            best = min(best, (time.perf_counter() - start) / len(args[i : i + size]))
        return best * 1e3

    plain = per_call(lambda a: gmpy2.powmod(hs, a, nsquare))
    cells = [f"{plain:.3f}"]
    builds, memory = [], []
    for window in WINDOWS:
        start = time.perf_counter()
        table = FixedBaseTable(hs, nsquare, exponent_bits, window)
        builds.append(f"{(time.perf_counter() - start) * 1e3:.0f}")
        memory.append(f"{table.nbytes / 1e6:.1f}")
        ms = per_call(table.pow)
        cells.append(f"{ms:.3f} ({plain / ms:.1f}×)")
        del table
    ciphers = [int(gmpy2.powmod(hs, a, nsquare)) for a in exps[:25]]
    decrypt = per_call(keys.decrypt_raw, ciphers)
    return (
        f"| {bits} | {exponent_bits} | {' | '.join(cells)} | {' / '.join(builds)} | "
        f"{' / '.join(memory)} | {decrypt:.2f} |"
    )


@dataclass(frozen=True)
class Naive:
    obfuscators: float
    decrypt: float
    cpu: float

    @property
    def total(self) -> float:
        return self.obfuscators + self.decrypt


def naive(config: Config) -> Naive:
    """Plain powmod obfuscators for every hospital-round, plus the run's decryptions,
    sequential, in this process (a real key of the configured length, made before timing)."""
    keys = ServerKeys(config.key_length, "djn")
    n, hs, exponent_bits = keys.public.n, keys.public.hs, keys.public.exponent_bits
    nsquare = gmpy2.mpz(n) * n
    per_party = make_codec(config.encoding, n, len(FEATURES), config.hospitals).ciphertexts
    cipher = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(config.rounds * config.hospitals * per_party):
        cipher = gmpy2.powmod(hs, secrets.randbits(exponent_bits) | 1, nsquare)
    obf = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(config.rounds * per_party):
        keys.decrypt_raw(int(cipher))
    return Naive(obf, time.perf_counter() - start, time.process_time() - cpu)


@dataclass(frozen=True)
class EngineRun:
    federated: float
    first_round: float
    encrypt: float
    add: float
    decrypt: float
    mse: tuple[float, ...]
    cpu: float


def engine(config: Config) -> EngineRun:
    """One run; CPU counted from the federated phase's start, pool workers included."""
    finished = keys_at = first_at = clock = None
    for event in run(config):
        if isinstance(event, KeysGenerated):
            keys_at = time.perf_counter()
        elif isinstance(event, PhaseStarted) and event.phase == "federated":
            clock = CpuClock()
        elif isinstance(event, FederatedRound) and first_at is None:
            first_at = time.perf_counter()
        elif isinstance(event, RunFinished):
            finished = event
    assert finished is not None and keys_at is not None and first_at is not None and clock is not None
    cpu = clock.seconds()
    t = finished.timings
    return EngineRun(
        t.federated, first_at - keys_at, t.encrypt, t.add, t.decrypt, finished.federated_mse, cpu
    )


def plaintext_mse(config: Config) -> tuple[float, ...]:
    """The same protocol without encryption: local rounds, then rounds on the exact average."""
    data = split(config.hospitals, config.seed)
    hospitals = hospitals_for(config, data.hospital_X, data.hospital_y)
    for _ in range(config.rounds):
        for h in hospitals:
            h.step(h.gradient(), config.learning_rate)
    if not config.warm_start:
        for h in hospitals:
            h.weights = np.zeros(len(FEATURES))
    for _ in range(config.rounds):
        average = np.sum([h.gradient() for h in hospitals], axis=0) / config.hospitals
        for h in hospitals:
            h.step(average, config.learning_rate)
    return tuple(h.test_score(data.X_test, data.y_test) for h in hospitals)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10 hospitals x 50 rounds at 2048 bits")
    p.add_argument("--hospitals", type=int)
    p.add_argument("--rounds", type=int)
    p.add_argument("--bits", type=int, choices=(1024, 2048, 3072, 4096))
    p.add_argument("--repeat", type=int, default=1, help="engine runs (the naive pass runs once)")
    p.add_argument("--table-bits", type=int, nargs="*", help="key lengths of the per-obfuscator table")
    p.add_argument("--samples", type=int, default=200, help="exponentiations per table cell")
    args = p.parse_args(argv)
    hospitals = args.hospitals or (10 if args.quick else 40)
    rounds = args.rounds or (50 if args.quick else 200)
    bits = args.bits or (2048 if args.quick else 4096)
    table_bits = (
        args.table_bits
        if args.table_bits is not None
        else ([1024, 2048] if args.quick else [1024, 2048, 3072, 4096])
    )

    if table_bits:
        w_small, w_large = WINDOWS[0], WINDOWS[-1]
        print(
            f"| key bits | a bits | plain hs**a ms | table w={w_small} ms | table w={w_large} ms "
            f"| build w={w_small} / w={w_large} ms | memory w={w_small} / w={w_large} MB | one decryption ms |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in table_bits:
            print(per_obfuscator(b, args.samples), flush=True)
        print()

    warm(shared_pool())  # like the dashboard, which warms its pool at start-up
    time.sleep(1.0)
    config = Config(hospitals=hospitals, key_length=bits, rounds=rounds)
    print(f"{hospitals} hospitals × {rounds} rounds at {bits} bits (packed, djn):", flush=True)
    base = naive(config)
    print(
        f"  naive single core: {base.total:.3f} s "
        f"(obfuscators {base.obfuscators:.3f} s + decryptions {base.decrypt:.3f} s; CPU {base.cpu:.3f} s)",
        flush=True,
    )
    runs = [engine(config) for _ in range(args.repeat)]
    fed = statistics.median(r.federated for r in runs)
    print(
        f"  fedviz federated phase: {spread([r.federated for r in runs])} s; "
        f"encrypt wait {statistics.median(r.encrypt for r in runs):.3f} / "
        f"add {statistics.median(r.add for r in runs):.3f} / "
        f"decrypt {statistics.median(r.decrypt for r in runs):.3f} s; "
        f"first round {statistics.median(r.first_round for r in runs) * 1e3:.0f} ms after the keys; "
        f"CPU {spread([r.cpu for r in runs])} s (this process + pool workers)"
    )
    reference = plaintext_mse(config)
    delta = max(abs(x - y) for r in runs for x, y in zip(r.mse, reference, strict=True))
    cpu = statistics.median(r.cpu for r in runs)
    print(
        f"  ratio naive / fedviz: {base.total / fed:.1f}× wall, {base.cpu / cpu:.1f}× CPU   "
        f"max ΔMSE vs plaintext: {delta:.1e}"
    )
    if delta > TOLERANCE:
        print(f"error: the encrypted run's MSE differs from plaintext by {delta:.3g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
