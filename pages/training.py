"""Training page: run local and federated training live, then the results.

The run itself is a background job of this session (`pages.session`): this page starts it,
and while it runs a fragment redraws progress and charts every `live_every_s()` seconds from
the job's record, so drawing never slows the run and the run survives leaving the page."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from fedviz.config import N_TRAIN, Config
from fedviz.data import prepared
from fedviz.privacy import utility
from fedviz.report.charts import empty_figure, mse_figure, split_figure, y_range_for
from fedviz.report.estimate import human_duration
from fedviz.report.headline import Headline, headline
from fedviz.report.text import describe
from pages import common, controls, session

st.title("Federated learning on encrypted gradients")
_chosen = session.current_config()
_dataset = _chosen.dataset if _chosen is not None else controls.settings()["dataset"]
_who = {
    "diabetes": "some diabetes patients",
    "breast-cancer": "some breast-tumour records",
    "csv": "some rows of your file",
}.get(_dataset, "some rows")
_warm = _chosen.warm_start if _chosen is not None else bool(controls.settings()["warm_start"])
st.markdown(
    f"Hospitals each hold {_who}. First each trains alone (**local**); then they "
    "train together (**federated**): every round their gradients travel round a ring **encrypted** "
    "with the server's Paillier key, are added under encryption, and only the total is decrypted. "
    + (
        "Each hospital keeps its own model (they start from what each learnt alone), so their curves stay "
        "apart. "
        if _warm
        else "The federated phase starts every hospital from zero and all take the same broadcast step, so "
        "their federated curves lie on top of each other. "
    )
    + "Dotted and dashed grey lines are plaintext yardsticks: what pooling everyone's data would "
    "give, with no privacy at all. (“The post” is the python-paillier blog post on federated learning "
    "that this reproduces; its settings are the defaults.)"
)

links = st.container(horizontal=True)
links.page_link(common.WALKTHROUGH_PAGE, label="One round, step by step · who sees what")
links.page_link(common.PRIVACY_PAGE, label="Why at least 3 hospitals, and what leaks anyway")
links.page_link(common.GLOSSARY_PAGE, label="The words explained")

config = session.current_config()
# One row that wraps instead of squeezing: Run and the pace keep their natural width, the note
# takes the rest and drops below them when the window is narrow (projector, phone).
run_row = st.container(horizontal=True, vertical_alignment="center")
run_col = run_row.container(width="content")
pace = run_row.segmented_control(
    "Pace",
    list(controls.PACES),
    required=True,
    label_visibility="collapsed",
    help="Full speed shows the real speed. Watchable and slow add a pause after each round so an audience "
    "can follow the charts; the reported timings never include it.",
    width="content",
    **controls.bind("pace"),
)
note_col = run_row.container()
pause = controls.pace_seconds()
engine = controls.engine()
session.set_pause(pause)
WAIT_BELOW_S = 1.0
"""Runs forecast shorter than this (e.g. the defaults at full speed) are waited for in the
Run click's own page run, so their results appear at once instead of after a live redraw;
if one takes longer than twice that, the live view takes over as usual."""
ok = True
seconds = 0.0
if config is not None:
    seconds = common.forecast(config, pause, engine)
    note_col.caption(
        f"Expected ≈ {human_duration(seconds)}"
        + (f" (with {human_duration(config.rounds * pause)} of pauses)" if pause else "")
        + f" · {config.hospitals} hospitals, {config.key_length}-bit keys"
        + common.busy_note(engine)
        + (f" · {controls.ENGINE_LABELS[controls.settings()['engine']]}" if engine[0] == "flower" else "")
    )
    with note_col:
        ok = common.confirmed(config, seconds, "training")
else:
    note_col.error("Fix the settings marked in the sidebar to run.", icon=":material/block:")
if config is not None and config.hospitals == 2:
    note_col.warning("2 hospitals: each can compute the other's gradient exactly.", icon=":material/warning:")
if run_col.button(
    "Run",
    icon=":material/play_arrow:",
    type="primary",
    disabled=config is None or not ok or session.running() is not None,
    width="content",
    help="Generate keys, train locally, then run the encrypted ring. The run keeps going while you "
    "look at other pages; Stop ends it.",
):
    assert config is not None
    started = session.start(
        config, pause=pause, engine=engine, forecast_s=common.work_forecast(config, engine)
    )
    if seconds <= WAIT_BELOW_S:  # a run this short is over before a live redraw would come
        started.job.join(2 * WAIT_BELOW_S)
        session.collect()
        controls.show_stale()

common.notices()


@dataclass(frozen=True)
class Curves:
    """What the MSE charts draw, copied out of a record (a live one under its job's lock)."""

    names: list[str]
    local: list[tuple[float, ...]]
    federated: list[tuple[float, ...]]
    centralized: tuple[float, ...]
    optimum: float | None
    rounds: int
    metric: str = "MSE"
    optimum_label: str = "least-squares optimum"
    pooled_after: tuple[float, ...] = ()
    """Beside the federated phase: the pooled descent over the same total rounds (warm start)."""

    @classmethod
    def of(cls, state: session.RunState) -> Curves:
        r, c = state.record, state.config
        return cls(
            r.names,
            list(r.local),
            list(r.federated),
            r.centralized,
            r.optimum,
            c.rounds,
            c.metric,
            "scikit-learn logistic fit" if c.model == "logistic" else "least-squares optimum",
            r.reference.continued_mse if r.reference is not None else (),
        )


def draw_charts(curves: Curves, key: str) -> None:
    """Both MSE charts side by side, on one y range so they compare at a glance."""
    yr = y_range_for(
        *curves.local,
        curves.centralized,
        curves.pooled_after,
        [curves.optimum] if curves.optimum is not None else [],
        growing=curves.federated,
    )
    for column, (phase, title) in zip(st.columns(2), CHARTS.items(), strict=True):
        history = curves.local if phase == "local" else curves.federated
        continued = phase == "federated" and bool(curves.pooled_after)
        figure = mse_figure(
            title,
            curves.names,
            history,
            curves.rounds,
            curves.pooled_after if continued else curves.centralized,
            curves.optimum,
            yr,
            curves.metric,
            curves.optimum_label,
            "pooled data, GD continued (same total rounds)" if continued else "pooled data, plaintext GD",
            curves.rounds + 1 if continued else 1,
        )
        column.plotly_chart(figure, key=f"{phase}-{key}")


@session.data_cached
def _dp_spread(config: Config) -> utility.Spread:
    """Fresh draws of the DP noise for this run's settings (plaintext, a fraction of a second)."""
    return utility.spread(config)


def _time_parts(state: session.RunState) -> str:
    """Where the run's wall time went, in parts that add up to it."""
    finished = state.record.finished
    assert finished is not None
    t = finished.timings
    parts = [("key generation", t.keygen), ("local training", t.local), ("federated rounds", t.federated)]
    if state.paused_s:
        parts.append(("pauses for the audience", state.paused_s))
    rest = state.seconds - sum(seconds for _, seconds in parts)
    parts.append(("the rest (data, yardsticks, standardisation, waiting for a CPU core)", max(0.0, rest)))
    return (
        f"{state.seconds:.2f} s in all: "
        + ", ".join(f"{what} {seconds:.2f} s" for what, seconds in parts)
        + "."
    )


def _headline(state: session.RunState) -> Headline:
    finished = state.record.finished
    assert finished is not None
    return headline(
        finished.local_mse,
        finished.federated_mse,
        4 if state.config.model == "logistic" else 2,
        state.observations.averages,
        state.config.learning_rate,
    )


CHARTS = {"local": "Local training: each hospital alone", "federated": "Federated training: encrypted ring"}
current = session.running()
if current is not None and current.purpose == "main":

    @st.fragment(run_every=common.live_every_s(paced=current.job.pause > 0))
    def live() -> None:
        """Progress and both charts, redrawn at a bounded rate while the run goes on (one
        fragment: two with their own timers kept interrupting each other's reruns)."""
        now = session.running()
        if now is None or now.purpose != "main":
            common.redraw_when_ended()
            return
        common.draw_progress(now, "training")
        with now.job.lock:
            curves = Curves.of(now.state)
        draw_charts(curves, "live")

    live()
    st.stop()
common.run_banner("training")  # the Privacy page's demo, if that is what runs

state = session.last_run()
if state is None:
    rounds = config.rounds if config is not None else 50
    for column, (phase, title) in zip(st.columns(2), CHARTS.items(), strict=True):
        column.plotly_chart(
            empty_figure(title, rounds, metric=config.metric if config is not None else "MSE"),
            key=f"{phase}-empty",
        )
    st.info("Press **Run** to train: both charts grow here round by round.", icon=":material/monitoring:")
    st.stop()

draw_charts(Curves.of(state), "final")
common.stale_notice()
record = state.record
finished = record.finished
if finished is None:  # a stored run that was stopped, or failed, before its end
    done = len(record.federated)
    ended = f"failed ({record.error})" if record.error else "was stopped"
    st.warning(
        f"This stored run {ended} after {done} of {state.config.rounds} federated rounds: the charts above "
        "show the rounds it finished. Results, timings and the verdict are given for runs that reached their "
        "end; press **Run** to run it whole.",
        icon=":material/stop_circle:",
    )
    st.stop()
timings = finished.timings

st.subheader("Results")
metric = state.config.metric
logistic = state.config.model == "logistic"
said = _headline(state)
digits = said.digits
warm = state.config.warm_start
pooled = record.pooled_comparable[-1] if record.pooled_comparable else finished.centralized_mse
metrics = st.container(horizontal=True)  # wraps on a narrow window
count = len(finished.federated_mse)
metrics.metric(
    f"Federated test {metric}, mean of {count} hospitals",
    f"{said.mean_federated:.{digits}f}",
    delta="no change vs local" if said.change is None else f"{said.change:.{digits}f} vs local",
    delta_color="off" if said.change is None else "inverse",
    help=f"Each hospital's test {metric} after the last federated round, averaged over the hospitals; beside "
    f"it, the change against the same average after local training alone ({said.mean_local:.{digits}f})"
    + ("; a difference too small to show is no change." if said.change is None else "."),
)
if said.tied:
    metrics.metric(
        said.best_title(count),
        f"{said.best_score:.{digits}f}",
        help=f"The lowest final federated test {metric}, shared by "
        + ("every hospital" if len(said.best) == count else ", ".join(f"Hospital {k}" for k in said.best))
        + ("" if warm else ": started from zero, every hospital takes the same broadcast step")
        + ".",
    )
else:
    metrics.metric(
        said.best_title(count),
        f"{said.best_score:.{digits}f}",
        help=f"The lowest final federated test {metric} of any hospital: the best one at the end, not the "
        "best over the rounds.",
    )
if logistic and finished.federated_accuracy:
    metrics.metric(
        "Best federated accuracy",
        f"{max(finished.federated_accuracy):.1%}",
        delta=f"{gain:+.1f} points vs best local"
        if abs(gain := 100 * (max(finished.federated_accuracy) - max(finished.local_accuracy))) >= 0.05
        else "no change vs best local",
        delta_color="normal" if abs(gain) >= 0.05 else "off",
        help=f"Share of the {record.test_rows} test rows whose label the model gets right.",
    )
metrics.metric(
    "Pooled data, same total rounds" if warm else "Pooled data, same rounds",
    f"{pooled:.{digits}f}",
    help=(
        f"No privacy: all data in one place, gradient descent from zero for {2 * state.config.rounds} rounds — as "
        f"many as the hospitals' {state.config.rounds} local plus {state.config.rounds} federated ones. (After "
        f"{state.config.rounds} rounds it stood at {finished.centralized_mse:.{digits}f}.) It takes the ring's "
        "step — the pooled gradient divided by the number of hospitals, what the server broadcasts — so it "
        "changes with the hospital count."
    )
    if warm
    else f"No privacy: all data in one place, gradient descent from zero for the same {state.config.rounds} rounds "
    "with the ring's step (the pooled gradient divided by the number of hospitals); a cold-started federated "
    "run equals it, round for round"
    + (" — without DP's clipping and noise." if state.config.dp_epsilon is not None else "."),
)
metrics.metric(
    "Scikit-learn logistic fit" if logistic else "Least-squares optimum",
    f"{finished.optimum_mse:.{digits}f}",
    help="scikit-learn's LogisticRegression (default L2 penalty) on the pooled training data, in plaintext: a "
    "yardstick."
    if logistic
    else f"Exact best fit to the pooled training data (plaintext). On these {record.test_rows} test rows an "
    "early-stopped descent can score better than the training-data optimum.",
)
metrics.metric(
    "Run time",
    human_duration(state.seconds),
    help=_time_parts(state),
)

if said.worse_pct:
    lowest = max(pct for _, pct in said.worse_pct)
    names = [f"Hospital {k}" for k, _ in said.worse_pct]
    if state.config.dp_epsilon is not None:
        spread = _dp_spread(state.config)
        cause = (
            f" The cause is differential privacy's noise: the same settings with clipping and no noise end at "
            f"{spread.clipped_only:.{digits}f}, and {len(spread.draws)} other draws of the noise at this ε end "
            f"between {spread.draws[0]:.{digits}f} and {spread.draws[-1]:.{digits}f}, against this run's "
            f"{said.mean_federated:.{digits}f}: a DP result varies from run to run."
        )
    else:
        cause = " Their own data happened to suit the test patients better than the average step does."
    st.warning(
        f"Federation made {len(names)} of {count} hospitals worse on the test set (by up to "
        f"{lowest:.{1 if lowest >= 0.1 else 3}f} %): "
        + ", ".join(names[:6])
        + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        + "."
        + cause,
        icon=":material/trending_down:",
    )
elif said.unchanged is not None:
    st.info(
        f"Federation changed no hospital's test {metric} by as much as the last digit shown "
        f"(±{said.tolerance:.{digits + 1}f}): {said.unchanged}.",
        icon=":material/horizontal_rule:",
    )
table = pd.DataFrame(record.table())
table["improvement_pct"] = [
    100 * row["improvement"] / abs(row["local_mse"]) if row["local_mse"] else float("nan")
    for row in record.table()
]
table["effect"] = list(said.effects)
unchanged = table["effect"] == "no change"  # below the last digit shown: not "-0.00"
table.loc[unchanged, ["improvement", "improvement_pct"]] = 0.0
columns = {
    "hospital": "Hospital",
    "patients": "Patients",
    "local_mse": f"Local {metric}",
    "federated_mse": f"Federated {metric}",
    "improvement": "Improvement",
    "improvement_pct": "Improvement %",
    "effect": "Federation made it",
}
formats = {
    name: st.column_config.NumberColumn(format=f"%.{digits}f")
    for name in (f"Local {metric}", f"Federated {metric}", "Improvement")
} | {name: st.column_config.NumberColumn(format="%.1f") for name in ("Improvement %",)}
if logistic and finished.local_accuracy and finished.federated_accuracy:
    # nine columns would not fit a projector's 1024 px: short labels, the meaning in the help
    table["local_accuracy"] = [100 * a for a in finished.local_accuracy]
    table["federated_accuracy"] = [100 * a for a in finished.federated_accuracy]
    table = table.drop(columns=["improvement"])
    columns |= {
        "local_mse": "Local loss",
        "federated_mse": "Fed. loss",
        "improvement_pct": "Better by %",
        "effect": "Effect",
        "local_accuracy": "Local acc. %",
        "federated_accuracy": "Fed. acc. %",
    }
    formats = {
        "Local loss": st.column_config.NumberColumn(
            format=f"%.{digits}f", help="Test log-loss after local training only"
        ),
        "Fed. loss": st.column_config.NumberColumn(
            format=f"%.{digits}f", help="Test log-loss of the federated model"
        ),
        "Better by %": st.column_config.NumberColumn(
            format="%.1f", help="How much lower the federated log-loss is, in % of the local one"
        ),
        "Effect": st.column_config.TextColumn(help="What federation did to this hospital's test log-loss"),
        "Local acc. %": st.column_config.NumberColumn(
            format="%.1f", help="Test accuracy after local training only"
        ),
        "Fed. acc. %": st.column_config.NumberColumn(
            format="%.1f", help="Test accuracy of the federated model"
        ),
    }
st.dataframe(
    table.rename(columns=columns),
    hide_index=True,
    width="stretch",
    column_config=formats,
    key="results-table",
)
first = f"first federated point after {state.first_point_s:.2f} s · " if state.first_point_s else ""
st.caption(
    f"{describe(state.config)} · {first}finished in {state.seconds:.2f} s "
    f"(keygen {timings.keygen:.3f} s, encrypt {timings.encrypt:.3f} s, add {timings.add:.3f} s, "
    f"decrypt {timings.decrypt:.3f} s) · {finished.bytes_per_round:,} bytes of ciphertext per round"
)

if record.budget is not None or record.masks is not None:
    boxes = []
    if record.budget is not None:
        b = record.budget
        boxes.append(
            f"**Differential privacy** ε = {b.epsilon:g}, δ = {b.delta:g} over {b.rounds} federated rounds: each "
            f"patient's gradient clipped to {b.clip:g}, noise multiplier {b.noise_multiplier:.3g}. The federated "
            "phase starts from zero and carries the noise, so it may end worse than local training: that is "
            "the price of ε (the Privacy page's utility curve shows it against ε)."
        )
    if record.masks is not None:
        boxes.append(
            f"**Pairwise masks** from {record.masks.pairs} agreed pair seed{'s' if record.masks.pairs != 1 else ''}: "
            "every partial sum on the ring decrypts to noise, while the total is exactly what it would be "
            "without masks."
            + (
                " With 2 hospitals they cannot help: each still reads the other's gradient from the broadcast "
                "average and its own."
                if state.config.hospitals == 2
                else ""
            )
        )
    st.info(" ".join(boxes), icon=":material/shield:")
    st.page_link(
        "pages/privacy.py",
        label="See what each remedy stops, measured (Privacy page, section “Remedies, measured”)",
    )

downloads = st.container(horizontal=True)
downloads.download_button(
    f"{state.config.metric} history (CSV)",
    pd.DataFrame(record.history_rows()).to_csv(index=False),
    icon=":material/download:",
    file_name="fedviz-mse-history.csv",
    mime="text/csv",
)
downloads.download_button(
    "Run summary (JSON)",
    record.to_json(),
    icon=":material/download:",
    file_name="fedviz-run.json",
    mime="application/json",
)


SPLIT_WORDS = {
    "contiguous": "cut **in order** into blocks (the post's split)",
    "iid": "dealt out **at random** in equal blocks",
    "by-feature": "sorted by **{feature}** and cut into blocks (hospital 1 holds the lowest values)",
    "label-skew": "spread class by class in **Dirichlet(α = {alpha:g})** shares (smaller α: more lopsided)",
}


SplitView = tuple[list[int], list[list[float]], list[float], str, tuple[str, ...]]


@session.data_cached
def _split_view(config: Config) -> SplitView:
    """Each hospital's targets and the test set's."""
    data = prepared(config)
    return (
        list(data.patients),
        [list(map(float, y)) for y in data.hospital_y],
        list(map(float, data.y_test)),
        data.target,
        data.classes,
    )


def data_split(config: Config) -> None:
    patients, targets, test, target, classes = _split_view(config)
    names = [f"Hospital {i + 1}" for i in range(len(patients))]
    how = SPLIT_WORDS[config.split].format(feature=config.split_feature, alpha=config.split_alpha)
    sizes = f"of {patients[0]}" if len(set(patients)) == 1 else f"of {min(patients)} to {max(patients)}"
    left = N_TRAIN - sum(patients) if config.is_the_posts_data else 0
    unused = (
        f" (the other {left} of the {N_TRAIN} are left out so that every hospital holds as many, as the post does)"
        if left
        else ""
    )
    st.markdown(
        f"The {sum(patients)} training rows{unused} are {how}: {len(patients)} hospitals {sizes} rows each, so each "
        f"hospital's data differ — compare the {'bars' if classes else 'boxes (mean marked by the dashed line)'}. "
        f"The {len(test)} test rows are a random, unbiased sample. "
        "*Simulation view: in the protocol nobody sees this whole picture.*"
    )
    st.plotly_chart(
        split_figure(names, [np.array(t) for t in targets], np.array(test), target, classes),
        key="split-figure",
    )


with st.expander("How the data is split across hospitals"):
    data_split(state.config)
