"""Where an experiment's rows come from: the built-in data sets that ship with scikit-learn
(nothing is downloaded) or the user's own CSV, and how they are dealt to hospitals.

Invariants:
- A `Source` holds raw numeric features (no intercept) and a numeric target; a
  classification target is 0/1 with `classes` naming the two labels.
- `read_csv` accepts exactly: a UTF-8 text file of at most `MAX_CSV_BYTES`, comma-separated
  (or semicolon-, tab- or pipe-separated when the header and first rows show that delimiter
  and no other), a header of distinct non-empty names, a target column among them holding
  numbers or two text values and at least two different values, and finite numbers written
  with a decimal point in every other cell. Anything else raises one `DataError` with one
  sentence naming the rows, the columns or the limit; a file's several problems are listed
  together in it, grouped by column and bounded in length; nothing is guessed (a decimal
  comma is refused, not read) or dropped silently.
- `deal(config)` is deterministic in the config (and the file's bytes); the post's own split
  and each site's own file are dealt elsewhere (`fedviz.data.deal`).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from fedviz.config import MIN_PATIENTS_PER_HOSPITAL, N_TEST, Config
from fedviz.data import diabetes, splits
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

UNNAMED = "the CSV file"
"""What messages call a CSV given without a file name."""
DELIMITERS = ",;\t|"
"""The delimiters a file may use; comma unless the header and first rows clearly say another."""
SNIFF_CHARS = 64 * 1024
SNIFF_ROWS = 200
MAX_QUOTED_ROWS = 5
"""Rows a message names per column before "and N more"."""
MAX_QUOTED_VALUES = 3
MAX_LISTED_PROBLEMS = 6
"""Problems one message lists before "and N more"."""
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


def _error(message: str, name: str) -> DataError:
    """A `DataError` whose `plain` keeps the user's file name as they spelled it."""
    return DataError(message, file=None if name == UNNAMED else name)


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


def inspect_csv(data: bytes, name: str = UNNAMED) -> CsvPreview:
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


# ---- how problems are worded: alone (the whole sentence) or listed among others


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _and(items: list[str], limit: int | None = None) -> str:
    """'a', 'a and b', 'a, b and c'; past `limit` items 'a, b, c and 4 more'."""
    if limit is not None and len(items) > limit:
        return f"{', '.join(items[:limit])} and {len(items) - limit} more"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _rows(numbers: list[int]) -> str:
    """'row 4', 'rows 2 and 5', 'rows 2, 5, 9, 11, 12 and 40 more'."""
    word = "row" if len(numbers) == 1 else "rows"
    return f"{word} {_and([str(n) for n in numbers], MAX_QUOTED_ROWS)}"


def _cell(text: str) -> str:
    """A cell as a message quotes it, cut short if long."""
    return repr(text if len(text) <= 24 else text[:23] + "…")


def _values(cells: list[str]) -> str:
    """The distinct cells in order, quoted, at most `MAX_QUOTED_VALUES`: "'M', 'F', …"."""
    distinct = list(dict.fromkeys(cells))
    shown = ", ".join(_cell(c) for c in distinct[:MAX_QUOTED_VALUES])
    return shown + (", …" if len(distinct) > MAX_QUOTED_VALUES else "")


def _point(cell: str) -> str:
    return cell.replace(",", ".")


_KINDS = ("text", "decimal comma", "empty", "non-finite")


@dataclass
class _Cells:
    """The cells of one column with one kind of problem (one of `_KINDS`), in row order."""

    column: str
    kind: str
    rows: list[int] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)

    def alone(self, name: str) -> str:
        if len(self.rows) == 1:
            where, cell = f"row {self.rows[0]}, column {self.column!r} of {name}", self.cells[0]
            if self.kind == "empty":
                return f"{where} is empty: fill it in or remove the row"
            if self.kind == "decimal comma":
                return (
                    f"{where} is {_cell(cell)}, with a decimal comma: write {_point(cell)} "
                    "(numbers need a decimal point)"
                )
            if self.kind == "non-finite":
                return f"{where} is {_cell(cell)}: numbers must be finite"
            return f"{where} is {_cell(cell)}, not a number"
        tail = {
            "text": ", not numbers",
            "decimal comma": f": numbers need a decimal point (write {_point(self.cells[0])})",
            "empty": ": fill them in or remove those rows",
            "non-finite": ": numbers must be finite",
        }[self.kind]
        return self._what(f"column {self.column!r} of {name}") + tail

    def listed(self) -> str:
        if self.kind == "empty" and len(self.rows) == 1:
            return f"row {self.rows[0]}, column {self.column!r} is empty"
        return self._what(f"column {self.column!r}")

    def _what(self, column: str) -> str:
        rows, values, one = _rows(self.rows), _values(self.cells), len(self.rows) == 1
        if self.kind == "empty":
            return f"{column} is empty in {rows}"
        if self.kind == "decimal comma":
            return f"{column} has {'a decimal comma' if one else 'decimal commas'} in {rows} ({values})"
        if self.kind == "non-finite":
            numbers = "a non-finite number" if one else "non-finite numbers"
            return f"{column} holds {numbers} in {rows} ({values})"
        return f"{column} holds text in {rows} ({values})"


@dataclass
class _Ragged:
    """Rows whose number of cells is not the header's."""

    rows: list[int]
    cells: list[int]
    width: int
    delimiter: str

    def alone(self, name: str) -> str:
        if len(self.rows) > MAX_QUOTED_ROWS:
            return f"in {name}{self._read_as()}, {self.listed()}"
        if len(self.rows) == 1:
            return (
                f"row {self.rows[0]} of {name}{self._read_as()} has {_count(self.cells[0], 'cell')}; "
                f"the header has {self.width}"
            )
        cells = _and([str(n) for n in self.cells])
        return (
            f"{_rows(self.rows)} of {name}{self._read_as()} have {cells} cells; the header has {self.width}"
        )

    def listed(self) -> str:
        if len(self.rows) > MAX_QUOTED_ROWS:
            return f"{_rows(self.rows)} do not have the header's {self.width} cells"
        if len(self.rows) == 1:
            return f"row {self.rows[0]} has {_count(self.cells[0], 'cell')}, not the header's {self.width}"
        cells = _and([str(n) for n in self.cells])
        return f"{_rows(self.rows)} have {cells} cells, not the header's {self.width}"

    def _read_as(self) -> str:
        return "" if self.delimiter == "," else f" (read as {_DELIMITER_NAMES[self.delimiter]}-separated)"


@dataclass
class _Whole:
    """A problem of a whole column or file: its sentence alone (given the file name) and listed."""

    full: Callable[[str], str]
    short: str

    def alone(self, name: str) -> str:
        return self.full(name)

    def listed(self) -> str:
        return self.short


_Problem = _Cells | _Ragged | _Whole


def _refusal(problems: list[_Problem], name: str) -> DataError:
    """One `DataError` for all of a file's problems: the problem's own sentence if there is
    one, else "N problems in <name>: ...; ..." (at most `MAX_LISTED_PROBLEMS` listed)."""
    if len(problems) == 1:
        return _error(problems[0].alone(name), name)
    listed = "; ".join(p.listed() for p in problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return _error(
        f"{len(problems)} problems in {name}: {listed}"
        + (f"; and {_count(more, 'more problem')}" if more > 0 else ""),
        name,
    )


# ---- reading the table


def _not_text(data: bytes, name: str) -> str | None:
    """What kind of file the first bytes show this is, if it is a known non-CSV format."""
    save = "save it as CSV (comma-separated) first"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if b"xl/workbook" in data:
            return f"{name} is a spreadsheet (Excel .xlsx), not CSV text: {save}"
        if data[30:].startswith(b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet"):
            return f"{name} is a spreadsheet (OpenDocument .ods), not CSV text: {save}"
        return f"{name} is a zip archive, not CSV text: extract the CSV file from it first"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if "Workbook".encode("utf-16-le") in data or "Book".encode("utf-16-le") in data:
            return f"{name} is a spreadsheet (Excel .xls), not CSV text: {save}"
        return f"{name} is a Microsoft Office file (97–2003), not CSV text: {save}"
    if data.startswith(b"%PDF"):
        return f"{name} is a PDF document, not CSV text: export the table as CSV (comma-separated) first"
    if data.startswith(b"\x1f\x8b"):
        return f"{name} is gzip-compressed, not CSV text: decompress it first"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return f"{name} is UTF-16 text, not UTF-8: save it as CSV UTF-8 (comma-separated)"
    return None


def _delimiter(text: str) -> str:
    """The file's delimiter: the one of `DELIMITERS` that splits the header into two or more
    columns and the first `SNIFF_ROWS` rows evenly, if exactly one does; comma if several do
    and comma is one of them, or if none does and comma or several split the header;
    otherwise the only one that splits the header (its rows are then refused as uneven)."""
    sample = text
    if len(text) > SNIFF_CHARS:
        sample = text[: text.rfind("\n", 0, SNIFF_CHARS) + 1] or text[:SNIFF_CHARS]
    shapes: dict[str, tuple[int, bool]] = {}
    for d in DELIMITERS:
        try:
            rows = [r for r in itertools.islice(csv.reader(io.StringIO(sample), delimiter=d), SNIFF_ROWS)]
        except csv.Error:
            continue
        if len(sample) < len(text) and len(rows) > 1:
            rows = rows[:-1]  # the last may be cut short
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if rows:
            shapes[d] = (len(rows[0]), all(len(r) == len(rows[0]) for r in rows))
    even = [d for d, (width, same) in shapes.items() if width >= 2 and same]
    if len(even) == 1:
        return even[0]
    if even:
        return ","
    wide = [d for d, (width, _) in shapes.items() if width >= 2]
    return wide[0] if len(wide) == 1 else ","


@dataclass(frozen=True)
class _Parsed:
    header: list[str]
    body: list[list[str]]
    """The data rows with as many cells as the header."""
    numbers: list[int]
    """Each body row's number as a spreadsheet shows it (the first record is row 1)."""
    ragged: _Ragged | None
    delimiter: str


def _parse(data: bytes, name: str) -> _Parsed:
    """The file's header and rows; whole-file and header problems raise, uneven rows are
    returned (`ragged`) so that `read_csv` can name them with the cells' problems."""
    if len(data) > MAX_CSV_BYTES:
        raise _error(
            f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_CSV_BYTES // (1024 * 1024)} MB", name
        )
    if not data.strip():
        raise _error(f"{name} is empty", name)
    other = _not_text(data, name)
    if other is not None:
        raise _error(other, name)
    if b"\0" in data:
        raise _error(f"{name} is not a text file (it contains binary data)", name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _error(f"{name} is not UTF-8 text (byte {exc.start} cannot be read)", name) from None
    delimiter = _delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise _error(f"{name} is not valid CSV ({exc})", name) from None
    rows = [(n, r) for n, r in enumerate(records, start=1) if any(cell.strip() for cell in r)]
    header = [h.strip() for h in rows[0][1]]
    if len(header) < 2:
        marks = [d for d in DELIMITERS[1:] if d in rows[0][1][0]]
        if marks:
            shown = _and(["a tab" if d == "\t" else repr(d) for d in marks])
            looks = " or ".join(f"{_DELIMITER_NAMES[d]}-" for d in marks) + "delimited"
            unclear = (
                "but not clearly which" if len(marks) > 1 else "but its first rows do not split evenly on it"
            )
            raise _error(
                f"{name} has 1 column when read as comma-separated; its header contains {shown}, so it looks "
                f"{looks} {unclear}: save it as comma-separated CSV",
                name,
            )
        raise _error(f"{name} has 1 column; it needs a target and at least one feature", name)
    if len(header) > MAX_COLUMNS:
        raise _error(f"{name} has {len(header)} columns; the limit is {MAX_COLUMNS}", name)
    unnamed = [str(j + 1) for j, h in enumerate(header) if not h]
    if len(unnamed) == 1:
        raise _error(f"column {unnamed[0]} of {name} has no name in the header row", name)
    if unnamed:
        raise _error(
            f"columns {_and(unnamed, MAX_QUOTED_ROWS)} of {name} have no name in the header row", name
        )
    twice = [h for h in dict.fromkeys(header) if header.count(h) > 1]
    if len(twice) == 1:
        times = header.count(twice[0])
        said = "twice" if times == 2 else f"{times} times"
        raise _error(
            f"the column name {twice[0]!r} appears {said} in {name}'s header: names must be distinct", name
        )
    if twice:
        names = _and([repr(h) for h in twice], MAX_QUOTED_ROWS)
        raise _error(
            f"the column names {names} each appear more than once in {name}'s header: names must be distinct",
            name,
        )
    if len(rows) == 1:
        raise _error(f"{name} has a header but no data rows", name)
    body, numbers, bad, cells = [], [], [], []
    for n, r in rows[1:]:
        if len(r) == len(header):
            body.append(r)
            numbers.append(n)
        else:
            bad.append(n)
            cells.append(len(r))
    ragged = _Ragged(bad, cells, len(header), delimiter) if bad else None
    return _Parsed(header, body, numbers, ragged, delimiter)


def _table(data: bytes, name: str) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows; every row whose length is not the header's is named in
    one `DataError`."""
    parsed = _parse(data, name)
    if parsed.ragged is not None:
        raise _refusal([parsed.ragged], name)
    return parsed.header, parsed.body


def read_csv(data: bytes, target: str, name: str = UNNAMED) -> Source:
    """Parse and check a CSV: header row, then one row per patient, numbers only. Every
    problem found in the rows and cells is named in one `DataError` (see `_refusal`)."""
    parsed = _parse(data, name)
    header, body = parsed.header, parsed.body
    if not target or target not in header:
        if parsed.ragged is not None:
            raise _refusal([parsed.ragged], name)
        if not target:
            raise _error(f"choose the target column: one of {', '.join(header)}", name)
        raise _error(f"{name} has no column {target!r}: its columns are {', '.join(header)}", name)
    t = header.index(target)
    groups: dict[tuple[int, int], _Cells] = {}
    target_text: list[tuple[int, str]] = []  # (row number, cell) of text in the target
    values = np.zeros((len(body), len(header)))
    for i, (number, r) in enumerate(zip(parsed.numbers, body, strict=True)):
        for j, cell in enumerate(r):
            try:
                v = float(cell)
            except ValueError:
                s = cell.strip()
                kind = "empty" if not s else "decimal comma" if _DECIMAL_COMMA.fullmatch(s) else "text"
                if kind == "text" and j == t:
                    target_text.append((number, s))  # a two-valued text target is read below
                    continue
                groups.setdefault((j, _KINDS.index(kind)), _Cells(header[j], kind)).rows.append(number)
                groups[j, _KINDS.index(kind)].cells.append(s)
                continue
            if not math.isfinite(v):
                key = (j, _KINDS.index("non-finite"))
                groups.setdefault(key, _Cells(header[j], "non-finite")).rows.append(number)
                groups[key].cells.append(cell.strip())
                continue
            values[i, j] = v
    wrong = {n for g in groups.values() if g.column == target for n in g.rows}
    numeric_labels = {r[t].strip() for n, r in zip(parsed.numbers, body, strict=True) if n not in wrong}
    numeric_labels -= {s for _, s in target_text}
    text_labels = sorted({s for _, s in target_text})
    labels = sorted(numeric_labels | set(text_labels))
    problems: list[tuple[tuple[int, int], _Problem]] = [(key, g) for key, g in groups.items()]
    whole = parsed.ragged is None and not wrong  # every row's target is known
    if not text_labels:
        if whole and len(np.unique(values[:, t])) == 1:
            problems.append(((t, -1), _constant(target, f"{values[0, t]:g}")))
    elif len(labels) == 1:
        if whole:
            problems.append(((t, -1), _constant(target, _cell(labels[0]))))
    elif len(labels) != 2 and not numeric_labels:
        problems.append(((t, -1), _text_target(target, labels)))
    elif len(labels) != 2:
        cells = _Cells(target, "text", [n for n, _ in target_text], [s for _, s in target_text])
        problems.append(((t, _KINDS.index("text")), cells))
    problems = _merge_decimal_commas(problems)
    if parsed.ragged is not None:
        problems.insert(0, ((-1, 0), parsed.ragged))
    if problems:
        raise _refusal([p for _, p in sorted(problems, key=lambda kp: kp[0])], name)
    features = tuple(h for j, h in enumerate(header) if j != t)
    X = np.delete(values, t, axis=1)
    if not text_labels:
        y = values[:, t]
        distinct = np.unique(y)
        if len(distinct) == 2:
            classes = tuple(f"{v:g}" for v in distinct)
            return Source(
                name, X, (y == distinct[1]).astype(float), features, target, "classification", classes
            )
        return Source(name, X, y, features, target, "regression")
    y = np.array([1.0 if r[t].strip() == labels[1] else 0.0 for r in body])
    return Source(name, X, y, features, target, "classification", (labels[0], labels[1]))


def _constant(target: str, value: str) -> _Whole:
    return _Whole(
        lambda name: (
            f"the target {target!r} of {name} has the same value ({value}) in every row: there is "
            "nothing to learn; choose another target"
        ),
        f"the target {target!r} has the same value ({value}) in every row",
    )


def _text_target(target: str, labels: list[str]) -> _Whole:
    shown = _values(labels)
    return _Whole(
        lambda name: (
            f"the target {target!r} of {name} holds text ({shown}): a target must be numeric, or "
            "two-valued for classification"
        ),
        f"the target {target!r} holds text ({shown}) but is not two-valued",
    )


def _merge_decimal_commas(
    problems: list[tuple[tuple[int, int], _Problem]],
) -> list[tuple[tuple[int, int], _Problem]]:
    """Decimal commas in several columns are one problem: the file's number format."""
    kind = _KINDS.index("decimal comma")
    commas = sorted(
        ((key, p) for key, p in problems if key[1] == kind and isinstance(p, _Cells)), key=lambda kp: kp[0]
    )
    if len(commas) < 2:
        return problems
    columns = _and([repr(p.column) for _, p in commas], MAX_QUOTED_ROWS)
    first = min((p for _, p in commas), key=lambda p: p.rows[0])  # the topmost, then leftmost
    example = f"row {first.rows[0]}, column {first.column!r} is {_cell(first.cells[0])}"
    merged = _Whole(
        lambda name: (
            f"{name} uses decimal commas in columns {columns} ({example}): numbers need a decimal "
            "point; save the file with '.' as the decimal separator"
        ),
        f"decimal commas in columns {columns} ({example})",
    )
    return [(key, p) for key, p in problems if key[1] != kind] + [(commas[0][0], merged)]


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


def deal(config: Config) -> Split:
    """One source (a built-in set or one CSV) dealt to `config.hospitals` hospitals by
    `config.split`, after holding out the shared test set. Raises `DataError` in words."""
    source = source_for(config)
    if config.model == "logistic" and source.task != "classification":
        raise DataError(
            f"logistic regression needs a two-valued target; {source.target!r} of {source.name} has "
            f"{len(np.unique(source.y))} different values: use linear regression"
        )
    test = _test_rows(config, source.rows)
    train_rows = source.rows - test
    needed = config.hospitals * MIN_PATIENTS_PER_HOSPITAL
    if train_rows < needed:
        raise _error(_too_few_rows(config, source), source.name)
    X = np.c_[source.X, np.ones(source.rows)]
    rng = np.random.RandomState(config.seed)
    train_X, train_y, X_test, y_test = splits.shuffle_and_hold_out(X, source.y, test, rng)
    if config.model == "logistic" and len(np.unique(train_y)) < 2:
        only, other = source.classes[int(train_y[0])], source.classes[1 - int(train_y[0])]
        raise _error(
            f"with seed {config.seed}, all {train_rows} training rows of {source.name} have the target "
            f"{source.target!r} = {only!r} and every row with {other!r} is among the "
            f"{_count(test, 'test row')}: logistic regression needs both values to learn from; choose "
            f"another seed or add rows with {other!r}",
            source.name,
        )
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


def _test_rows(config: Config, rows: int) -> int:
    """The rows held out for testing: the post's 50 for the diabetes data, else `TEST_SHARE`."""
    return N_TEST if config.dataset == "diabetes" else max(1, round(TEST_SHARE * rows))


def _too_few_rows(config: Config, source: Source) -> str:
    """Why the rows cannot be dealt to the hospitals, with the rows they would need in all."""
    test = _test_rows(config, source.rows)
    train, needed = source.rows - test, config.hospitals * MIN_PATIENTS_PER_HOSPITAL
    total = needed + 1
    while total - _test_rows(config, total) < needed:
        total += 1
    text = (
        f"{source.name} has {_count(source.rows, 'row')}: {train} for training after "
        f"{_count(test, 'test row')}; {config.hospitals} hospitals need at least {needed} training rows "
        f"({MIN_PATIENTS_PER_HOSPITAL} each), so at least {total} rows in all"
    )
    most = train // MIN_PATIENTS_PER_HOSPITAL
    return text + (f"; these {source.rows} rows are enough for at most {most} hospitals" if most >= 2 else "")
