"""One validated experiment configuration.

Invariant: a `Config` that exists is valid. Every check raises `ConfigError`, whose message
names the field, the value and what is allowed; warnings (allowed but weak choices) are
returned by `Config.warnings()`, never raised.

User text becomes numbers only through `parse_number`, whose `ConfigError`s quote the text as
typed; `label` and `allowed` give each setting's plain name and allowed values, and
`ConfigError.plain` the sentence a form shows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from fedviz.errors import EMPTY, ConfigError

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
Masks = Literal["none", "pairwise"]
Dataset = Literal["diabetes", "breast-cancer", "csv", "sites"]
SplitKind = Literal["contiguous", "iid", "by-feature", "label-skew"]
ModelKind = Literal["linear", "logistic"]
GRADIENT_MODES: tuple[GradientMode, ...] = ("sum", "mean")
ENCODINGS: tuple[Encoding, ...] = ("packed", "per-value")
OBFUSCATORS: tuple[Obfuscator, ...] = ("djn", "standard")
MASKS: tuple[Masks, ...] = ("none", "pairwise")
DATASETS: tuple[Dataset, ...] = ("diabetes", "breast-cancer", "csv", "sites")
SPLITS: tuple[SplitKind, ...] = ("contiguous", "iid", "by-feature", "label-skew")
MODELS: tuple[ModelKind, ...] = ("linear", "logistic")
METRICS = {"linear": "MSE", "logistic": "log-loss"}
"""The test metric each model reports (lower is better for both)."""
DEFAULT_DP_DELTA = 1e-5
DEFAULT_DP_CLIP = 100.0
"""Each patient's gradient is clipped to this L2 norm under differential privacy (a public
choice made before seeing the data: targets run 25-346, features are scaled to about 0.05)."""

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
    dp_epsilon: float | None = None
    """Differential privacy's target epsilon for the federated phase; None: no DP."""
    dp_delta: float = DEFAULT_DP_DELTA
    dp_clip: float = DEFAULT_DP_CLIP
    masks: Masks = "none"
    shuffle_ring: bool = False
    dataset: Dataset = "diabetes"
    data_path: str | None = None
    """The CSV file (dataset "csv"): the file every hospital's part is read from."""
    target: str | None = None
    """The CSV's target column (dataset "csv")."""
    split: SplitKind = "contiguous"
    split_feature: str | None = None
    """The feature the "by-feature" split sorts by."""
    split_alpha: float = 0.5
    """The Dirichlet α of the "label-skew" split (smaller: more skewed)."""
    model: ModelKind = "linear"
    site_paths: tuple[str, ...] = ()
    """Dataset "sites": one CSV per hospital, in ring order (empty in a pilot, where each site
    names its own file to its own node and the coordinator never sees a path)."""
    test_fraction: float = 0.2
    """Dataset "sites": the share of each site's rows it holds out as its own test rows."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            check(name, getattr(self, name))
        if self.dataset == "csv" and not (self.data_path and self.target):
            raise ConfigError(
                "data_path", self.data_path, "a CSV file and its target column for the csv data set"
            )
        if self.dataset == "sites" and self.site_paths and len(self.site_paths) != self.hospitals:
            raise ConfigError(
                "site_paths",
                len(self.site_paths),
                f"one CSV file per hospital ({self.hospitals} hospitals)",
            )
        if self.dataset == "sites" and self.site_paths and not self.target:
            raise ConfigError("target", self.target, "the column every site's file predicts")
        if self.site_paths and self.dataset != "sites":
            raise ConfigError("site_paths", len(self.site_paths), "no files unless each hospital has its own")
        if self.split == "by-feature" and not self.split_feature:
            raise ConfigError(
                "split_feature", self.split_feature, "the feature to sort by for the by-feature split"
            )
        if self.model == "logistic" and self.dataset == "diabetes":
            raise ConfigError(
                "model",
                self.model,
                "linear for the diabetes data (its target, disease progression, is a number; logistic "
                "regression needs a two-valued one such as breast-cancer's diagnosis)",
            )
        if self.dp_epsilon is not None and self.warm_start:
            raise ConfigError(
                "warm_start",
                True,
                "off under differential privacy (a local model depends on every one of its hospital's "
                "patients, so one patient could move every gradient it sends)",
            )

    @property
    def metric(self) -> str:
        """The test metric: "MSE" (linear regression) or "log-loss" (logistic)."""
        return METRICS[self.model]

    @property
    def per_site(self) -> bool:
        """Each hospital holds its own file and its own test rows."""
        return self.dataset == "sites"

    @property
    def is_the_posts_data(self) -> bool:
        """The diabetes data dealt as the seed post deals it."""
        return self.dataset == "diabetes" and self.split == "contiguous"

    @property
    def remedies(self) -> tuple[str, ...]:
        """The privacy remedies this run applies, in words ("masks", "DP ε=1", "shuffled ring")."""
        out = []
        if self.masks == "pairwise":
            out.append("pairwise masks")
        if self.dp_epsilon is not None:
            out.append(f"DP ε={self.dp_epsilon:g}")
        if self.shuffle_ring:
            out.append("shuffled ring")
        return tuple(out)

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
        if isinstance(values.get("site_paths"), list):
            values = {**values, "site_paths": tuple(values["site_paths"])}
        return cls(**values)


FIELD_LABELS = {
    "hospitals": "Hospitals",
    "key_length": "Key length",
    "learning_rate": "Learning rate",
    "rounds": "Rounds",
    "seed": "Seed",
    "gradient": "Gradient",
    "warm_start": "Warm start",
    "encoding": "Encoding",
    "obfuscator": "Encryption randomness",
    "dp_epsilon": "Privacy budget ε",
    "dp_delta": "δ",
    "dp_clip": "Clip norm",
    "masks": "Pairwise masks",
    "shuffle_ring": "Shuffle the ring",
    "dataset": "Data",
    "data_path": "CSV file",
    "target": "Target column",
    "split": "Split",
    "split_feature": "Split by feature",
    "split_alpha": "Skew α",
    "model": "Model",
    "site_paths": "Site files",
    "test_fraction": "Test fraction",
}
"""The words a form shows for each setting (the dashboard's control labels)."""

WHOLE_NUMBER_RANGES = {
    "hospitals": (MIN_HOSPITALS, MAX_HOSPITALS),
    "rounds": (1, MAX_ROUNDS),
    "seed": (0, 2**32 - 1),
}
WHOLE_NUMBER_FIELDS = ("hospitals", "key_length", "rounds", "seed")
"""The settings written as whole numbers (`parse_number` refuses '1e3' or '3.5' for them)."""

_ALLOWED = {
    "hospitals": f"a whole number from {MIN_HOSPITALS} to {MAX_HOSPITALS} (each hospital needs at least "
    f"{MIN_PATIENTS_PER_HOSPITAL} of the {N_TRAIN} training patients)",
    "key_length": "one of " + ", ".join(str(k) for k in KEY_LENGTHS) + " bits",
    "learning_rate": "a finite number greater than 0",
    "rounds": f"a whole number from 1 to {MAX_ROUNDS}",
    "seed": f"a whole number from 0 to {2**32 - 1}",
    "gradient": "one of " + ", ".join(GRADIENT_MODES),
    "warm_start": "true or false",
    "encoding": "one of " + ", ".join(ENCODINGS),
    "obfuscator": "one of " + ", ".join(OBFUSCATORS),
    "dp_epsilon": "a finite number greater than 0 (or no differential privacy)",
    "dp_delta": "a number strictly between 0 and 1",
    "dp_clip": "a finite number greater than 0",
    "masks": "one of " + ", ".join(MASKS),
    "shuffle_ring": "true or false",
    "dataset": "one of " + ", ".join(DATASETS),
    "data_path": "the path of a CSV file",
    "target": "a column of the CSV file",
    "split": "one of " + ", ".join(SPLITS),
    "split_feature": "a feature of the data",
    "split_alpha": "a finite number greater than 0",
    "model": "one of " + ", ".join(MODELS),
    "site_paths": "one CSV file per hospital",
    "test_fraction": "a number strictly between 0 and 1",
}


def label(field: str) -> str:
    """The plain name of a setting: "learning_rate" -> "Learning rate"."""
    return FIELD_LABELS.get(field, field.replace("_", " ").capitalize())


def allowed(field: str) -> str:
    """What a setting accepts, in words, e.g. "a whole number from 1 to 1000" (KeyError for
    a name that is not a setting). The same text every `ConfigError` for it carries."""
    return _ALLOWED[field]


def check(field: str, value: object) -> None:
    """Raise `ConfigError` unless `value` is allowed for the setting `field`."""
    ok: bool
    if field in WHOLE_NUMBER_RANGES:
        low, high = WHOLE_NUMBER_RANGES[field]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif field == "key_length":
        ok = isinstance(value, int) and not isinstance(value, bool) and value in KEY_LENGTHS
    elif field in ("data_path", "target", "split_feature"):
        ok = value is None or (isinstance(value, str) and bool(value.strip()))
    elif field in ("learning_rate", "dp_clip", "dp_epsilon", "dp_delta", "split_alpha"):
        ok = (value is None and field == "dp_epsilon") or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and _positive_float(value)
        )
        if ok and field == "dp_delta":
            ok = isinstance(value, (int, float)) and value < 1
    elif field in ("warm_start", "shuffle_ring"):
        ok = isinstance(value, bool)
    elif field == "site_paths":
        ok = isinstance(value, tuple) and all(isinstance(v, str) and v.strip() for v in value)
    elif field == "test_fraction":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
    else:
        choices = {
            "gradient": GRADIENT_MODES,
            "encoding": ENCODINGS,
            "obfuscator": OBFUSCATORS,
            "masks": MASKS,
            "dataset": DATASETS,
            "split": SPLITS,
            "model": MODELS,
        }[field]
        ok = value in choices
    if not ok:
        raise ConfigError(field, value, allowed(field))


def _positive_float(value: float) -> bool:
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int beyond float64
        return False


def parse_number(field: str, text: str, kind: type[int] | type[float] | None = None) -> int | float:
    """Turn what a user typed into an allowed number, or raise `ConfigError` quoting the text.

    `kind` defaults to int for the whole-number settings and float otherwise. Refused, each
    with its own words: empty text, text that is not a number, NaN and infinity, for whole
    numbers '3.5' (not whole) and '1e3' (whole, but written otherwise: "write 1000"), for
    floats text that underflows to 0 or overflows to infinity, and any value the setting does
    not allow. Underscores between digits are fine ('1_000').
    """
    if kind is None:
        kind = int if field in WHOLE_NUMBER_FIELDS else float
    spec = _ALLOWED.get(field, "a whole number" if kind is int else "a number")
    cleaned = text.strip().replace("_", "")
    if not cleaned:
        raise ConfigError(field, text, spec, EMPTY)
    try:
        exact = Decimal(cleaned)
    except InvalidOperation:
        raise ConfigError(field, text, spec, "is not a number") from None
    if not exact.is_finite():
        raise ConfigError(field, text, spec, "is not a finite number")
    value: int | float
    if kind is int:
        if exact.adjusted() > 100:  # int() of '1e999999999' would take forever
            raise ConfigError(field, text, spec, "is too large")
        if exact != exact.to_integral_value():
            raise ConfigError(field, text, spec, "is not a whole number")
        value = int(exact)
    else:
        value = float(cleaned)
        if value == 0 and exact != 0:
            raise ConfigError(field, text, spec, "is too small to represent (it would become 0)")
        if math.isinf(value):
            raise ConfigError(field, text, spec, "is too large to represent")
    if field in _ALLOWED:
        try:
            check(field, value)
        except ConfigError:
            raise ConfigError(field, text, spec) from None
    if kind is int and not _plain_integer(cleaned):
        raise ConfigError(field, text, spec, "must be written as a whole number", advice=f"write {value}")
    return value


def _plain_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
