"""The ring drawn as Graphviz DOT, shared by the ring inspector and the privacy lab."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)

HIGHLIGHT = 'color="#2563eb", penwidth=3, fontcolor="#2563eb"'
COALITION = 'fillcolor="#fde68a", color="#b45309", penwidth=2'
EXPOSED = 'fillcolor="#fecaca", color="#dc2626", penwidth=2, fontcolor="#991b1b"'
SHIELDED = 'fillcolor="#dcfce7", color="#16a34a", penwidth=2, fontcolor="#166534"'


def prefix(k: int) -> str:
    """g1 + ... + gk, written out while short."""
    return " + ".join(f"g{i}" for i in range(1, k + 1)) if k <= 4 else f"g1 + … + g{k}"


def ring_dot(
    hospitals: int,
    selected: int | None = None,
    coalition: Collection[int] = (),
    exposed: Collection[int] = (),
    server_in_coalition: bool = False,
    shielded: Mapping[int, str] | None = None,
) -> str:
    """Hospitals in ring order, then the server. `selected` highlights hop k (from hospital
    k); coalition members are amber, exposed hospitals red, `shielded` ones (the rules would
    expose them, the run's remedies spoiled the recovery: {hospital: "masked" or "noisy"})
    green with that word. Long rings are shortened to the hospitals that matter, with "…"
    between."""
    shielded = dict(shielded or {})
    keep = {1, 2, hospitals - 1, hospitals, *coalition, *exposed, *shielded}
    if selected is not None:
        keep |= {selected - 1, selected, selected + 1}
    shown = sorted(keep & set(range(1, hospitals + 1)))
    server_style = COALITION if server_in_coalition else 'fillcolor="#e0e7ff", color="#4338ca"'
    lines = [
        "digraph ring {",
        'rankdir=LR; bgcolor="transparent";',
        'node [shape=box, style="rounded,filled", fillcolor="#f1f5f9", color="#94a3b8", fontname="sans-serif", fontsize=16];',
        'edge [color="#94a3b8", fontname="sans-serif", fontsize=13];',
        f'S [label="Server\\n(private key)", {server_style}];',
    ]
    # Runs of 4+ consecutive coalition members (nothing to point at inside them) become one box,
    # so a big coalition stays readable: "Hospitals 2–77 (coalition)".
    special = (
        set(exposed)
        | set(shielded)
        | ({selected - 1, selected, selected + 1} if selected is not None else set())
    )
    boxes: list[tuple[int, int]] = []  # (first, last) hospital of each box
    for k in shown:
        if (
            boxes
            and boxes[-1][1] == k - 1
            and k in coalition
            and boxes[-1][0] in coalition
            and not special & {k, *range(boxes[-1][0], k)}
            and k != hospitals
        ):
            boxes[-1] = (boxes[-1][0], k)
        else:
            boxes.append((k, k))
    boxes = [
        b
        for run in boxes
        for b in ([run] if run[1] - run[0] >= 3 else [(k, k) for k in range(run[0], run[1] + 1)])
    ]
    previous: tuple[int, int] | None = None
    for first, last in boxes:
        node = f"H{first}" if first == last else f"G{first}"
        style = (
            COALITION
            if first in coalition
            else EXPOSED
            if first in exposed
            else SHIELDED
            if first in shielded
            else ""
        )
        if first == last:
            suffix = (
                "\\n(exposed)" if first in exposed else f"\\n({shielded[first]})" if first in shielded else ""
            )
            lines.append(f'{node} [label="Hospital {first}{suffix}" {style}];')
        else:
            lines.append(f'{node} [label="Hospitals {first}–{last}\\n(coalition)" {style}];')
        if previous is not None:
            before = f"H{previous[0]}" if previous[0] == previous[1] else f"G{previous[0]}"
            if first != previous[1] + 1:
                lines.append(f'gap{first} [label="…", shape=plaintext, style=""];')
                lines.append(f"{before} -> gap{first} -> {node};")
            else:
                edge = HIGHLIGHT if previous[1] == selected else ""
                lines.append(f'{before} -> {node} [label="Enc({prefix(previous[1])})" {edge}];')
        previous = (first, last)
    edge = HIGHLIGHT if selected == hospitals else ""
    lines.append(f'H{hospitals} -> S [label="Enc(sum)" {edge}];')
    lines.append('S -> H1 [label="average, in the clear", style=dashed, constraint=false];')
    lines.append("}")
    return "\n".join(lines)


def star_dot(hospitals: int, selected: int | None = None) -> str:
    """The star topology: every hospital sends to the relay, which hands the product to the
    key holder. `selected` highlights hop k (hospital k's part, or n + 1: relay to server)."""
    shown = sorted({1, 2, hospitals, *([selected] if selected and selected <= hospitals else [])})
    lines = [
        "digraph star {",
        'rankdir=LR; bgcolor="transparent";',
        'node [shape=box, style="rounded,filled", fillcolor="#f1f5f9", color="#94a3b8", fontname="sans-serif", fontsize=16];',
        'edge [color="#94a3b8", fontname="sans-serif", fontsize=13];',
        'R [label="Relay\n(no key)", fillcolor="#fef3c7", color="#b45309"];',
        'S [label="Server\n(private key)", fillcolor="#e0e7ff", color="#4338ca"];',
    ]
    for k in shown:
        edge = HIGHLIGHT if k == selected else ""
        lines.append(f'H{k} [label="Hospital {k}"];')
        lines.append(f'H{k} -> R [label="Enc(g{k})" {edge}];')
    if len(shown) < hospitals:
        lines.append('more [label="…", shape=plaintext, style=""];')
        lines.append("more -> R;")
    edge = HIGHLIGHT if selected == hospitals + 1 else ""
    lines.append(f'R -> S [label="Enc(sum): the product, with every signed part" {edge}];')
    lines.append("}")
    return "\n".join(lines)
