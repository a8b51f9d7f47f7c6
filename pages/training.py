"""Training page: run local and federated training live, then the results."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from fedviz.config import Config
from fedviz.data import split
from fedviz.events import Event, FederatedRound, KeysGenerated, LocalRound, RunFinished
from fedviz.report.charts import empty_figure, mse_figure, split_figure, y_range_for
from fedviz.report.estimate import estimate_seconds
from pages import common

REDRAW_S = 0.1  # least time between two live redraws of the charts (phase ends always draw)

st.title("Federated learning on encrypted gradients")
st.markdown(
    "Hospitals each hold some diabetes patients. First each trains alone (**local**); then they "
    "train together (**federated**): every round their gradients travel round a ring **encrypted** "
    "with the server's Paillier key, are added under encryption, and only the total is decrypted. "
    "Dotted and dashed grey lines are plaintext yardsticks: what pooling everyone's data would give, "
    "with no privacy at all."
)

config = common.current_config()
run_col, stop_col, pace_col, note_col = st.columns([1, 1, 2, 3], vertical_alignment="center")
start = run_col.button(
    "Run",
    icon=":material/play_arrow:",
    type="primary",
    disabled=config is None,
    width="stretch",
    help="Generate keys, train locally, then run the encrypted ring.",
)
stop_col.button(
    "Stop",
    icon=":material/stop:",
    disabled=not start,
    width="stretch",
    help="Stop the run; earlier results stay.",
)
pace = pace_col.segmented_control(
    "Pace",
    list(common.PACES),
    key=common.widget("pace"),
    label_visibility="collapsed",
    help="Full speed shows the real speed. Watchable and slow add a pause after each round so an audience "
    "can follow the charts; the reported timings never include it.",
)
pause = common.PACES.get(pace or "full speed", 0.0)
if config is not None:
    seconds = estimate_seconds(config) + config.rounds * pause
    note_col.caption(
        f"Expected ≈ {seconds:.1f} s"
        + (f" (with {config.rounds * pause:.1f} s of pauses)" if pause else "")
        + f" · {config.hospitals} hospitals, {config.key_length}-bit keys"
    )
if config is None:
    note_col.error("Fix the settings marked in the sidebar to run.", icon=":material/block:")
elif config.hospitals == 2:
    note_col.warning("2 hospitals: each can compute the other's gradient exactly.", icon=":material/warning:")

notices = st.container()
with notices:
    common.interrupted_notice()
status = st.empty()
left, right = st.columns(2)
CHARTS = {
    "local": (left.empty(), "Local training: each hospital alone"),
    "federated": (right.empty(), "Federated training: encrypted ring"),
}


def draw_charts(state: common.RunState, key: str, which: tuple[str, ...] = ("local", "federated")) -> None:
    """The MSE charts (both by default), on one y range so they compare at a glance."""
    r = state.record
    yr = y_range_for(*r.local, *r.federated, r.centralized, [r.optimum] if r.optimum is not None else [])
    for phase in which:
        slot, title = CHARTS[phase]
        history = r.local if phase == "local" else r.federated
        figure = mse_figure(title, r.names, history, state.config.rounds, r.centralized, r.optimum, yr)
        slot.plotly_chart(figure, key=f"{phase}-{key}")


class LiveView:
    """Progress on every round; each chart when it changes: on its first and last round and
    otherwise at most every REDRAW_S seconds. `pause` seconds after each federated round
    (presentation pace; local rounds are plaintext and instant, and the engine's timings
    exclude time spent here)."""

    def __init__(self, pause: float) -> None:
        self.last_draw = 0.0
        self.draws = 0
        self.pause = pause

    def __call__(self, event: Event, state: common.RunState, elapsed: float) -> None:
        config = state.config
        if isinstance(event, (LocalRound, FederatedRound, KeysGenerated, RunFinished)):
            label = common.where(event, config)
            status.progress(
                common.progress(event, config), text=f"{label[0].upper()}{label[1:]} · {elapsed:.1f} s"
            )
        which: tuple[str, ...] = ()
        now = time.perf_counter()
        if isinstance(event, (LocalRound, FederatedRound)):
            if event.round in (1, config.rounds) or now - self.last_draw >= REDRAW_S:
                which = ("local",) if isinstance(event, LocalRound) else ("federated",)
            if self.pause and isinstance(event, FederatedRound):
                time.sleep(self.pause)
        if which:
            self.draws += 1
            draw_charts(state, f"live-{self.draws}", which)
            self.last_draw = now


if start and config is not None:
    status.progress(0.0, text=f"Key generation ({config.key_length}-bit Paillier key pair)…")
    common.execute(config, LiveView(pause))
    status.empty()
    with notices:
        common.interrupted_notice()

state = common.last_run()
if state is None:
    rounds = config.rounds if config is not None else 50
    for phase, (slot, title) in CHARTS.items():
        slot.plotly_chart(empty_figure(title, rounds), key=f"{phase}-empty")
    st.info("Press **Run** to train: both charts grow here round by round.", icon=":material/monitoring:")
    st.stop()

draw_charts(state, "final")
common.stale_notice()
record = state.record
finished = record.finished
assert finished is not None
timings = finished.timings

st.subheader("Results")
best = min(finished.federated_mse)
c1, c2, c3, c4 = st.columns(4)
c1.metric(
    "Best federated test MSE",
    f"{best:.2f}",
    delta=f"{best - min(finished.local_mse):.2f} vs best local",
    delta_color="inverse",
)
c2.metric(
    "Pooled data, plaintext GD", f"{finished.centralized_mse:.2f}", help="No privacy: all data in one place."
)
c3.metric(
    "Least-squares optimum",
    f"{finished.optimum_mse:.2f}",
    help="Exact best fit to the pooled training data (plaintext). On these 50 test patients an "
    "early-stopped descent can score better than the training-data optimum.",
)
c4.metric(
    "Run time",
    f"{state.seconds:.2f} s",
    help=f"Key generation {timings.keygen:.3f} s, federated crypto and steps {timings.federated:.3f} s.",
)

table = pd.DataFrame(record.table())
table["improvement_pct"] = 100 * table["improvement"] / table["local_mse"]
st.dataframe(
    table.rename(
        columns={
            "hospital": "Hospital",
            "patients": "Patients",
            "local_mse": "Local MSE",
            "federated_mse": "Federated MSE",
            "improvement": "Improvement",
            "improvement_pct": "Improvement %",
        }
    ),
    hide_index=True,
    width="stretch",
    column_config={
        name: st.column_config.NumberColumn(format="%.2f")
        for name in ("Local MSE", "Federated MSE", "Improvement", "Improvement %")
    },
    key="results-table",
)
first = f"first federated point after {state.first_point_s:.2f} s · " if state.first_point_s else ""
st.caption(
    f"{common.describe(state.config)} · {first}finished in {state.seconds:.2f} s "
    f"(keygen {timings.keygen:.3f} s, encrypt {timings.encrypt:.3f} s, add {timings.add:.3f} s, "
    f"decrypt {timings.decrypt:.3f} s) · {finished.bytes_per_round:,} bytes of ciphertext per round"
)

d1, d2, _ = st.columns([1, 1, 3])
d1.download_button(
    "MSE history (CSV)",
    pd.DataFrame(record.history_rows()).to_csv(index=False),
    icon=":material/download:",
    file_name="fedviz-mse-history.csv",
    mime="text/csv",
    width="stretch",
)
d2.download_button(
    "Run summary (JSON)",
    record.to_json(),
    icon=":material/download:",
    file_name="fedviz-run.json",
    mime="application/json",
    width="stretch",
)


@st.cache_data(show_spinner=False, max_entries=16)
def _split_view(hospitals: int, seed: int) -> tuple[list[int], list[list[float]], list[float]]:
    data = split(hospitals, seed)
    return list(data.patients), [list(map(float, y)) for y in data.hospital_y], list(map(float, data.y_test))


def data_split(config: Config) -> None:
    patients, targets, test = _split_view(config.hospitals, config.seed)
    names = [f"Hospital {i + 1}" for i in range(len(patients))]
    st.markdown(
        f"The 392 training patients are cut **in order** into {len(patients)} blocks of "
        f"{patients[0]} (the post's split), so each hospital's patients differ — compare the "
        "boxes (mean marked by the dashed line). The 50 test patients are a random, unbiased sample. "
        "*Simulation view: in the protocol nobody sees this whole picture.*"
    )
    st.plotly_chart(split_figure(names, [np.array(t) for t in targets], np.array(test)), key="split-figure")


with st.expander("How the data is split across hospitals"):
    data_split(state.config)
