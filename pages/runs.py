"""Runs page: the runs kept in the run store (every run this dashboard ends, and the CLI's
with --save). Open one into every page, label and pin it, hand it out as one HTML file,
delete it, or put two side by side. Drawing only: every figure comes from `fedviz.store`
and the functions the other pages use.

A store that cannot be read (damaged, from a newer fedviz, an unwritable folder) is said in
one sentence here; every other page keeps working without it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fedviz.protections.rules import ring_readers
from fedviz.report.charts import LEGEND_BELOW, colour
from fedviz.report.estimate import human_duration
from fedviz.report.text import describe, setting_rows
from fedviz.store import Folded, RunInfo, RunStore, StoredRun, StoreError
from fedviz.store.handout import handout
from pages import common, controls, session

STATUS_WORDS = {"finished": "finished", "failed": "failed", "interrupted": "stopped"}
LABEL_MAX = 80
PICK_KEY = "runs-picked"
OTHER_KEY = "runs-other"


def _score(value: float | None, metric: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{4 if metric != 'MSE' else 2}f}"


def _engine(info: RunInfo) -> str:
    return controls.engine_label(info.summary.get("engine"))


def _data(info: RunInfo) -> str:
    if info.sources:
        return ", ".join(s.name for s in info.sources)
    return controls.DATASET_LABELS.get(info.config.dataset, info.config.dataset)


def _done(info: RunInfo) -> int:
    return int((info.summary.get("rounds_completed") or {}).get("federated", 0))


def _rounds(info: RunInfo) -> str:
    done = _done(info)
    return f"{done} of {info.config.rounds}" if done != info.config.rounds else str(done)


def _remedies(info: RunInfo) -> str:
    """The run's privacy remedies in words ("none" without)."""
    return ", ".join(info.config.remedies) or "none"


def _short(info: RunInfo) -> str:
    c = info.config
    extra = "" if not c.remedies else ", " + ", ".join(c.remedies)
    return f"{c.hospitals} hospitals, {c.key_length}-bit keys, {_rounds(info)} rounds, {_engine(info)}{extra}"


def _name(info: RunInfo) -> str:
    """How a run is named in pickers: when it was saved, what it was, how it ended, and the end
    of its id. Neither the label nor the pin is in it: a name never changes, so a picker never
    shows a stale one, and the id makes two runs of the same settings in one second distinct."""
    return f"{info.created:%d %b %H:%M:%S} · {_short(info)} · {STATUS_WORDS[info.status]} · #{info.id[-6:]}"


def _ended_score(info: RunInfo, value: float | None, phase: str = "federated") -> str:
    """A score, marked with the round it stopped at when its phase did not reach its end."""
    text = _score(value, info.metric)
    done = int((info.summary.get("rounds_completed") or {}).get(phase, 0))
    return text if done >= info.config.rounds or text == "–" else f"{text} (round {done})"


def _listing(runs: list[RunInfo]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Pinned": r.pinned,
                "Label": r.label,
                "Saved (UTC)": f"{r.created:%Y-%m-%d %H:%M:%S}",
                "Status": STATUS_WORDS[r.status],
                "Engine": _engine(r),
                "Hospitals": r.config.hospitals,
                "Remedies": _remedies(r),
                "Key bits": r.config.key_length,
                "Rounds": _rounds(r),
                "Data": _data(r),
                f"Local {r.metric}": _ended_score(r, r.mean_local, "local"),
                f"Federated {r.metric}": _ended_score(r, r.mean_federated),
                "Run time": human_duration(r.timing.seconds) if r.timing.seconds else "–",
                "Id": r.id,
            }
            for r in runs
        ]
    )


# --------------------------------------------------------------------------- one run


def _one(store: RunStore, info: RunInfo) -> None:
    st.markdown(
        f"**{describe(info.config)}** · {STATUS_WORDS[info.status]}"
        + (f": {info.error}" if info.error else "")
    )
    if info.status == "interrupted":
        st.caption("A stopped run is kept with the rounds it finished; its pages show those.")
    opened = session.last_run()
    showing = opened is not None and opened.stored_id == info.id
    left, middle, right = st.columns(3)
    if left.button(
        "Showing on every page" if showing else "Open in every page",
        icon=":material/open_in_browser:",
        type="primary",
        disabled=showing,
        key="runs-open",
        help="Training, Ring inspector, Privacy and Walkthrough then draw this run, as when it ran. Nothing "
        "is run again.",
    ):
        try:
            run = store.load(info.id)
        except StoreError as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            common.open_stored(run)
            st.switch_page(common.TRAINING_PAGE)
    middle.download_button(
        "Download the handout (HTML)",
        data=lambda: handout(store.load(info.id)),
        file_name=f"fedviz-run-{info.id}.html",
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",
        key="runs-handout",
        help="One file that opens offline: settings, headline, charts, who sees what, the remedies measured "
        "and one round's walkthrough, in the pages' words.",
    )
    if right.button("Unpin" if info.pinned else "Pin", icon=":material/push_pin:", key="runs-pin"):
        _change(lambda: store.set_pinned(info.id, not info.pinned))
    field, save = st.columns([4, 1], vertical_alignment="bottom")
    text = field.text_input(
        "Label",
        value=info.label,
        max_chars=LABEL_MAX,
        key=f"runs-label-{info.id}",
        placeholder="e.g. for the board: 78 hospitals at 4096 bits",
    )
    cleaned = " ".join(text.split())
    if save.button("Save the label", key="runs-label-save", width="stretch"):
        _change(lambda: store.set_label(info.id, cleaned))
    with st.popover("Delete this run", icon=":material/delete:"):
        st.markdown(f"Run {info.id} and its handout data go for good.")
        if st.button("Delete it", type="primary", key="runs-delete"):
            st.session_state["runs-done"] = f"Run {_name(info)} was deleted."
            _change(lambda: store.delete(info.id))


def _change(act: Any) -> None:
    """Do a change to the store, then redraw; a failure is said in one sentence on the redraw
    (a deleted run drops out of the picker by itself)."""
    try:
        act()
    except StoreError as exc:
        st.session_state.pop("runs-done", None)
        st.session_state["runs-problem"] = str(exc)
    st.rerun()


# --------------------------------------------------------------------------- two runs


def _settings(a: RunInfo, b: RunInfo) -> pd.DataFrame:
    """Both runs' settings in words, one row per setting either run has."""
    ra, rb = dict(setting_rows(a.config)), dict(setting_rows(b.config))
    names = list(ra) + [n for n in rb if n not in ra]
    rows = [{"Setting": "Engine", "A": _engine(a), "B": _engine(b)}]
    if a.sources or b.sources:
        rows.append({"Setting": "Data files", "A": _data(a), "B": _data(b)})
    rows += [{"Setting": n, "A": ra.get(n, "–"), "B": rb.get(n, "–")} for n in names]
    return pd.DataFrame(rows)


def _mark_differences(frame: pd.DataFrame) -> Any:
    def paint(row: pd.Series) -> list[str]:
        differs = row["A"] != row["B"]
        return ["background-color: rgba(255, 196, 0, 0.28); font-weight: 600" if differs else ""] * len(row)

    return frame.style.apply(paint, axis=1)


def _figures(run: StoredRun, folded: Folded) -> dict[str, str]:
    """One column of the cost and privacy figures."""
    record, config, info = folded.record, run.config, run.info
    summary = info.summary
    federated_rounds = len(record.federated)
    hops = folded.transcript.hops(1) or []
    per_round = sum(h.nbytes for h in hops) if hops else summary.get("bytes_per_round")
    encoding = summary.get("encoding") or {}
    dp = summary.get("dp")
    seconds, paused = info.timing.seconds, info.timing.paused_s
    federated_s = record.finished.timings.federated if record.finished is not None else None
    readers = ring_readers(config.hospitals, masked=config.masks == "pairwise")
    if dp:
        readers += f"; under DP (ε = {dp['epsilon']:g}) what they read carries each hospital's noise"
    return {
        "Status": STATUS_WORDS[info.status],
        f"Local {info.metric} (mean of the hospitals; lower is better)": _ended_score(
            info, info.mean_local, "local"
        ),
        f"Federated {info.metric} (mean of the hospitals; lower is better)": _ended_score(
            info, info.mean_federated
        ),
        "Federated rounds done": f"{federated_rounds} of {config.rounds}",
        "Run time (as the Training page gives it)": human_duration(seconds) if seconds > 0 else "–",
        "… of which pauses for the audience": human_duration(paused) if paused > 0 else "none",
        "One federated round (encrypt, add, decrypt)": human_duration(federated_s / federated_rounds)
        if federated_s and federated_rounds
        else "–",
        "Bytes on the ring per round": f"{per_round:,}" if isinstance(per_round, int) else "–",
        "Ciphertexts per message": str(encoding.get("ciphertexts_per_message", "–")),
        "Key length": f"{config.key_length} bits",
        "Who reads hospital 1's gradient (by the rules)": readers,
        "Differential privacy": f"ε = {dp['epsilon']:g}, δ = {dp['delta']:g} over the run" if dp else "off",
        "Pairwise masks": "on" if config.masks == "pairwise" else "off",
    }


def _curves(runs: list[StoredRun], folds: list[Folded]) -> go.Figure:
    fig = go.Figure()
    metric = runs[0].info.metric
    for i, (run, folded, name) in enumerate(zip(runs, folds, ("A", "B"), strict=True)):
        record = folded.record
        means = [sum(r) / len(r) for r in record.federated]
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(means) + 1)),
                y=means,
                name=f"{name}: federated (mean of {run.config.hospitals})",
                line={"color": colour(i), "width": 3},
            )
        )
        if run.info.mean_local is not None and record.local:
            fig.add_trace(
                go.Scatter(
                    x=[1, max(len(means), 1)],
                    y=[run.info.mean_local] * 2,
                    name=f"{name}: local alone (mean, end)",
                    line={"color": colour(i), "dash": ("dot", "dashdot")[i], "width": 2},
                    mode="lines",
                )
            )
    fig.update_layout(
        title=f"Test {metric} per federated round: both runs",
        xaxis_title="federated round",
        yaxis_title=f"test {metric} (lower is better)",
        height=420,
        margin={"t": 60, "b": 50, "l": 60, "r": 20},
        legend=LEGEND_BELOW,
        font={"size": 15},
    )
    return fig


def _two(store: RunStore, a: RunInfo, b: RunInfo) -> None:
    try:
        runs = [store.load(a.id), store.load(b.id)]
    except StoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    folds = [run.fold() for run in runs]  # once each: the chart and the figures read them
    st.subheader("Two runs side by side")
    st.markdown(f"**A**: {_name(a)}  \n**B**: {_name(b)}")
    settings = _settings(a, b)
    differ = int((settings["A"] != settings["B"]).sum())
    st.markdown(
        f"##### Settings: {differ} {'differs' if differ == 1 else 'differ'}"
        + (" (highlighted)" if differ else ": the same settings, run twice")
    )
    st.table(_mark_differences(settings), hide_index=True)
    if a.metric != b.metric:
        st.warning(
            f"A scores {a.metric} and B {b.metric}: their curves cannot share an axis, so only the figures are "
            "compared.",
            icon=":material/warning:",
        )
    else:
        st.plotly_chart(_curves(runs, folds), width="stretch", key="runs-curves")
    st.markdown("##### Cost and privacy")
    fa, fb = (_figures(run, folded) for run, folded in zip(runs, folds, strict=True))
    figures = pd.DataFrame({"Figure": list(fa), "A": list(fa.values()), "B": list(fb.values())})
    st.table(_mark_differences(figures), hide_index=True)


# --------------------------------------------------------------------------- the page


def _kept_pick(key: str, ids: set[str]) -> None:
    """Drop a picked run that is no longer stored (deleted here or elsewhere)."""
    if st.session_state.get(key) not in ids:
        st.session_state[key] = None


def page() -> None:
    st.title("Runs")
    store = RunStore()
    st.markdown(
        "Every run this dashboard ends is kept here: finished, stopped or failed (and command-line runs with "
        "`--save`, and pilot runs). Open one into every page without running it again, label and pin the "
        "ones worth showing, put two side by side, or download a one-file handout for after the meeting. "
        "Kept: the settings, the scores, the encrypted messages of the ring (up to 32 MB a run) and what the "
        "privacy lab needs. Never kept: a private key, mask seeds, or the rows of your own data file (only "
        "its name, size and a fingerprint of its contents)."
    )
    st.caption(f"Kept on this server in {store.path} (the FEDVIZ_HOME setting moves it).")
    for kind, key in (("error", "runs-problem"), ("success", "runs-done")):
        said = st.session_state.pop(key, None)
        if said:
            getattr(st, kind)(said, icon=":material/error:" if kind == "error" else ":material/check:")
    try:
        runs = store.list()
    except StoreError as exc:
        st.error(
            f"The run store cannot be used: {exc}. Every other page works as before; runs are not kept until "
            "this is fixed.",
            icon=":material/database_off:",
        )
        return
    if not runs:
        st.info(
            "No runs are stored yet. Press **Run** on the Training page: each run is kept here when it ends.",
            icon=":material/inventory_2:",
        )
        return
    runs.sort(key=lambda r: not r.pinned)  # pinned first, each part newest first
    by_id = {r.id: r for r in runs}
    st.dataframe(
        _listing(runs),
        hide_index=True,
        width="stretch",
        key="runs-table",
        column_config={
            "Pinned": st.column_config.CheckboxColumn("Pinned", width="small"),
            "Label": st.column_config.TextColumn("Label", width="medium"),
            "Id": st.column_config.TextColumn("Id", width="medium"),
        },
    )
    for key in (PICK_KEY, OTHER_KEY):
        _kept_pick(key, set(by_id))
    if st.session_state.get(OTHER_KEY) == st.session_state.get(PICK_KEY):
        st.session_state[OTHER_KEY] = None
    ids = list(by_id)
    left, right = st.columns(2)
    picked = left.selectbox(
        "A run: open it, label it, pin it, hand it out or delete it",
        ids,
        index=None,
        format_func=lambda i: _name(by_id[i]),
        key=PICK_KEY,
        placeholder="Choose a run",
    )
    other = right.selectbox(
        "Compare it with (optional)",
        [i for i in ids if i != picked],
        index=None,
        format_func=lambda i: _name(by_id[i]),
        key=OTHER_KEY,
        placeholder="Choose a second run",
        disabled=picked is None,
    )
    if picked is None:
        return
    _one(store, by_id[picked])
    if other is not None:
        st.divider()
        _two(store, by_id[picked], by_id[other])


page()
