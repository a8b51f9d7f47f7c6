"""Where an experiment's rows come from: the built-in data sets that ship with scikit-learn
(nothing is downloaded) or the user's own CSV, and how they are dealt to hospitals.

Invariants:
- A `Source` holds raw numeric features (no intercept) and a numeric target; a
  classification target is 0/1 with `classes` naming the two labels.
- `read_csv` accepts exactly: a UTF-8 text file of at most `MAX_CSV_BYTES`, a header of
  distinct non-empty names, a target column among them, and finite numbers in every other
  cell. Anything else raises `DataError` with one sentence naming the row, the column or
  the limit; nothing is guessed or dropped silently.
- `split_for(config)` is deterministic in the config (and the file's bytes); for the post's
  settings it is exactly `diabetes.split`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedviz.config import MIN_PATIENTS_PER_HOSPITAL, N_TEST, Config
from fedviz.data import diabetes, splits, standardise
from fedviz.data.table import Split, Task
from fedviz.errors import DataError

MAX_CSV_BYTES = 20 * 1024 * 1024
"""The largest CSV accepted (20 MB): the whole file is held in memory by every hospital."""
TEST_SHARE = 0.2
"""Share of the rows held out as the shared test set (the diabetes data keeps the post's 50)."""
MAX_COLUMNS = 200


@dataclass(frozen=True)
class Source:
    name: str
    X: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    target: str
    task: Task
    classes: tuple[str, ...] = ()
    standardised: bool = False
    """True for the diabetes data, which scikit-learn ships already scaled."""

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


# --------------------------------------------------------------------------- built-in


def diabetes_source() -> Source:
    X, y = diabetes.load_diabetes_xy()
    return Source(
        "diabetes", X[:, :-1], y, diabetes.FEATURES[:-1], diabetes.TARGET, "regression", standardised=True
    )


@lru_cache(maxsize=1)
def breast_cancer_source() -> Source:
    """scikit-learn's Wisconsin breast-cancer data: 569 tumours, 30 measurements, label 1 =
    benign, 0 = malignant (scikit-learn's coding)."""
    from sklearn.datasets import load_breast_cancer  # about a second: only when chosen

    bunch = load_breast_cancer()
    X = np.asarray(bunch.data, dtype=float)
    y = np.asarray(bunch.target, dtype=float)
    X.setflags(write=False)
    y.setflags(write=False)
    names = tuple(str(n) for n in bunch.feature_names)
    return Source(
        "breast-cancer", X, y, names, "diagnosis (1 = benign)", "classification", ("malignant", "benign")
    )


# --------------------------------------------------------------------------- CSV


def read_csv_path(path: str, target: str) -> Source:
    """A CSV file on disk (see `read_csv`); a missing path or a folder is a `DataError`."""
    if not os.path.exists(path):
        raise DataError(f"the data file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"{path!r} is a folder, not a CSV file")
    size = os.path.getsize(path)
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"the data file is {size / 1e6:.1f} MB; the limit is {MAX_CSV_BYTES // (1024 * 1024)} MB"
        )
    with open(path, "rb") as handle:
        data = handle.read()
    return read_csv(data, target, os.path.basename(path))


@dataclass(frozen=True)
class CsvPreview:
    """What a dashboard needs to offer a target: the columns, and which hold two values."""

    columns: tuple[str, ...]
    two_valued: frozenset[str]
    rows: int


def inspect_csv(data: bytes, name: str = "the CSV file") -> CsvPreview:
    """The file's columns, checked as far as they can be without a target (size, text,
    header, row lengths); the cells are checked when the target is chosen (`read_csv`)."""
    header, body = _table(data, name)
    two = frozenset(h for j, h in enumerate(header) if len({r[j].strip() for r in body}) == 2)
    return CsvPreview(tuple(header), two, len(body))


def usable_target(data: bytes, name: str, preview: CsvPreview) -> str:
    """The column a form offers as the target: the last one if the file reads with it, else
    the first two-valued column that does (a text label such as yes/no). Otherwise the last
    column's `DataError`, so a file with a bad cell is refused before it replaces anything."""
    candidates = [preview.columns[-1], *[c for c in preview.columns if c in preview.two_valued]]
    first_error: DataError | None = None
    for column in candidates:
        try:
            read_csv(data, column, name)
        except DataError as exc:
            first_error = first_error or exc
            continue
        return column
    assert first_error is not None
    raise first_error


def _table(data: bytes, name: str) -> tuple[list[str], list[list[str]]]:
    if len(data) > MAX_CSV_BYTES:
        raise DataError(
            f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_CSV_BYTES // (1024 * 1024)} MB"
        )
    if not data.strip():
        raise DataError(f"{name} is empty")
    if b"\0" in data:
        raise DataError(f"{name} is not a text file (it contains binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text (byte {exc.start} cannot be read)") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(f"{name} is not valid CSV ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    header = [h.strip() for h in rows[0]]
    if len(header) < 2:
        raise DataError(f"{name} has {len(header)} column; it needs a target and at least one feature")
    if len(header) > MAX_COLUMNS:
        raise DataError(f"{name} has {len(header)} columns; the limit is {MAX_COLUMNS}")
    if any(not h for h in header):
        raise DataError(f"column {header.index('') + 1} of {name} has no name in the header row")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise DataError(f"the column name {h!r} appears twice in {name}'s header: names must be distinct")
        seen.add(h)
    body = rows[1:]
    if not body:
        raise DataError(f"{name} has a header but no data rows")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise DataError(f"row {i} of {name} has {len(r)} cells; the header has {len(header)}")
    return header, body


def read_csv(data: bytes, target: str, name: str = "the CSV file") -> Source:
    """Parse and check a CSV: header row, then one row per patient, numbers only."""
    header, body = _table(data, name)
    if not target:
        raise DataError(f"choose the target column: one of {', '.join(header)}")
    if target not in header:
        raise DataError(f"{name} has no column {target!r}: its columns are {', '.join(header)}")
    t = header.index(target)
    labels = sorted({r[t].strip() for r in body if len(r) > t})
    values = np.empty((len(body), len(header)))
    for i, r in enumerate(body, start=2):
        for j, cell in enumerate(r):
            if j == t and not _is_number(cell):
                continue  # a two-valued text target is read below
            try:
                v = float(cell)
            except ValueError:
                raise DataError(
                    f"row {i}, column {header[j]!r} of {name} is {cell.strip()!r}, not a number"
                ) from None
            if not math.isfinite(v):
                raise DataError(
                    f"row {i}, column {header[j]!r} of {name} is {cell.strip()!r}: numbers must be finite"
                )
            values[i - 2, j] = v
    features = tuple(h for j, h in enumerate(header) if j != t)
    X = np.delete(values, t, axis=1)
    if all(_is_number(label) for label in labels):
        y = values[:, t]
        distinct = np.unique(y)
        if len(distinct) == 2:
            classes = tuple(f"{v:g}" for v in distinct)
            return Source(
                name, X, (y == distinct[1]).astype(float), features, target, "classification", classes
            )
        return Source(name, X, y, features, target, "regression")
    if len(labels) != 2:
        shown = ", ".join(repr(label) for label in labels[:4]) + (" …" if len(labels) > 4 else "")
        raise DataError(
            f"the target {target!r} holds text ({shown}): a target must be numeric, or two-valued for "
            "classification"
        )
    y = np.array([1.0 if r[t].strip() == labels[1] else 0.0 for r in body])
    return Source(name, X, y, features, target, "classification", (labels[0], labels[1]))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def example_csv() -> str:
    """A small downloadable example: the first 60 diabetes patients in their own units."""
    raw = diabetes.load_raw()
    lines = ["age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression"]
    for x, y in zip(raw[0][:60], raw[1][:60], strict=True):
        lines.append(",".join(f"{v:g}" for v in (*x, y)))
    return "\n".join(lines) + "\n"


def feature_names(dataset: str) -> tuple[str, ...]:
    """The features of a built-in data set, without the intercept."""
    if dataset == "diabetes":
        return diabetes.FEATURES[:-1]
    return breast_cancer_source().features


# --------------------------------------------------------------------------- the deal


def source_for(config: Config) -> Source:
    if config.dataset == "diabetes":
        return diabetes_source()
    if config.dataset == "breast-cancer":
        return breast_cancer_source()
    assert config.data_path is not None and config.target is not None  # Config checks both
    return read_csv_path(config.data_path, config.target)  # read afresh: never cached across users


def split_for(config: Config) -> Split:
    """The experiment's data: the source dealt to `config.hospitals` hospitals by
    `config.split`, after holding out the test set. Raises `DataError` in words."""
    if config.dataset == "diabetes" and config.split == "contiguous":
        return diabetes.split(config.hospitals, config.seed)  # the post's, bit for bit
    source = source_for(config)
    if config.model == "logistic" and source.task != "classification":
        raise DataError(
            f"logistic regression needs a two-valued target; {source.target!r} of {source.name} has "
            f"{len(np.unique(source.y))} different values: use linear regression"
        )
    test = N_TEST if source.name == "diabetes" else max(1, round(TEST_SHARE * source.rows))
    train_rows = source.rows - test
    needed = config.hospitals * MIN_PATIENTS_PER_HOSPITAL
    if train_rows < needed:
        most = train_rows // MIN_PATIENTS_PER_HOSPITAL
        raise DataError(
            f"{source.name} has {source.rows} rows: {train_rows} for training after {test} test rows, enough for "
            f"at most {most} hospitals with {MIN_PATIENTS_PER_HOSPITAL} each (asked: {config.hospitals})"
        )
    X = np.c_[source.X, np.ones(source.rows)]
    rng = np.random.RandomState(config.seed)
    train_X, train_y, X_test, y_test = splits.shuffle_and_hold_out(X, source.y, test, rng)
    if config.split == "contiguous":
        blocks = splits.contiguous(train_rows, config.hospitals)
    elif config.split == "iid":
        blocks = splits.iid(train_rows, config.hospitals, rng)
    elif config.split == "by-feature":
        if config.split_feature not in source.features:
            raise DataError(
                f"there is no feature {config.split_feature!r} to split by: choose one of {', '.join(source.features)}"
            )
        blocks = splits.by_feature(train_X[:, source.features.index(config.split_feature)], config.hospitals)
    else:
        if source.task != "classification":
            raise DataError("the label-skew split needs a two-valued target (classification)")
        blocks = splits.label_skew(train_y, config.hospitals, config.split_alpha, rng)
    sizes = {len(b) for b in blocks}
    if config.dp_epsilon is not None and config.gradient == "mean" and len(sizes) > 1:
        raise DataError(
            f"differential privacy with the mean gradient needs hospitals of equal size (this split gives "
            f"{min(sizes)} to {max(sizes)} rows): use the sum gradient"
        )
    return Split(
        hospital_X=tuple(train_X[b] for b in blocks),
        hospital_y=tuple(train_y[b] for b in blocks),
        X_test=X_test,
        y_test=y_test,
        features=(*source.features, "intercept"),
        target=source.target,
        task=source.task,
        classes=source.classes,
        standardised=source.standardised,
    )


def prepared(config: Config) -> Split:
    """The configured data, standardised in plaintext if it is in its own units: what the
    ring's standardisation gives, up to its 2^-56 grid (for previews, yardsticks and the
    preflight; a run standardises through the ring). Raises `DataError`."""
    data = split_for(config)
    return data if data.standardised else standardise.plaintext(data)
