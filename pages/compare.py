"""Compare page: fedviz against the protections people would pick instead, measured side by
side on the sidebar's task. Drawing only; every figure comes from `fedviz.protections`."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fedviz.config import Config
from fedviz.engines.background import StreamJob
from fedviz.protections import compare
from fedviz.protections.base import Measured
from fedviz.report.charts import LEGEND_BELOW, colour
from fedviz.report.estimate import human_duration
from fedviz.report.text import describe
from pages import session

KEY = "compare"
LABELS = {
    "none": "none (plaintext, the yardstick)",
    "phe": "phe per value (the post)",
    "fedviz": "fedviz ring (the default)",
    "star": "fedviz star",
    "masks": "fedviz ring + masks",
    "dp": "fedviz ring + DP",
    "secagg": "SecAgg+ (Flower, a loopback deployment)",
    "ckks": "CKKS (TenSEAL)",
}

st.title("Why Paillier? fedviz against the protections people pick instead")
st.markdown(
    "Flower ships secure aggregation (**SecAgg+**), NVIDIA FLARE encrypts with **CKKS** through TenSEAL, "
    "the original post used **phe** one value at a time. Here each trains the same model on the same split "
    "for the same rounds, with the sidebar's settings, and reports the same figures: what it did to the "
    "model, what it costs, and whom you must trust. Every number is measured in the run below."
)

config = session.current_config()
chosen = st.pills(
    "Protections",
    list(LABELS),
    selection_mode="multi",
    default=[k for k in LABELS if k != "secagg"],
    format_func=LABELS.__getitem__,
    key="compare-choice",
    help="SecAgg+ starts a Flower deployment on this server: a minute or more.",
)
sweep = st.toggle(
    f"Also: cost per round at 3, 10, 20, 40 and 78 hospitals ({compare.SWEEP_ROUNDS} rounds each; a row stops when it "
    "gets slow)",
    key="compare-sweep",
)


def _job() -> tuple[Config, list[str], bool, StreamJob] | None:
    kept = st.session_state.get(KEY)
    return kept if isinstance(kept, tuple) else None


def _stream(config: Config, names: list[str], with_sweep: bool) -> Any:
    yield from compare.compare(config, names)
    if with_sweep:
        yield from compare.sweep(config, names)


if config is None:
    st.error("Fix the settings marked in the sidebar to compare.", icon=":material/block:")
elif st.button("Compare", type="primary", icon=":material/compare_arrows:", disabled=not chosen):
    previous = _job()
    if previous is not None:
        previous[3].cancel()
    job = StreamJob(lambda: _stream(config, list(chosen or []), sweep))
    job.cancel_with(session.token())
    st.session_state[KEY] = (config, list(chosen or []), sweep, job.start())
    st.session_state.pop("compare-shown", None)

kept = _job()
if kept is None:
    st.info("Choose the protections and press **Compare**.", icon=":material/compare_arrows:")
    st.stop()
assert kept is not None
compared, names, swept, job = kept
if config is not None and compared != config:
    st.info(
        f"Settings changed since this comparison. Showing it for: {describe(compared)}.",
        icon=":material/history:",
    )


@st.fragment(run_every=1.0 if not job.done else None)
def progress() -> None:
    """While the job runs: its progress; each new row, and the end, redraw the whole page."""
    seen = (len(job.items), job.done)
    if st.session_state.get("compare-shown") != seen:
        first = "compare-shown" not in st.session_state
        st.session_state["compare-shown"] = seen
        if not first:
            st.rerun(scope="app")
    rows = [r for r in job.items if isinstance(r, Measured)]
    if job.done:
        if job.error:
            st.error(f"The comparison stopped: {job.error}", icon=":material/block:")
        return
    busy = LABELS[names[len(rows)]] if len(rows) < len(names) else "the sweep"
    st.progress(
        min(1.0, len(rows) / max(1, len(names))),
        text=f"{len(rows)} of {len(names)} measured · now: {busy} · {human_duration(job.elapsed)}",
    )
    if st.button("Stop after this one", key="compare-stop"):
        job.cancel()


progress()
rows = [r for r in job.items if isinstance(r, Measured)]
points = [p for p in job.items if isinstance(p, compare.Point)]
if not rows:
    st.stop()


def _ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


metric = compared.metric
table = []
for r in rows:
    if r.error is not None:
        table.append({"protection": r.protection, "result": f"cannot run here: {r.error}"})
        continue
    mean = sum(r.scores) / len(r.scores)
    table.append(
        {
            "protection": r.protection,
            f"mean test {metric}": f"{mean:.4g}",
            "largest aggregate error": f"{r.max_error:.1e}"
            + (" (changes the model)" if r.changed_model else " (exact)"),
            "s per round (crypto)": _ms(r.crypto_s),
            "s per round (whole)": _ms(r.exchange_s if r.exchange_s is not None else r.round_s),
            "bytes per hospital per round": f"{r.bytes_per_hospital:,}",
            "set-up": f"{_ms(r.setup_s)}, {r.setup_bytes:,} bytes",
            "who holds a key": r.trust.decryptors if r.trust else "",
            "who reads one hospital": r.trust.readers if r.trust else "",
            "a hospital drops out": r.trust.dropout if r.trust else "",
        }
    )
st.subheader("Side by side")
st.table(pd.DataFrame(table).fillna(""), hide_index=True)
st.caption(
    f"{describe(compared)}. Crypto: the protection's own encrypting, adding, masking and decrypting, "
    "summed over the parties; whole: the round's wall time (with the transport where there is one)."
)

st.subheader("What the numbers say")
st.markdown("\n".join(f"- {line}" for line in compare.verdict(rows, points)))

left, right = st.columns(2)
if points:
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(p.protection for p in points)):
        mine = [p for p in points if p.protection == name]
        fig.add_trace(
            go.Scatter(
                x=[p.hospitals for p in mine],
                y=[p.round_s for p in mine],
                name=name,
                mode="lines+markers",
                line={"color": colour(i)},
            )
        )
    fig.update_layout(
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": "Seconds per federated round as hospitals grow", "font": {"size": 14}},
        xaxis={"title": "hospitals", "type": "log", "tickvals": [3, 10, 20, 40, 78]},
        yaxis={"title": "s per round", "type": "log", "exponentformat": "e", "dtick": 1},
        legend=LEGEND_BELOW,
    )
    left.plotly_chart(fig, key="compare-sweep-chart")
else:
    left.caption("Tick the cost-per-round sweep above to draw the cost as hospitals grow.")
fig = go.Figure()
for i, r in enumerate(x for x in rows if x.error is None and x.changed_model):
    fig.add_trace(
        go.Scatter(
            x=list(range(1, len(r.aggregate_errors) + 1)),
            y=list(r.aggregate_errors),
            name=r.protection,
            mode="lines",
            line={"color": colour(i)},
        )
    )
exact = [r.protection for r in rows if r.error is None and not r.changed_model]
fig.update_layout(
    height=360,
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
    title={"text": "How far each round's aggregate is from the plaintext one", "font": {"size": 14}},
    xaxis={"title": "federated round"},
    yaxis={"title": "largest |error|", "type": "log", "exponentformat": "e", "dtick": 1},
    legend=LEGEND_BELOW,
)
right.plotly_chart(fig, key="compare-error-chart")
if exact:
    right.caption("Exact to float rounding, so not drawn: " + ", ".join(exact) + ".")

with st.expander("Parameters and caveats of each protection"):
    for r in rows:
        if r.error is not None:
            continue
        st.markdown(f"**{r.protection}** — {r.how} ({r.engine})")
        st.markdown("\n".join(f"- {k}: {v}" for k, v in r.parameters))
        for caveat in r.caveats:
            st.caption(caveat)
