"""The walkthrough's picture: one round's ring (or star) as Graphviz DOT, the acting party and
the message in flight highlighted.

Invariant: at most `MAX_BOXES` boxes (the middle of a long ring grouped into one) with fonts
of at least `MIN_FONT_PT`, so it stays readable at 78 hospitals.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from fedviz.protocol import SERVER_NAME
from fedviz.story.walkthrough import EVERY_HOSPITAL, Focus

NODE_FONT_PT = 14
EDGE_FONT_PT = 12
MIN_FONT_PT = 12
"""The smallest font in the picture, in points (drawn at natural size: 1 pt ≥ 1 px)."""
SHOW_ALL_UP_TO = 6
"""Rings of up to this many hospitals are drawn whole."""
MAX_BOXES = 8
"""Hospitals 1, 2, a group, the acting pair, a group, hospital n, the server."""
BASE = 'style="rounded,filled", fillcolor="#f1f5f9", color="#94a3b8"'
ACTING = 'style="rounded,filled", fillcolor="#dbeafe", color="#2563eb", penwidth=3, fontcolor="#1e3a8a"'
SERVER_STYLE = 'style="rounded,filled", fillcolor="#e0e7ff", color="#4338ca"'
RELAY_STYLE = 'style="rounded,filled", fillcolor="#fef3c7", color="#b45309"'
FLIGHT = 'color="#2563eb", penwidth=3, fontcolor="#1e3a8a"'


def ring_dot(order: Sequence[str], focus: Focus, star: bool = False, relay: str = "Relay") -> str:
    """The ring (or star) of this round, top to bottom in ring order, then the server; the
    acting parties and the message in flight highlighted. Beyond `SHOW_ALL_UP_TO` hospitals
    only hospitals 1, 2, n and the acting ones are drawn, each run of the others as one box."""
    m = len(order)
    acting = set(focus.parties)
    ends = set(focus.edge or ())
    keep = set(range(1, m + 1))
    if m > SHOW_ALL_UP_TO:
        keep = {1, 2, m}
        named = [p for p, name in enumerate(order, start=1) if name in acting | ends]
        if len(named) <= 2:  # one hospital or one hop in focus; everyone (a broadcast) stays grouped
            keep |= set(named)
    boxes: list[tuple[str, str, bool]] = []  # (id, label, highlighted)
    position = 1
    while position <= m:
        if position in keep:
            name = order[position - 1]
            boxes.append((f"P{position}", name, name in acting))
            position += 1
            continue
        end = position
        while end + 1 <= m and end + 1 not in keep:
            end += 1
        members = order[position - 1 : end]
        boxes.append((f"G{position}", _group(members, position, end), any(n in acting for n in members)))
        position = end + 1
    ids = {label: box for box, label, _ in boxes}
    lines = [
        f"digraph {'star' if star else 'ring'} {{",
        f'rankdir={"LR" if star else "TB"}; bgcolor="transparent"; nodesep=0.25; ranksep=0.3;',
        f'node [shape=box, {BASE}, fontname="sans-serif", fontsize={NODE_FONT_PT}, height=0.4];',
        f'edge [color="#94a3b8", fontname="sans-serif", fontsize={EDGE_FONT_PT}];',
    ]
    for box, label, lit in boxes:
        lines.append(f'{box} [label="{label}"{", " + ACTING if lit else ""}];')
    server_lit = SERVER_NAME in acting
    lines.append(f'S [label="{SERVER_NAME}\\n(private key)", {ACTING if server_lit else SERVER_STYLE}];')

    def edge(a: str, b: str, sender: str, receiver: str, extra: str = "") -> str:
        lit = focus.edge == (sender, receiver)
        label = f'label="{focus.label}", ' if lit and focus.label else ""
        style = ", ".join(s for s in (label + FLIGHT if lit else "", extra) if s)
        return f"{a} -> {b}" + (f" [{style}]" if style else "") + ";"

    if star:
        lines.append(f'R [label="{relay}\\n(no key)", {ACTING if relay in acting else RELAY_STYLE}];')
        for box, label, _ in boxes:
            lines.append(edge(box, "R", label, relay))
        lines.append(edge("R", "S", relay, SERVER_NAME))
    else:
        for (a, label_a, _), (b, label_b, _) in pairwise(boxes):
            lines.append(edge(a, b, label_a, label_b))
        last_box, last_label, _ = boxes[-1]
        lines.append(edge(last_box, "S", last_label, SERVER_NAME))
    first = ids.get(order[0], boxes[0][0]) if order else "S"
    lines.append(edge("S", first, SERVER_NAME, EVERY_HOSPITAL, "style=dashed, constraint=false"))
    lines.append("}")
    return "\n".join(lines)


def _group(members: Sequence[str], first: int, last: int) -> str:
    numbers = [int(name.rsplit(" ", 1)[-1]) for name in members if name.rsplit(" ", 1)[-1].isdigit()]
    if len(numbers) == len(members) and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"Hospital {numbers[0]}" if len(numbers) == 1 else f"Hospitals {numbers[0]}–{numbers[-1]}"
    return f"{len(members)} hospitals\\n(positions {first}–{last})"
