"""The walkthrough's picture: one round's ring (or star) as Graphviz DOT, the acting party and
the message in flight highlighted.

Invariants:
- At most `MAX_BOXES` boxes (the middle of a long ring grouped into one) with fonts of at
  least `MIN_FONT_PT`, so it stays readable at 78 hospitals.
- The ring is drawn as a loop of at most `MAX_BOXES // 2` rows: down the left column, across
  the bottom, up the right column to the server, and back to hospital 1 along the top. So the
  picture is about as tall as it is wide and fits beside the step's text at its natural size
  (a projector's 1024×768 or 1280×720 with the sidebar open), where 1 pt is 4/3 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from fedviz.protocol import SERVER_NAME
from fedviz.story.walkthrough import EVERY_HOSPITAL, Focus

NODE_FONT_PT = 13
EDGE_FONT_PT = 13
MIN_FONT_PT = 13
"""The smallest font in the picture, in points. Drawn at natural size a point is 4/3 px: 13 pt
is 17.3 px, above the page's 16 px body text (12 pt would be 16 px only before rounding)."""
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
    """The ring (or star) of this round: the ring as a loop in ring order from hospital 1 (top
    left) round to the server (top right); the star as the hospitals beside the relay and the
    server. The acting parties and the message in flight are highlighted. Beyond
    `SHOW_ALL_UP_TO` hospitals only hospitals 1, 2, n and the acting ones are drawn, each run of
    the others as one box."""
    boxes = _boxes(order, focus)
    ids = {label: box for box, label, _ in boxes}
    lines = [
        f"digraph {'star' if star else 'ring'} {{",
        'rankdir=TB; bgcolor="transparent"; nodesep=0.3; ranksep=0.3;',
        f'node [shape=box, {BASE}, fontname="sans-serif", fontsize={NODE_FONT_PT}, height=0.4];',
        f'edge [color="#94a3b8", fontname="sans-serif", fontsize={EDGE_FONT_PT}];',
    ]
    rows = (len(boxes) + 2) // 2  # the ring's left column: the first half of the loop (server last)
    for index, (box, label, lit) in enumerate(boxes):
        column = "" if star else f", group={'L' if index < rows else 'R'}"  # kept straight
        lines.append(f'{box} [label="{label}"{", " + ACTING if lit else ""}{column}];')
    server_lit = SERVER_NAME in acting_of(focus)
    lines.append(
        f'S [label="{SERVER_NAME}\\n(private key)", {ACTING if server_lit else SERVER_STYLE}'
        + ("" if star else ", group=R")
        + "];"
    )

    def edge(a: str, b: str, sender: str, receiver: str, extra: str = "", back: bool = False) -> str:
        """a -> b, drawn from b to a when `back` (so that dot lays the loop out in rows)."""
        lit = focus.edge == (sender, receiver)
        label = f'label="{_lines(focus.label)}", ' if lit and focus.label else ""
        parts = [label + FLIGHT if lit else "", extra, "dir=back" if back else ""]
        style = ", ".join(p for p in parts if p)
        head, tail = (b, a) if back else (a, b)
        return f"{head} -> {tail}" + (f" [{style}]" if style else "") + ";"

    first = ids.get(order[0], boxes[0][0]) if order else "S"
    if star:
        lines.append(
            f'R [label="{relay}\\n(no key)", {ACTING if relay in acting_of(focus) else RELAY_STYLE}];'
        )
        lines[1] = 'rankdir=LR; bgcolor="transparent"; nodesep=0.15; ranksep=0.35;'  # hospitals stacked
        for box, label, _ in boxes:
            lines.append(edge(box, "R", label, relay))
        lines.append(edge("R", "S", relay, SERVER_NAME))
        lines.append(edge("S", first, SERVER_NAME, EVERY_HOSPITAL, "style=dashed, constraint=false"))
    else:
        loop = [(box, label) for box, label, _ in boxes] + [("S", SERVER_NAME)]
        left, right = loop[:rows], loop[rows:]  # right: bottom to top, the server last (top)
        lines.append("{rank=same; " + f"{left[0][0]}; S" + "}")
        if len(right) > 1:
            lines.append("{rank=same; " + f"{left[-1][0]}; {right[0][0]}" + "}")
        for row, (box, _) in enumerate(right[1:-1], start=1):  # the right column's middle rows
            lines.append("{rank=same; " + f"{left[-1 - row][0]}; {box}" + "}")
        for (a, label_a), (b, label_b) in pairwise(left):
            lines.append(edge(a, b, label_a, label_b))
        if right:  # across the bottom; up to the server when it is the right column's only box
            (a, label_a), (b, label_b) = left[-1], right[0]
            lines.append(edge(a, b, label_a, label_b, back=len(right) == 1 and len(left) > 1))
        for (a, label_a), (b, label_b) in pairwise(right):
            lines.append(edge(a, b, label_a, label_b, back=True))
        lines.append(edge("S", first, SERVER_NAME, EVERY_HOSPITAL, "style=dashed", back=True))
    lines.append("}")
    return "\n".join(lines)


def acting_of(focus: Focus) -> set[str]:
    return set(focus.parties)


def _boxes(order: Sequence[str], focus: Focus) -> list[tuple[str, str, bool]]:
    """(id, label, highlighted) of each hospital box in ring order, runs of hospitals out of
    focus grouped beyond `SHOW_ALL_UP_TO`."""
    m = len(order)
    acting = acting_of(focus)
    ends = set(focus.edge or ())
    keep = set(range(1, m + 1))
    if m > SHOW_ALL_UP_TO:
        keep = {1, 2, m}
        named = [p for p, name in enumerate(order, start=1) if name in acting | ends]
        if len(named) <= 2:  # one hospital or one hop in focus; everyone (a broadcast) stays grouped
            keep |= set(named)
    boxes: list[tuple[str, str, bool]] = []
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
    return boxes


def _lines(label: str) -> str:
    """A long message on two lines, its count of gradients on the second (a shuffled ring's
    "Enc(g60 + g15 + … + g61 (40 gradients))"): the picture stays narrow."""
    head, sep, tail = label.partition(" (")
    return f"{head}\\n({tail}" if sep and head and len(label) > 20 else label


def _group(members: Sequence[str], first: int, last: int) -> str:
    numbers = [int(name.rsplit(" ", 1)[-1]) for name in members if name.rsplit(" ", 1)[-1].isdigit()]
    if len(numbers) == len(members) and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"Hospital {numbers[0]}" if len(numbers) == 1 else f"Hospitals {numbers[0]}–{numbers[-1]}"
    return f"{len(members)} hospitals\\n(positions {first}–{last})"
