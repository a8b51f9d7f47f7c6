"""A rough, honest forecast of a run's wall time, from operations timed on this machine.

The costs that matter are the obfuscators (spread over the pool's workers, overlapping the
ring) and one decryption per ciphertext per round on the critical path. Each is timed once
per key length on random public-size numbers (no key material involved) and cached.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from functools import lru_cache

import gmpy2

from fedviz.config import SECURITY_BITS, Config
from fedviz.crypto.pool import default_workers
from fedviz.engines.inprocess import planned_codec

KEYGEN_S = {1024: 0.01, 2048: 0.06, 3072: 0.3, 4096: 1.2}
"""Typical phe key generation time (prime search varies a lot around these)."""


def _time(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


@lru_cache(maxsize=16)
def operation_costs(key_length: int, obfuscator: str) -> tuple[float, float]:
    """(seconds per obfuscator, seconds per decryption) at this key length, measured."""
    n = gmpy2.mpz(secrets.randbits(key_length) | (1 << (key_length - 1)) | 1)
    nsquare = n * n
    base = gmpy2.mpz(secrets.randbelow(int(nsquare)))
    exponent = gmpy2.mpz(secrets.randbits(2 * SECURITY_BITS[key_length]) if obfuscator == "djn" else n)
    obf = _time(lambda: gmpy2.powmod(base, exponent, nsquare))
    half = key_length // 2
    p2 = gmpy2.mpz(secrets.randbits(half) | (1 << (half - 1)) | 1) ** 2
    e = gmpy2.mpz(secrets.randbits(half))
    # CRT: two half-size exponentiations, computed side by side on two cores
    dec = (1 if default_workers() >= 2 else 2) * _time(lambda: gmpy2.powmod(base % p2, e, p2))
    return obf, dec


FIXED_BASE_SPEEDUP = 0.15
"""DJN obfuscators from the fixed-base tables cost this share of a plain exponentiation
(measured 1.46 -> 0.20 ms at 2048 bits, 5.7 -> 0.85 ms at 4096): a process builds them
after its first 8 draws for a key."""
PER_HOSPITAL_ROUND_S = 2.5e-4
"""Python work per hospital per round besides the big-number operations (gradient, encode,
events), measured on the 2-core reference machine."""


def obfuscator_seconds(config: Config) -> float:
    """One core's time for all of a run's encryption randomness (plain exponentiations)."""
    obf, _ = operation_costs(config.key_length, config.obfuscator)
    cts = planned_codec(config, planned_dims(config) + 1).ciphertexts
    return config.rounds * config.hospitals * cts * obf


LOGISTIC_FIT_S = 0.1
"""scikit-learn's LogisticRegression on the pooled rows, the logistic model's yardstick."""
OWN_UNITS_S = 0.15
"""Reading and checking a data set in its own units (breast cancer: scikit-learn's loader;
a CSV: parsing every cell), besides the standardisation's crypto."""


def setup_seconds(config: Config) -> float:
    """One-off work before the rounds: for data in its own units the standardisation through
    the ring (2d + 1 values per hospital, one ciphertext each, full CRT decryptions), and the
    logistic model's scikit-learn yardstick."""
    seconds = 0.0
    if not config.is_the_posts_data and config.dataset != "diabetes":
        obf, dec = operation_costs(config.key_length, config.obfuscator)
        values = 2 * planned_dims(config) + 1
        seconds += OWN_UNITS_S + values * (config.hospitals * obf + 2 * dec)
    if config.model == "logistic":
        seconds += LOGISTIC_FIT_S
    return seconds


def estimate_seconds(config: Config, workers: int | None = None, others: int = 0) -> float:
    """Expected wall time of `run(config)` with the process pool (a UI's pauses excluded).

    Per round: the decryptions are on the critical path; the obfuscators run on the pool's
    workers, but everything shares the cores, so a round takes at least all CPU work divided
    by the cores. Keygen uses typical times; one-off work is `setup_seconds`. `others`: runs
    already in flight on this machine's cores, each taking an equal share of them. Good to a
    factor of about 1.5, not a promise.
    """
    cores = workers or default_workers()
    obf, dec = operation_costs(config.key_length, config.obfuscator)
    if config.obfuscator == "djn":
        obf *= FIXED_BASE_SPEEDUP
    cts = planned_codec(config, planned_dims(config) + 1).ciphertexts
    critical = cts * dec
    per_round = max(critical, (config.hospitals * cts * obf + critical) / cores)
    per_round += config.hospitals * PER_HOSPITAL_ROUND_S
    work = KEYGEN_S[config.key_length] + setup_seconds(config) + config.rounds * per_round + 0.05
    return work * (1 + max(0, others))


def planned_dims(config: Config) -> int:
    """Features of the configured data, without the intercept (a CSV's from its header line;
    10, the diabetes data's, if that cannot be read)."""
    from fedviz.data.sources import feature_names

    if config.dataset != "csv":
        return len(feature_names(config.dataset))
    try:
        with open(str(config.data_path), encoding="utf-8-sig", errors="replace") as f:
            header = f.readline()
    except OSError:
        return 10
    delimiter = max(",;\t", key=header.count)
    return max(1, len(header.split(delimiter)) - 1)


class Calibration:
    """How recent runs on this server compared with their forecasts: the median of the last
    few actual/forecast ratios (pauses taken out of both), used to scale the next forecast.
    It holds durations only, so one instance may serve every session of a server."""

    def __init__(self, keep: int = 8, least: int = 3) -> None:
        self._ratios: deque[float] = deque(maxlen=keep)
        self._least = least
        self._lock = threading.Lock()

    def record(self, forecast_s: float, actual_s: float) -> None:
        """A finished run's forecast and actual time, both without presentation pauses."""
        if forecast_s >= 0.1 and actual_s > 0:
            with self._lock:
                self._ratios.append(actual_s / forecast_s)

    def factor(self) -> float:
        """The scale for the next forecast: 1 until `least` runs are known, then their median
        ratio, kept between 0.5 and 10."""
        with self._lock:
            ratios = sorted(self._ratios)
        if len(ratios) < self._least:
            return 1.0
        return float(min(10.0, max(0.5, ratios[len(ratios) // 2])))


FLOWER_START_S = 25.0
"""Starting a loopback Flower deployment (SuperLink, SuperNodes registering) and submitting
the run, before the first exchange (measured 20-35 s on the 2-core VM)."""
FLOWER_EXCHANGE_S = 7.0
"""One Flower exchange on loopback: the relay's push, the node's poll, a new ClientApp
process, the reply pulled (`python -m benchmarks.flower`: 4-8 s, more under load; the
parties' own work is milliseconds)."""


def flower_exchanges(config: Config, topology: str) -> float:
    """Sequential exchanges of a Flower run, in units of one exchange: join and the final step
    ask every party at once, as do a star's parts; parallel ClientApp processes share the
    cores, so such an exchange counts as many as the parties per core."""
    cores = default_workers()

    def parallel(parties: int) -> float:
        return max(1.0, parties / cores)

    per_round = config.hospitals + 1 if topology == "ring" else parallel(config.hospitals) + 1
    return parallel(config.hospitals + 1) + config.rounds * per_round + parallel(config.hospitals)


def flower_seconds(config: Config, topology: str) -> float:
    """Expected wall time of a run on a loopback Flower deployment (Flower's latency dominates)."""
    return FLOWER_START_S + flower_exchanges(config, topology) * FLOWER_EXCHANGE_S


CONFIRM_ABOVE_S = 60.0
"""Runs forecast to take longer than this ask for confirmation before they start."""


def human_duration(seconds: float) -> str:
    """A duration as people say it: "35 ms", "0.4 s", "42 s", "15 min", "2 h 5 min"."""
    if 0 < seconds < 0.095:
        return f"{max(1, round(seconds * 1000))} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 600:  # minutes and seconds, so a running clock keeps moving
        whole, rest = divmod(round(seconds), 60)
        return f"{whole} min {rest:02d} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
