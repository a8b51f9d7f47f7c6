"""fedviz against the protections people would pick instead, on the same task: every row
measured in this run, the cost per round as the hospitals grow, and a verdict in plain words
computed from the numbers.

`compare` yields one `Measured` per protection as it finishes (the CLI, the Compare page and
the tests consume that stream); a protection that cannot run here yields a row whose `error`
says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fedviz.config import Config
from fedviz.protections.base import Measured, Protection, Task


def _none() -> Protection:
    from fedviz.protections.plain import NoProtection

    return NoProtection()


def _post() -> Protection:
    from fedviz.protections.post import PhePerValue

    return PhePerValue()


def _fedviz(kind: str) -> Callable[[], Protection]:
    def make() -> Protection:
        from fedviz.protections import fedviz_rows

        rows: dict[str, Callable[[], Protection]] = {
            "ring": fedviz_rows.FedvizRing,
            "star": fedviz_rows.FedvizStar,
            "masks": fedviz_rows.FedvizMasks,
            "dp": fedviz_rows.FedvizDP,
        }
        return rows[kind]()

    return make


def _secagg() -> Protection:
    from fedviz.protections.secagg import SecAggPlus

    return SecAggPlus()


def _ckks() -> Protection:
    from fedviz.protections.ckks import Ckks

    return Ckks()


PROTECTIONS: dict[str, Callable[[], Protection]] = {
    "none": _none,
    "phe": _post,
    "fedviz": _fedviz("ring"),
    "star": _fedviz("star"),
    "masks": _fedviz("masks"),
    "dp": _fedviz("dp"),
    "secagg": _secagg,
    "ckks": _ckks,
}
"""Short names (`--protections`) to their makers, in the table's order."""
ENCRYPTED = ("phe per value (the post)", "fedviz ring", "SecAgg+ (Flower)", "CKKS (TenSEAL)")
"""The protections whose speed is compared: each hides every contribution by cryptography,
in its plain form (fedviz's remedies and its star are rows of their own)."""
SWEEP_HOSPITALS = (3, 10, 20, 40, 78)
SWEEP_ROUNDS = 10
SWEEP_LIMIT_S = 60.0
"""A protection leaves the sweep once one point took longer than this."""


def parse_names(text: str) -> list[str]:
    """`--protections none,fedviz,ckks` (or "all"), refused in words when a name is unknown."""
    from fedviz.errors import ConfigError

    names = list(PROTECTIONS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROTECTIONS]
    if unknown or not names:
        raise ConfigError(
            "protections", text, "a comma-separated list of " + ", ".join(PROTECTIONS) + " (or all)"
        )
    return names


def measure_one(name: str, task: Task) -> Measured:
    """One protection on the task; a protection that cannot run here says why in its row."""
    try:
        protection = PROTECTIONS[name]()
    except ImportError as exc:
        return Measured(name, "", "", task.config.rounds, error=f"not installed here ({exc.name or exc})")
    try:
        return protection.measure(task)
    except Exception as exc:  # a row that fails says why; the others still run
        return Measured(protection.name, "", "", task.config.rounds, error=f"{type(exc).__name__}: {exc}")


def compare(config: Config, names: Sequence[str] = tuple(PROTECTIONS)) -> Iterator[Measured]:
    """Each protection in turn on the config's task, as it finishes."""
    task = Task.of(config)
    for name in names:
        yield measure_one(name, task)


@dataclass(frozen=True)
class Point:
    protection: str
    hospitals: int
    round_s: float
    crypto_s: float


def sweep(
    config: Config,
    names: Sequence[str],
    hospitals: Sequence[int] = SWEEP_HOSPITALS,
    rounds: int = SWEEP_ROUNDS,
) -> Iterator[Point]:
    """Seconds per round as the hospitals grow (a few rounds each); a protection stops at the
    first size that took more than `SWEEP_LIMIT_S` (it would not finish in reasonable time)."""
    for name in names:
        for n in hospitals:
            task = Task.of(dataclasses.replace(config, hospitals=n, rounds=rounds))
            row = measure_one(name, task)
            if row.error is not None:
                break
            yield Point(row.protection, n, row.round_s, row.crypto_s)
            if row.round_s * rounds + row.setup_s > SWEEP_LIMIT_S:
                break


def verdict(rows: Sequence[Measured], points: Sequence[Point] = ()) -> list[str]:
    """What the numbers say, in plain words: who is fastest among the encrypted rows and by how
    much, who changed the model, who needs a trusted key holder, who survives a dropout."""
    ok = [r for r in rows if r.error is None]
    said: list[str] = []
    encrypted = [r for r in ok if r.protection in ENCRYPTED]
    if len(encrypted) >= 2:
        fastest = min(encrypted, key=lambda r: r.round_s)
        others = sorted((r for r in encrypted if r is not fastest), key=lambda r: r.round_s)
        said.append(
            f"Fastest per round here: {fastest.protection} ({_s(fastest.round_s)}), then "
            + ", ".join(
                f"{r.protection} ({_s(r.round_s)}, {r.round_s / fastest.round_s:.1f}× slower)" for r in others
            )
            + "."
        )
    exact = [r.protection for r in ok if r.aggregate_errors and not r.changed_model]
    changed = [r for r in ok if r.changed_model]
    if exact:
        said.append(
            f"Exact: {', '.join(exact)} give the plaintext average to float rounding; the model is unchanged."
        )
    for r in changed:
        said.append(
            f"{r.protection} changed the aggregate by up to {r.max_error:.2g} a round"
            + (" (deliberate noise)" if "DP" in r.protection else "")
            + "."
        )
    for r in ok:
        if r.trust is not None and r.trust.dropout.startswith("yes") and r.protection != "none":
            said.append(
                f"Only {r.protection} can keep a round going when a hospital drops out (its dropout column)."
            )
    by_size: dict[int, dict[str, float]] = {}
    for p in points:
        if p.protection in ENCRYPTED:
            by_size.setdefault(p.hospitals, {})[p.protection] = p.round_s
    for n, seconds in sorted(by_size.items()):
        if len(seconds) >= 2:
            best = min(seconds, key=lambda k: seconds[k])
            said.append(f"At {n} hospitals {best} was fastest ({_s(seconds[best])} a round).")
    return said


def _s(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def as_json(rows: Sequence[Measured], points: Sequence[Point] = ()) -> dict[str, Any]:
    """The `--json` object: one row per protection, the sweep, the verdict (non-finite as null)."""
    from fedviz.report.summary import json_safe

    out = {
        "protections": [
            {
                **{k: v for k, v in dataclasses.asdict(r).items() if k not in ("trust", "extra")},
                "max_aggregate_error": r.max_error if r.error is None else None,
                "changed_model": r.changed_model,
                "trust": dataclasses.asdict(r.trust) if r.trust else None,
                "parameters": dict(r.parameters),
            }
            for r in rows
        ],
        "sweep": [dataclasses.asdict(p) for p in points],
        "verdict": verdict(rows, points),
    }
    safe: dict[str, Any] = json_safe(out)
    return safe
