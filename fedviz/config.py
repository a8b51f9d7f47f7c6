"""One validated experiment configuration.

Invariant: a `Config` that exists is valid. Every check raises `ConfigError`, whose message
names the field, the value and what is allowed; warnings (allowed but weak choices) are
returned by `Config.warnings()`, never raised.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fedviz.errors import ConfigError

N_PATIENTS = 442
"""Rows in scikit-learn's diabetes data set."""
N_TEST = 50
"""Patients held out as the unbiased test set (the seed's choice)."""
N_TRAIN = N_PATIENTS - N_TEST
MIN_PATIENTS_PER_HOSPITAL = 5
MIN_HOSPITALS = 2
MAX_HOSPITALS = N_TRAIN // MIN_PATIENTS_PER_HOSPITAL
"""78: the most hospitals that still leaves each at least 5 training patients."""
KEY_LENGTHS = (1024, 2048, 3072, 4096)
MAX_ROUNDS = 1000

GradientMode = Literal["sum", "mean"]
Encoding = Literal["packed", "per-value"]
Obfuscator = Literal["djn", "standard"]
GRADIENT_MODES: tuple[GradientMode, ...] = ("sum", "mean")
ENCODINGS: tuple[Encoding, ...] = ("packed", "per-value")
OBFUSCATORS: tuple[Obfuscator, ...] = ("djn", "standard")

SECURITY_BITS = {1024: 80, 2048: 112, 3072: 128, 4096: 152}
"""Symmetric-equivalent strength of an RSA/Paillier modulus (NIST SP 800-57; 4096 interpolated)."""

WARN_TWO_HOSPITALS = (
    "2 hospitals are not private: each hospital subtracts its own gradient from the broadcast "
    "sum and gets the other's exactly. Use at least 3."
)
WARN_1024_BITS = (
    "1024-bit keys give about 80-bit security, below NIST's 112-bit minimum: fine for a quick "
    "demo, not for real data. 2048 is the honest default."
)


@dataclass(frozen=True)
class Config:
    """An experiment: who takes part, the key, and how gradient descent runs.

    Defaults reproduce the seed post's table (3 hospitals, eta 0.01, 50 rounds, seed 42, sum
    gradient, federated rounds continuing from each hospital's local model).
    """

    hospitals: int = 3
    key_length: int = 2048
    learning_rate: float = 0.01
    rounds: int = 50
    seed: int = 42
    gradient: GradientMode = "sum"
    warm_start: bool = True
    encoding: Encoding = "packed"
    obfuscator: Obfuscator = "djn"

    def __post_init__(self) -> None:
        _check_int(
            "hospitals",
            self.hospitals,
            MIN_HOSPITALS,
            MAX_HOSPITALS,
            f"a whole number from {MIN_HOSPITALS} to {MAX_HOSPITALS} (each hospital "
            f"needs at least {MIN_PATIENTS_PER_HOSPITAL} of the {N_TRAIN} training patients)",
        )
        if self.key_length not in KEY_LENGTHS or isinstance(self.key_length, bool):
            raise ConfigError(
                "key_length", self.key_length, "one of " + ", ".join(str(k) for k in KEY_LENGTHS) + " bits"
            )
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ConfigError("learning_rate", lr, "a finite number greater than 0")
        _check_int("rounds", self.rounds, 1, MAX_ROUNDS, f"a whole number from 1 to {MAX_ROUNDS}")
        _check_int("seed", self.seed, 0, 2**32 - 1, "a whole number from 0 to 4294967295")
        _check_choice("gradient", self.gradient, GRADIENT_MODES)
        if not isinstance(self.warm_start, bool):
            raise ConfigError("warm_start", self.warm_start, "true or false")
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("obfuscator", self.obfuscator, OBFUSCATORS)

    @property
    def patients_per_hospital(self) -> int:
        """Training patients each hospital holds (the remainder of 392 / n is dropped)."""
        return N_TRAIN // self.hospitals

    @property
    def security_bits(self) -> int:
        return SECURITY_BITS[self.key_length]

    def warnings(self) -> tuple[str, ...]:
        """Allowed but weak choices, in words."""
        out = []
        if self.hospitals == 2:
            out.append(WARN_TWO_HOSPITALS)
        if self.key_length == 1024:
            out.append(WARN_1024_BITS)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build from a mapping (unknown keys are an error, not ignored)."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                unknown[0], values[unknown[0]], "a known setting: " + ", ".join(cls.__dataclass_fields__)
            )
        return cls(**values)


def _check_int(field: str, value: object, low: int, high: int, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, value, allowed)


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(field, value, "one of " + ", ".join(choices))


def parse_number(field: str, text: str, kind: type[int] | type[float]) -> int | float:
    """Turn user text into a number, or raise `ConfigError` naming the field."""
    cleaned = text.strip().replace("_", "")
    try:
        if kind is int:
            return int(cleaned)
        value = float(cleaned)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(field, text, what) from None
    return value
