"""What every page draws alike: the run banner (progress and Stop, on every page), notices
about ended runs, the empty state with an offer to run, and small table and slider helpers.
Drawing only; runs belong to `pages.session`, settings to `pages.controls`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from fedviz.config import Config
from fedviz.engines.background import running_jobs
from fedviz.report.estimate import CONFIRM_ABOVE_S, estimate_seconds, flower_seconds, human_duration
from fedviz.report.text import describe
from fedviz.store import RunStore, StoredRun, StoreError
from pages import controls, session
from pages.session import RunState

PAGES = Path(__file__).resolve().parent
TRAINING_PAGE, RING_PAGE, PRIVACY_PAGE, WALKTHROUGH_PAGE, GLOSSARY_PAGE, COMPARE_PAGE, RUNS_PAGE = (
    str(PAGES / f"{name}.py")
    for name in ("training", "ring", "privacy", "walkthrough", "glossary", "compare", "runs")
)
"""Absolute page paths, so the app also runs from an entry script elsewhere (tests)."""
LIVE_EVERY_S = 0.6
"""How often a page redraws while a full-speed run is in flight and no other run shares the
server (whatever the run's event rate)."""
PACED_EVERY_S = 0.3
"""The same for a run paced for an audience (watchable, slow): it is slowed on purpose, so
smooth charts matter more than the redraws' cost."""


def live_every_s(paced: bool = False) -> float:
    """The live redraw interval: the base interval times the runs in flight on this server, so
    that however many sessions watch a run, redrawing takes about the same share of the web
    process (a chart redraw holds Python's lock for ~10 ms; four sessions redrawing every
    0.4 s kept a newcomer's page waiting 1.5-3.5 s). Fixed when a page is drawn."""
    return (PACED_EVERY_S if paced else LIVE_EVERY_S) * max(1, running_jobs())


ICONS = {"error": ":material/block:", "warning": ":material/stop_circle:", "info": ":material/info:"}


# --------------------------------------------------------------------------- notices


def notices() -> None:
    """Messages about runs that ended since the last page was drawn (each shown once)."""
    for kind, text in session.take_notices():
        getattr(st, kind)(text, icon=ICONS[kind])


def stored_notice() -> None:
    """At the top of every page: the results on show are a stored run, not this session's."""
    last = session.last_run()
    if last is not None and last.opened:
        named = f" “{last.label}”" if last.label else ""
        st.info(
            f"Showing stored run {last.stored_id}{named}, opened from the **Runs** page: nothing was run "
            "again. Press **Run** (on the Training page) to run it live.",
            icon=":material/inventory_2:",
        )


def stale_notice() -> None:
    """Say so when the shown results were made with other settings (they are kept, not erased)."""
    last = session.last_run()
    if last is not None and session.is_stale():
        st.info(
            f"Settings changed since this run. Showing the last run ({describe(last.config)}). "
            "Press **Run** (on the Training page) to refresh.",
            icon=":material/history:",
        )


# --------------------------------------------------------------------------- stored runs

STORED_PARAM = "stored"
"""The URL's `?stored=ID` while a stored run is on show: a reload opens it again."""


def open_stored(run: StoredRun) -> None:
    """Show a stored run on every page, and its settings in the sidebar when they can be."""
    st.session_state["last_run"] = RunState.of_stored(run)
    st.query_params[STORED_PARAM] = run.id
    kept = controls.settings_of(run.config, controls.engine_label(run.info.summary.get("engine")))
    if kept is not None:
        controls.adopt(kept, controls.pace_seconds())
    else:
        session.notify(
            "info",
            "This run's data was your own file, which the run store never keeps: the sidebar keeps its "
            "current settings, and the pages show the stored run.",
        )


def reopen_stored() -> None:
    """A page reloaded while it showed a stored run (`?stored=` in its URL) shows it again; a
    live run shown since drops the parameter."""
    run_id = st.query_params.get(STORED_PARAM)
    shown = session.last_run()
    if shown is not None and shown.opened and shown.stored_id is not None:
        if run_id != shown.stored_id:  # a page switch clears the URL's parameters
            st.query_params[STORED_PARAM] = shown.stored_id
        return
    if shown is not None or not run_id:
        if run_id:
            del st.query_params[STORED_PARAM]
        return
    try:
        run = RunStore().load(run_id)
    except StoreError as exc:
        del st.query_params[STORED_PARAM]
        session.notify("info", f"The stored run this address pointed to cannot be opened: {exc}")
        return
    open_stored(run)


# --------------------------------------------------------------------------- the run in flight


def progress_text(current: session.JobSlot) -> str:
    job = current.job
    where = job.progress.where
    text = f"{where[0].upper()}{where[1:]} · {human_duration(job.elapsed)}"
    if current.purpose == "two":
        text = f"2-hospital demo: {text}"
    return text + (f" · {job.progress.detail}" if job.progress.detail else "")


def draw_progress(current: session.JobSlot, key: str) -> None:
    """The progress bar of the run in flight, with its Stop button."""
    bar, stop = st.columns([6, 1], vertical_alignment="center")
    bar.progress(current.job.progress.fraction, text=progress_text(current))
    if stop.button("Stop", icon=":material/stop:", key=f"stop-{key}", width="stretch"):
        session.cancel("Stop was pressed")
        st.rerun(scope="app")


def redraw_when_ended() -> None:
    """Called by live fragments: once no run is in flight, redraw the whole app (the results
    are taken in at the start of that run)."""
    if session.running() is None:
        st.rerun(scope="app")


def run_banner(key: str) -> None:
    """Progress and Stop of this session's run, on any page (live while it runs)."""
    if session.running() is None:
        return

    @st.fragment(run_every=live_every_s())
    def live() -> None:
        redraw_when_ended()
        current = session.running()
        if current is not None:
            draw_progress(current, key)

    live()


# --------------------------------------------------------------------------- starting runs


def work_forecast(config: Config, engine: tuple[str, str] = ("inprocess", "ring")) -> float:
    """Expected wall time of a run without presentation pauses: the model, with the runs
    already in flight on this server sharing the cores (not for Flower, whose time is latency)."""
    if engine[0] == "flower":
        return flower_seconds(config, engine[1])
    return estimate_seconds(config, others=_others())


def _others() -> int:
    """Runs in flight on this server that are not this session's own."""
    return max(0, running_jobs() - (1 if session.running() is not None else 0))


def busy_note(engine: tuple[str, str]) -> str:
    """Words for the forecast when other runs share this server's cores."""
    others = _others()
    if engine[0] == "flower" or not others:
        return ""
    return f" · {others} other run{'s' if others > 1 else ''} in flight on this server share its cores"


def forecast(config: Config, pause: float = 0.0, engine: tuple[str, str] = ("inprocess", "ring")) -> float:
    """Expected wall time of a run with presentation pauses, on the chosen engine, scaled by
    how this server's recent runs compared with their forecasts."""
    factor = session.calibration(engine[0]).factor()
    return work_forecast(config, engine) * factor + config.rounds * pause


def confirmed(config: Config, seconds: float, key: str) -> bool:
    """Long runs ask first: above `CONFIRM_ABOVE_S` a box must be ticked to enable Run."""
    if seconds <= CONFIRM_ABOVE_S:
        return True
    where = (
        " on Flower: every message between parties takes seconds" if controls.engine()[0] == "flower" else ""
    )
    st.warning(
        f"This run is expected to take about **{human_duration(seconds)}** "
        f"({config.hospitals} hospitals, {config.key_length}-bit keys, {config.rounds} rounds, "
        f"{config.encoding} encoding, {config.obfuscator} randomness{where}).",
        icon=":material/hourglass_top:",
    )
    return bool(st.checkbox(f"Yes, run for about {human_duration(seconds)}", key=f"confirm-{key}"))


def require_run(why: str) -> RunState:
    """The last run, or (before any) the page's empty state with an offer to run; stops there."""
    state = session.last_run()
    if state is None:
        offer_run(why)
        st.stop()
    assert state is not None
    stale_notice()
    return state


def offer_run(where: str) -> None:
    """The empty state of a page that needs a run: say so, and offer to run here."""
    config = session.current_config()
    if session.running() is not None:
        st.info(f"A run is in progress; this page fills in when it ends. {where}", icon=":material/info:")
        return
    st.info(f"No run yet in this session. {where}", icon=":material/info:")
    if config is None:
        st.caption("Fix the settings in the sidebar first.")
        return
    pause = controls.pace_seconds()
    engine = controls.engine()
    ok = confirmed(config, forecast(config, pause, engine), "offer")
    if st.button(f"Run now ({describe(config)})", type="primary", key="offer-run", disabled=not ok):
        session.start(config, pause=pause, engine=engine, forecast_s=work_forecast(config, engine))
        st.rerun()


# --------------------------------------------------------------------------- small helpers


def number_table(frame: Any, key: str, fmt: str = "%.6g") -> None:
    """A table of numbers showing every row, no empty row (first column the labels)."""
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key=key,
        height=35 * (len(frame) + 1) + 3,
        row_height=35,
        column_config={c: st.column_config.NumberColumn(format=fmt) for c in frame.columns[1:]},
    )


def round_slider(label: str, first: int, last: int, key: str, value: int | None = None, **kwargs: Any) -> int:
    """A slider over rounds first..last, or just `first` when there is nothing to choose."""
    if last <= first:
        st.caption(f"{label}: {first}")
        return first
    return int(st.slider(label, first, last, first if value is None else value, key=key, **kwargs))
