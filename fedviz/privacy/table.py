"""The remedies lab's measured table (threats × remedies, then their costs) as plain text rows,
in the Privacy page's words: the page draws them, a stored run carries them (without the
measured runs' keys).

Invariant: a row is a dict of strings (the first key "" names the threat or cost, the
others are the remedies' columns); nothing in it came from a key or a mask seed except
the attacks' measured errors, which the page shows anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fedviz.privacy import remedies
from fedviz.report.headline import display_digits


def _size(error: float, relative: bool) -> str:
    """Short enough not to wrap in a table cell: '4e-14', '1e+11', '0.26 %', '151 %'."""
    if relative:
        return f"{100 * error:.2f} %" if error < 0.1 else f"{100 * error:.0f} %"
    return "0" if error == 0 else f"{error:.0e}"


def cell_text(cell: remedies.Cell, relative: bool = False) -> str:
    """One threat under one remedy, in words: "recovered (error 4e-14)", "fails: masked ..."."""
    if math.isnan(cell.error):
        return "— (" + cell.note + ")" if cell.note else "—"
    size = _size(cell.error, relative)
    return {
        "recovered": f"recovered (error {size})",
        "masked": f"fails: masked (off by {size})",
        "noisy": f"noise only (off by {size})",
    }.get(cell.verdict, f"not recovered (off by {size})")


def measured_table(
    variants: Mapping[str, remedies.Variant], run_mean: float | None = None, warm_start: bool = True
) -> list[dict[str, str]]:
    """The rows the Privacy page's "Threats × remedies" table shows for `variants` (one real
    run per name of `remedies.REMEDIES`, as `remedies.measure` makes them); `run_mean`: the
    session's run's mean final federated score, set beside the measured ones when that run
    started warm (the measured runs start from zero)."""
    names = [n for n in remedies.REMEDIES if n in variants]
    first = variants[names[0]].config
    cells = {n: remedies.threats(variants[n]) for n in names}
    costs = {n: remedies.cost(variants[n]) for n in names}
    eps = variants["DP"].config.dp_epsilon if "DP" in variants else None
    columns = {n: n.replace("DP", f"DP ε={eps:g}") if eps is not None else n for n in names}
    rows: list[dict[str, str]] = [
        {"": threat, **{columns[n]: cell_text(cells[n][i], relative=i == 3) for n in names}}
        for i, threat in enumerate(remedies.THREATS)
    ]
    digits = 4 if first.model == "logistic" else 1
    start = f"{first.rounds} federated rounds from zero weights (DP needs that start)"
    if run_mean is not None and warm_start:
        shown = display_digits([run_mean], 4 if first.model == "logistic" else 2)  # as Training shows it
        start += f"; your run continued from local models and ended at {run_mean:.{shown}f}"
    rows.append(
        {
            "": f"cost: test {first.metric} (mean of hospitals) after {start}",
            **{columns[n]: f"{costs[n].test_mse:.{digits}f}" for n in names},
        }
    )
    rows.append(
        {
            "": "cost: federated phase time",
            **{
                columns[n]: f"{costs[n].federated_s:.3f} s"
                + (f", masks {costs[n].masks_s:.3f} s of it" if costs[n].masks_s else "")
                for n in names
            },
        }
    )
    rows.append(
        {
            "": "cost: bytes per round",
            **{
                columns[n]: f"{costs[n].bytes_per_round:,}"
                + (f" (+{costs[n].setup_bytes} once, for the keys)" if costs[n].setup_bytes else "")
                for n in names
            },
        }
    )
    return rows
