"""Who reads one hospital's contribution, in words, from the coalition rules the Privacy page
uses (`fedviz.privacy.attacks.exposed_hospitals`): the smallest coalitions that expose
hospital 1 of a ring of n, with and without the key holder."""

from __future__ import annotations

from itertools import combinations

from fedviz.privacy.attacks import exposed_hospitals


def ring_readers(n: int, masked: bool = False) -> str:
    """The smallest coalitions that read hospital 1's gradient in a ring of `n` (by the
    rules; with pairwise masks a decrypted prefix is noise unless the coalition holds every
    pair seed of its target, which takes all the other hospitals)."""
    found: list[str] = []
    for size in range(1, n):
        for members in combinations(range(2, n + 1), size):
            if masked:
                continue
            if 1 in exposed_hospitals(frozenset(members), True, n) and not found:
                found.append(
                    f"the key holder with {_names(members)} (it decrypts what hospital 1 passed on: its gradient alone)"
                )
        if found:
            break
    alone = [
        m for m in combinations(range(2, n + 1), n - 1) if 1 in exposed_hospitals(frozenset(m), False, n)
    ]
    if alone:
        found.append(
            f"{'the other hospital' if n == 2 else f'the other {n - 1} hospitals together'} (n × the broadcast average, minus their own gradients)"
        )
    return "; ".join(found) if found else "no coalition short of everyone"


def _names(members: tuple[int, ...]) -> str:
    return " and ".join(f"hospital {k}" for k in members)
