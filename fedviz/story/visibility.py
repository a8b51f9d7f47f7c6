"""Who sees what: each party alone against each thing worth hiding, yes or no, with why.

Invariants:
- Every cell follows from rules, not from a typed table: what a party can recover from the
  ring is `exposed` (by default `fedviz.privacy.attacks.exposed_hospitals`: 2 hospitals each
  recover the other's gradient, 3 or more only the others' sum) and which partial sums it
  knows in the clear is `prefixes` (by default `known_prefixes`: P_n = n·ā for everyone who
  hears the broadcast). Pass other rules and the table follows them.
- Under differential privacy (`noisy`) what a hospital puts in the ring is its clipped
  gradient plus its share of the noise: what a rule recovers exactly is that noised
  gradient, and the cells say so.
- Each party is taken alone (no collusion): a hospital is the coalition of itself, the
  server the empty coalition with the key, an eavesdropper the empty coalition without it.
  Hospitals are numbered by ring position.
- Beyond `COLLAPSE_ABOVE` hospitals the rows are hospital 1, the middle ones (one row, each
  cell checked for every one of them) and hospital n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fedviz.privacy.attacks import exposed_hospitals, known_prefixes
from fedviz.protocol import SERVER_NAME, hospital_name

Rule = Callable[[frozenset[int], bool, int], frozenset[int]]
"""(members, with the server's key, hospitals) -> hospital numbers (or prefix indices)."""

COLUMNS = ("own gradient", "others' gradients", "the sum", "the average", "patient rows", "the private key")
COLLAPSE_ABOVE = 5
EAVESDROPPER = "Eavesdropper on a hop"


@dataclass(frozen=True)
class Cell:
    """One party and one thing: whether it sees it (None: it depends on which middle
    hospital) and the one-line why."""

    sees: bool | None
    why: str


@dataclass(frozen=True)
class Row:
    party: str
    cells: tuple[Cell, ...]
    """One per `COLUMNS` entry, in that order."""


@dataclass(frozen=True)
class _Party:
    name: str
    members: frozenset[int]
    with_server: bool


def table(
    hospitals: int,
    exposed: Rule = exposed_hospitals,
    prefixes: Rule = known_prefixes,
    collapse_above: int = COLLAPSE_ABOVE,
    noisy: bool = False,
) -> tuple[Row, ...]:
    """The who-sees-what table of a ring of `hospitals`: the hospitals, the server, an
    eavesdropper on a hop (`noisy`: the run adds differential-privacy noise)."""

    rows: list[Row] = []
    if hospitals <= collapse_above:
        for k in range(1, hospitals + 1):
            rows.append(
                _row(_Party(hospital_name(k - 1), frozenset({k}), False), hospitals, exposed, prefixes, noisy)
            )
    else:
        rows.append(
            _row(_Party(hospital_name(0), frozenset({1}), False), hospitals, exposed, prefixes, noisy)
        )
        middle = [
            _row(_Party(hospital_name(k - 1), frozenset({k}), False), hospitals, exposed, prefixes, noisy)
            for k in range(2, hospitals)
        ]
        rows.append(_merge(f"Hospital k (middle: 2–{hospitals - 1})", middle))
        last = _Party(hospital_name(hospitals - 1), frozenset({hospitals}), False)
        rows.append(_row(last, hospitals, exposed, prefixes, noisy))
    rows.append(_row(_Party(SERVER_NAME, frozenset(), True), hospitals, exposed, prefixes, noisy))
    rows.append(_row(_Party(EAVESDROPPER, frozenset(), False), hospitals, exposed, prefixes, noisy))
    return tuple(rows)


def _row(party: _Party, hospitals: int, exposed: Rule, prefixes: Rule, noisy: bool = False) -> Row:
    """One party's cells, from the rules."""
    n = hospitals
    hospital = bool(party.members)
    server = party.with_server and not hospital
    found = sorted(exposed(party.members, party.with_server, n) - party.members)
    known = prefixes(party.members, party.with_server, n)
    sum_known = n in known

    if hospital:
        own = Cell(True, "It computes it from its own patients.")
    else:
        own = Cell(False, "It holds no patients, so it has no gradient of its own.")

    if found:
        names = " and ".join(hospital_name(k - 1) for k in found)
        how = f"{n}·ā minus its own gradient" if hospital and not party.with_server else "what it holds"
        others = (
            Cell(
                True,
                f"It recovers {names}'s noised gradient exactly from {how}: what was sent, clipped and with its "
                "share of the DP noise, not the true gradient.",
            )
            if noisy
            else Cell(True, f"It recovers {names}'s gradient exactly from {how}.")
        )
    elif hospital:
        left = n - len(party.members)
        others = Cell(
            False, f"Only their sum ({n}·ā minus its own): the other {left} gradients stay mixed together."
        )
    elif server:
        others = Cell(False, "It decrypts only the total, never one hospital's share.")
    else:
        others = Cell(False, "The hops carry ciphertexts; without the private key they look random.")

    if not sum_known:
        total = Cell(False, "It never sees the total in the clear.")
    elif server:
        total = Cell(
            True,
            "It decrypts it: the only thing it decrypts." + (" It carries the DP noise." if noisy else ""),
        )
    else:
        total = Cell(
            True,
            f"{n} × the broadcast average (the number of hospitals is public)"
            + (", noise included." if noisy else "."),
        )

    if not sum_known:
        average = Cell(False, "It does not hear the broadcast.")
    elif server:
        average = Cell(True, f"It computes it (the total ÷ {n}) and broadcasts it.")
    else:
        average = Cell(True, "It is broadcast in the clear.")

    if hospital:
        rows = Cell(True, "Its own only: patient rows never leave their hospital.")
    else:
        rows = Cell(False, "Patient rows never leave their hospital.")

    if party.with_server:
        key = Cell(True, "It made the key pair and keeps the private key.")
    else:
        key = Cell(False, "Only the server holds it; the public n lets one encrypt, not decrypt.")
    return Row(party.name, (own, others, total, average, rows, key))


def _merge(name: str, rows: Sequence[Row]) -> Row:
    """One row standing for several hospitals: a cell they all agree on keeps its answer;
    one they disagree on says which of them it holds for."""
    cells = []
    for column in range(len(COLUMNS)):
        answers = [r.cells[column] for r in rows]
        if all(a == answers[0] for a in answers):
            cells.append(answers[0])
        elif all(a.sees == answers[0].sees for a in answers):
            cells.append(Cell(answers[0].sees, f"Each of them (e.g. {rows[0].party}): {answers[0].why}"))
        else:
            yes = [r.party for r, a in zip(rows, answers, strict=True) if a.sees]
            cells.append(Cell(None, "Depends on the hospital: yes for " + ", ".join(yes) + "."))
    return Row(name, tuple(cells))
