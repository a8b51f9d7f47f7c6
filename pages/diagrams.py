"""The ring drawn as Graphviz DOT, shared by the ring inspector and the privacy lab."""

from __future__ import annotations

from collections.abc import Collection

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)

HIGHLIGHT = 'color="#2563eb", penwidth=3, fontcolor="#2563eb"'
COALITION = 'fillcolor="#fde68a", color="#b45309", penwidth=2'
EXPOSED = 'fillcolor="#fecaca", color="#dc2626", penwidth=2, fontcolor="#991b1b"'


def prefix(k: int) -> str:
    """g1 + ... + gk, written out while short."""
    return " + ".join(f"g{i}" for i in range(1, k + 1)) if k <= 4 else f"g1 + … + g{k}"


def ring_dot(
    hospitals: int,
    selected: int | None = None,
    coalition: Collection[int] = (),
    exposed: Collection[int] = (),
    server_in_coalition: bool = False,
) -> str:
    """Hospitals in ring order, then the server. `selected` highlights hop k (from hospital
    k); coalition members are amber, exposed hospitals red. Long rings are shortened to the
    hospitals that matter, with "…" between."""
    keep = {1, 2, hospitals - 1, hospitals, *coalition, *exposed}
    if selected is not None:
        keep |= {selected - 1, selected, selected + 1}
    shown = sorted(keep & set(range(1, hospitals + 1)))
    server_style = COALITION if server_in_coalition else 'fillcolor="#e0e7ff", color="#4338ca"'
    lines = [
        "digraph ring {",
        'rankdir=LR; bgcolor="transparent";',
        'node [shape=box, style="rounded,filled", fillcolor="#f1f5f9", color="#94a3b8", fontname="sans-serif"];',
        'edge [color="#94a3b8", fontname="sans-serif", fontsize=10];',
        f'S [label="Server\\n(private key)", {server_style}];',
    ]
    previous: int | None = None
    for k in shown:
        style = COALITION if k in coalition else EXPOSED if k in exposed else ""
        suffix = "\\n(exposed)" if k in exposed else ""
        lines.append(f'H{k} [label="Hospital {k}{suffix}" {style}];')
        if previous is not None:
            if k != previous + 1:
                lines.append(f'gap{k} [label="…", shape=plaintext, style=""];')
                lines.append(f"H{previous} -> gap{k} -> H{k};")
            else:
                edge = HIGHLIGHT if previous == selected else ""
                lines.append(f'H{previous} -> H{k} [label="Enc({prefix(previous)})" {edge}];')
        previous = k
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
        'node [shape=box, style="rounded,filled", fillcolor="#f1f5f9", color="#94a3b8", fontname="sans-serif"];',
        'edge [color="#94a3b8", fontname="sans-serif", fontsize=10];',
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
