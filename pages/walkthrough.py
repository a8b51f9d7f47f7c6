"""Walkthrough: one federated round of the last run told step by step with its own numbers,
then who sees what. Drawing only: `fedviz.story` computes every step and every cell.

The page draws only when Streamlit runs it (`__name__ == "__main__"`); other pages may
import `draw_visibility` from here without drawing the walkthrough.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from fedviz.story import diagram, visibility
from fedviz.story import walkthrough as walk
from pages import common, session
from pages.session import RunState

GLOSSARY_PAGE = common.GLOSSARY_PAGE
SECONDS_PER_STEP = (3, 5, 8, 12)
"""Autoplay's choices of how long each step stays on screen."""
ANSWERS = {True: "yes", False: "no", None: "depends"}
MSE_ROWS_SHOWN = 10
"""Hospitals in the broadcast's table before it scrolls."""
CSS = """
<style>
/* The ring picture at its natural size (its labels no smaller than the body text) in a slot as
   wide as nearly every picture (`fedviz.story.diagram`), so the step's text stays put as
   autoplay advances; the text beside it while it has room for a readable column, else below. */
[data-testid="stLayoutWrapper"]:has(> .st-key-dot-sized-walk-picture) { min-width: min(25rem, 100%); }
[data-testid="stLayoutWrapper"]:has(> .st-key-walk-words) { flex: 1 1 22rem; min-width: min(22rem, 100%); }
/* The page title on one line on a 1024-pixel projector. */
@media (min-width: 641px) and (max-width: 1100px) {
  [data-testid="stMain"] [data-testid="stHeading"] h1 { font-size: 2.25rem; }
}
/* The three boxes compact: with the title and the picture they fit a 1280×720 projector. */
.st-key-walk-words [data-testid="stAlertContainer"] { padding: 0.5rem 0.75rem; }
</style>
"""


# --------------------------------------------------------------------------- kept choices


def _store(name: str) -> None:
    """on_change: the user changed this widget; its value becomes the kept choice."""
    st.session_state[f"walk-{name}"] = st.session_state[f"w_walk_{name}"]


def _bind(name: str, default: Any) -> dict[str, Any]:
    """Widget arguments that show the kept choice `name` and keep the user's changes (the
    sidebar's pattern, `pages.controls.bind`: the widget state is set from the kept value on
    every run, so a browser that dropped the widget never reports a default back)."""
    value = st.session_state.setdefault(f"walk-{name}", default)
    st.session_state[f"w_walk_{name}"] = value
    return {"key": f"w_walk_{name}", "on_change": _store, "args": (name,)}


def _go(delta: int, stages: int) -> None:
    """Previous / Next: move within 0..stages-1 (autoplay's clock restarts)."""
    st.session_state["walk-stage"] = min(max(st.session_state.get("walk-stage", 0) + delta, 0), stages - 1)
    st.session_state["walk-advanced"] = time.monotonic()


def _play_changed(stages: int) -> None:
    _store("play")
    if st.session_state["walk-play"]:
        if st.session_state.get("walk-stage", 0) >= stages - 1:  # from the end: start over
            st.session_state["walk-stage"] = 0
        st.session_state["walk-advanced"] = time.monotonic()


def _new_run(state: RunState, first_round: int) -> None:
    """A run not seen before: start at its first step."""
    if st.session_state.get("walk-run") != id(state):
        st.session_state["walk-run"] = id(state)
        st.session_state["walk-stage"] = 0
        st.session_state["walk-round"] = first_round
        st.session_state["walk-play"] = False
        st.session_state.pop("walk-pick", None)


# --------------------------------------------------------------------------- the walkthrough


def draw_walkthrough(state: RunState) -> None:
    """The step, its controls in one row above it. Everything is drawn in a fragment (a click
    redraws only the step); with autoplay on, the fragment also redraws on autoplay's clock."""
    kept = walk.kept_rounds(state.transcript)
    _new_run(state, kept[0])
    if st.session_state.get("walk-round") not in kept:
        st.session_state["walk-round"] = kept[0]
    clock = _clock()

    def stepper() -> None:
        if _clock() != clock:  # autoplay or its pace changed: the fragment's timer changes with it
            st.rerun(scope="app")
        draw_step(state, kept, clock)

    if clock is None:
        st.fragment(stepper)()
    else:
        st.fragment(run_every=clock)(stepper)()


def _clock() -> float | None:
    """Seconds per step while autoplay is on, else None (the kept choices)."""
    if not st.session_state.get("walk-play", False):
        return None
    return float(st.session_state.get("walk-interval", SECONDS_PER_STEP[1]))


def _autoplay_tick(stages: int, interval: float) -> None:
    """Advance one step if its time has come; at the last step turn autoplay off (and redraw
    the page, so the timer stops and the toggle shows it)."""
    now = time.monotonic()
    position = st.session_state.get("walk-stage", 0)
    elapsed = now - st.session_state.get("walk-advanced", now)
    shown, done = walk.autoplay(position, stages, elapsed, interval)
    if shown != position:
        st.session_state["walk-stage"] = shown
        st.session_state["walk-advanced"] = now
    if done:
        st.session_state["walk-play"] = False
        st.rerun(scope="app")


def draw_step(state: RunState, kept: list[int], clock: float | None) -> None:
    """One row of controls (Previous / Next, autoplay and its pace, the round), the step
    indicator, then the ring with the actor highlighted beside the step's title and its three
    boxes: on a 1280×720 projector all of it above the fold."""
    round_ = int(st.session_state["walk-round"])
    view = walk.round_view(state.record, state.transcript, state.observations, round_)
    stages = walk.outline(view)
    total = len(stages)
    st.session_state["walk-stage"] = min(st.session_state.get("walk-stage", 0), total - 1)
    if clock is not None:
        _autoplay_tick(total, clock)
    index = int(st.session_state["walk-stage"])

    controls = st.container(horizontal=True, vertical_alignment="center", key="walk-controls")
    controls.button(
        "Previous",
        icon=":material/arrow_back:",
        disabled=index == 0,
        on_click=_go,
        args=(-1, total),
        key="walk-previous",
    )
    controls.button(
        "Next",
        icon=":material/arrow_forward:",
        type="primary",
        disabled=index == total - 1,
        on_click=_go,
        args=(1, total),
        key="walk-next",
    )
    controls.toggle(
        "Autoplay",
        help="For a projector: the steps advance by themselves and stop at the last one.",
        **{**_bind("play", False), "on_change": _play_changed, "args": (total,)},
    )
    with controls.container(width=130):
        st.selectbox(
            "Seconds per step",
            SECONDS_PER_STEP,
            format_func=lambda seconds: f"{seconds} s per step",
            label_visibility="collapsed",
            **_bind("interval", SECONDS_PER_STEP[1]),
        )
    if len(kept) > 1:
        with controls.container(width=130):
            st.selectbox(
                "Round",
                kept,
                format_func=lambda kept_round: f"Round {kept_round}",
                label_visibility="collapsed",
                **_bind("round", kept[0]),
            )
        if state.transcript.dropped:
            controls.caption("Rounds beyond the memory budget are not kept (the first and the last are).")
    index = st.segmented_control(
        "Step",
        list(range(total)),
        format_func=lambda i: f"{i + 1} · {stages[i].label}",
        required=True,
        label_visibility="collapsed",
        **_bind("stage", 0),
    )
    index = int(index if index is not None else 0)

    stage = stages[index]
    row = st.container(horizontal=True, key="walk-step")
    picture = row.container(width="content", key="dot-sized-walk-picture")
    words = row.container(gap="small", key="walk-words")
    pick = None
    if stage.grouped:
        if not stage.first <= st.session_state.get("walk-pick", stage.first) <= stage.last:
            st.session_state["walk-pick"] = stage.first
        pick = int(
            picture.select_slider(
                "Hospital (ring position)",
                list(range(stage.first, stage.last + 1)),
                format_func=lambda p: f"{view.order[p - 1]} (position {p})",
                **_bind("pick", stage.first),
            )
        )
    step = walk.step(view, stage, pick)
    picture.graphviz_chart(diagram.ring_dot(view.order, step.focus, view.star), width="content")
    with words:  # on a projector the title and the three boxes first, above the fold
        done = len(state.record.federated)
        of = f"{view.config.rounds}" if done >= view.config.rounds else f"the {done} it finished"
        st.caption(f"Step {index + 1} of {total} · round {view.round} of {of}")
        st.subheader(step.title)
        st.markdown(f"**Who acts:** {step.actor}")
        st.info(f"**Holds:** {step.holds}", icon=":material/inventory_2:")
        st.success(f"**Has just learned:** {step.learned}", icon=":material/lightbulb:")
        st.error(f"**Cannot learn:** {step.cannot}", icon=":material/lock:")
        st.markdown(step.does)

    if step.facts:
        facts = st.container(horizontal=True)
        for label, value in step.facts:
            facts.metric(label, value)
    if step.ciphertext is not None:
        st.caption("What travelled (shortened; the Ring inspector shows every digit)")
        st.code(step.ciphertext, language=None, wrap_lines=True)
    if step.vectors:
        frame = pd.DataFrame({"feature": view.features, **{name: values for name, values in step.vectors}})
        common.number_table(frame, f"walk-vectors-{index}", "%.6g")
    if step.mse:
        frame = pd.DataFrame(
            {
                "hospital": [m.hospital for m in step.mse],
                f"test {view.metric} before": [m.before for m in step.mse],
                f"test {view.metric} after": [m.after for m in step.mse],
                "change": [None if m.before is None else m.after - m.before for m in step.mse],
            }
        )
        if len(frame) <= MSE_ROWS_SHOWN:
            common.number_table(frame, "walk-mse", "%.2f")
        else:
            st.dataframe(
                frame,
                hide_index=True,
                width="stretch",
                height=35 * (MSE_ROWS_SHOWN + 1) + 3,  # whole rows, the rest a scroll away
                row_height=35,
                key="walk-mse",
                column_config={c: st.column_config.NumberColumn(format="%.2f") for c in frame.columns[1:]},
            )


# --------------------------------------------------------------------------- who sees what


def draw_visibility(state: RunState) -> None:
    """Who sees what in this run's ring: each party alone, derived from the privacy rules."""
    n = state.config.hospitals
    rows = visibility.table(n, noisy=state.config.dp_epsilon is not None)
    frame = pd.DataFrame(
        [
            {
                "party": row.party,
                **{
                    column: f"{ANSWERS[cell.sees]} — {cell.why}"
                    for column, cell in zip(visibility.COLUMNS, row.cells, strict=True)
                },
            }
            for row in rows
        ]
    )
    st.table(frame, hide_index=True)
    st.caption(
        f"{n} hospitals, each party alone (nobody colluding). "
        + (
            "With 2 hospitals the broadcast alone exposes each one's gradient to the other."
            if n == 2
            else "Coalitions, the aggregate's own leak and the remedies are on the Privacy page."
        )
    )


def main() -> None:
    st.html(CSS)
    st.title("One federated round, step by step")
    shown = session.last_run()
    st.markdown(
        f"One round of {'the stored run' if shown is not None and shown.opened else 'your last run'} with its "
        "own numbers: who acts, what it holds, learns and cannot learn."
    )
    state = common.require_run(
        "The walkthrough tells one federated round of the last run with its real keys, ciphertexts, "
        "gradients and averages."
    )
    draw_walkthrough(state)
    st.divider()
    st.subheader("Who sees what")
    draw_visibility(state)
    st.page_link(GLOSSARY_PAGE, label="Words explained: the glossary")


if __name__ == "__main__":
    main()
