"""The Privacy page's remedies section: each remedy applied in real runs and the same attacks
re-run against it. Drawing only; runs and attacks are `fedviz.privacy.remedies`, the
accountant `fedviz.privacy.dp`, the utility curve `fedviz.privacy.utility`.

The measured runs keep their key holder and mask seeds for the attacks, so they live in
this session's state only (never a shared cache)."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import pages  # noqa: F401  (a first request enters through the app: see pages/__init__.py)
from fedviz.config import Config
from fedviz.privacy import dp, remedies, utility
from fedviz.privacy.table import measured_table
from fedviz.report.charts import LEGEND_BELOW, REFERENCE, colour
from fedviz.report.estimate import human_duration
from fedviz.store import RunStore, StoreError
from pages.session import RunState

MAX_ROUNDS = 50
"""The measured runs take at most this many federated rounds (a lab click stays short)."""
KEY = "remedy-lab"


@dataclasses.dataclass
class Lab:
    config: Config
    variants: dict[str, remedies.Variant]
    shuffled: remedies.Variant
    curve: utility.UtilityCurve
    seconds: float

    def __repr__(self) -> str:  # never render the key holders
        return f"Lab({self.config})"


def lab_config(config: Config) -> Config:
    return dataclasses.replace(config, rounds=min(config.rounds, MAX_ROUNDS), shuffle_ring=False)


def _measure(config: Config) -> Lab:
    start = time.perf_counter()
    base = lab_config(config)
    variants = remedies.measure(base, config.dp_epsilon)
    shuffled = remedies.run_variant(
        dataclasses.replace(variants["none"].config, shuffle_ring=True), "shuffled"
    )
    curve = utility.curve(variants["DP"].config, repeats=5 if base.rounds * base.hospitals <= 5000 else 3)
    return Lab(base, variants, shuffled, curve, time.perf_counter() - start)


def section(config: Config, run_mean: float | None = None, state: RunState | None = None) -> None:
    """`run_mean`: the session's run's mean final federated score, set beside the measured
    runs' when they started differently (they always start from zero). `state`: the run on
    show; a stored run shows the table measured for it, and a table measured here is kept
    with the run in the store."""
    st.subheader("Remedies, measured: what each one stops, and what it costs")
    st.markdown(
        "- **Pairwise masks**: every pair of hospitals agrees a secret seed (X25519 key agreement) and each "
        "adds random numbers to its encoded gradient before encrypting, with signs that cancel in the full "
        "sum. A partial sum on the ring then decrypts to noise; the total is exact.\n"
        "- **Differential privacy (DP)**: each hospital clips every patient's gradient to a fixed length and "
        "adds its share of Gaussian noise inside the encrypted sum; an accountant (Google's dp-accounting, "
        "Rényi DP) turns the noise into a guarantee ε about any one patient.\n"
        "- **Shuffled ring**: a public new ring order each round, so the weak first hop is not always "
        "Hospital 1's.\n\n"
        "Below, each remedy is applied in a real run of these settings and the lab's attacks are re-run on "
        "what that run produced, scored against its true gradients."
    )
    lab: Lab | None = st.session_state.get(KEY)
    wanted = lab_config(config)
    if lab is None or lab.config != wanted:
        rounds = f"{wanted.rounds} rounds" + (
            f" (of {config.rounds})" if wanted.rounds < config.rounds else ""
        )
        stored = state.remedies if state is not None and state.config == config else None
        if stored:
            st.markdown("##### Threats × remedies, as measured for this stored run")
            st.table(pd.DataFrame(list(stored)), hide_index=True)
            st.caption(
                "Kept with the run in the run store; measure again for the masks, DP and shuffle details."
            )
        elif lab is not None:
            st.caption("The measurement below was made with other settings; measure again to match them.")
        if st.button(
            f"Measure the remedies ({wanted.hospitals} hospitals, {wanted.key_length}-bit keys, {rounds}: five "
            "real runs)",
            key="remedy-run",
        ):
            with st.spinner("Running the protocol under each remedy and attacking each run…"):
                lab = _measure(config)
            st.session_state[KEY] = lab
        if lab is None:
            return
    rows = _table(lab, run_mean)
    _keep(state, config, rows)
    _masks(lab)
    _dp(lab)
    _shuffle(lab)
    st.caption(
        f"Measured in {human_duration(lab.seconds)} on {lab.config.hospitals} hospitals, "
        f"{lab.config.key_length}-bit keys, {lab.config.rounds} federated rounds from zero weights (DP needs "
        "that start, so all four columns share it)."
    )


def _keep(state: RunState | None, config: Config, rows: list[dict[str, str]]) -> None:
    """Keep the table with the stored run it was measured for (once; a store that cannot be
    written only costs the table its place there)."""
    if state is None or state.stored_id is None or state.config != config:
        return
    done: set[str] = st.session_state.setdefault("remedies-kept", set())
    if state.stored_id in done:
        return
    done.add(state.stored_id)
    with contextlib.suppress(StoreError):
        RunStore().set_remedies(state.stored_id, rows)
        state.remedies = tuple(rows)


def _table(lab: Lab, run_mean: float | None) -> list[dict[str, str]]:
    rows = measured_table(lab.variants, run_mean, lab.config.warm_start)
    st.markdown("##### Threats × remedies on this run")
    st.table(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "“Recovered” means the attack gets the hospital's true gradient to rounding (the XᵀX fit: within 1 %). "
        "Under DP the attacks still read exactly what a hospital sent, but that is its clipped gradient plus "
        "noise, so against its true gradient they are off by about the noise. Each DP run draws fresh noise, "
        "so its MSE varies run to run; the utility curve below shows the spread."
    )
    return rows


def _masks(lab: Lab) -> None:
    n = lab.config.hospitals
    plain, masked = lab.variants["none"], lab.variants["masks"]
    coalitions: list[tuple[str, frozenset[int], bool, str]] = [
        (
            "server + Hospital 2",
            frozenset({2}),
            True,
            "lacks the seeds Hospital 1 shares with the others" if n > 2 else "holds all of them",
        ),
    ]
    if n >= 3:
        coalitions.append(
            (
                "server + Hospital 2's neighbours (1 and 3)",
                frozenset({1, 3}),
                True,
                "holds every seed of Hospital 2: all its pairs are with members"
                if n == 3
                else f"lacks Hospital 2's seeds with hospitals 4 … {n}",
            )
        )
    others = frozenset(range(2, n + 1))
    coalitions.append(("hospitals 2 … n (all but one)", others, False, "n × average − their own gradients"))
    coalitions.append(("server + hospitals 2 … n", others, True, "holds every seed of Hospital 1"))
    rows = []
    for name, members, with_server, why in coalitions:
        a = remedies.attempt(plain, members, with_server)
        b = remedies.attempt(masked, members, with_server)
        targets = ", ".join(f"H{k}" for k in sorted(a.errors)) or "nobody"
        rows.append(
            {
                "coalition": name,
                "targets": targets,
                "error without masks": _worst(a.errors),
                "error with masks": _worst(b.errors),
                "with masks": "still recovers" if b.errors and max(b.errors.values()) < 1e-6 else "fails",
                "why": why,
            }
        )
    st.markdown("##### Pairwise masks against coalitions (round 1)")
    st.table(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "Masks defeat every coalition that needs a partial sum from the ring; they cannot stop what the "
        "broadcast itself gives away: n − 1 hospitals still subtract their way to the last one, masks or not."
    )


def _worst(errors: dict[int, float]) -> str:
    return f"{max(errors.values()):.2g}" if errors else "—"


def _dp(lab: Lab) -> None:
    v = lab.variants["DP"]
    budget = v.budget
    if budget is None:
        return
    st.markdown("##### Differential privacy: what ε means, and against whom")
    plan = dp.plan(budget.epsilon, budget.delta, budget.clip, budget.rounds, lab.config.hospitals)
    st.markdown(
        dp.in_words(plan)
        + f" Noise multiplier z = {budget.noise_multiplier:.3g}: the decrypted sum carries Gaussian noise of "
        f"standard deviation z·C = {plan.sigma:.3g} per coordinate. The local phase shares nothing and is not "
        "part of the budget."
    )
    frame = pd.DataFrame(
        {
            "colluding hospitals k": [str(k) for k, _ in budget.coalition_epsilons],
            "noise left (share of variance)": [
                f"{(lab.config.hospitals - k)}/{lab.config.hospitals}" for k, _ in budget.coalition_epsilons
            ],
            "ε it faces": [f"{e:.3g}" for _, e in budget.coalition_epsilons],
        }
    )
    st.table(frame, hide_index=True)
    st.caption(
        "A coalition knows its own noise shares and subtracts them: against k colluding hospitals only "
        "(n − k)/n of the noise is left, so the guarantee weakens. With masks off, a server that decrypts a "
        "single hospital's message sees only that hospital's share: masks and DP protect different things."
    )
    c = lab.curve
    fig = go.Figure()
    eps = [p.epsilon for p in c.points]
    fig.add_trace(
        go.Scatter(
            x=eps,
            y=[p.median for p in c.points],
            mode="lines+markers",
            name=f"with DP (median of {len(c.points[0].mse)})",
            line={"color": colour(0)},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [p.mse[-1] - p.median for p in c.points],
                "arrayminus": [p.median - p.mse[0] for p in c.points],
            },
        )
    )
    for y, name, dash in (
        (c.no_dp, "no DP", "dot"),
        (c.clipped_only, f"clipping at C = {c.clip:g}, no noise", "dashdot"),
        (c.optimum, "least-squares optimum", "dash"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[eps[0], eps[-1]],
                y=[y, y],
                mode="lines",
                name=name,
                line={"color": REFERENCE, "dash": dash},
            )
        )
    fig.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": "Utility curve: test MSE against the privacy budget ε", "font": {"size": 14}},
        xaxis={
            "title": "ε (log scale; smaller is more private)",
            "type": "log",
            "tickvals": eps,
            "ticktext": [f"{e:g}" for e in eps],
        },
        yaxis={"title": f"test {lab.config.metric} after the federated phase"},
        legend=LEGEND_BELOW,
    )
    st.plotly_chart(fig, key="remedy-utility")
    st.caption(
        f"DP changes two things: it clips each patient's gradient to length {c.clip:g}, which alone moves the "
        f"descent (test {lab.config.metric} {c.clipped_only:.1f} instead of {c.no_dp:.1f} without DP), and it adds "
        "noise. As ε grows the noise fades and the curve meets the clipping-only line, not the no-DP one; where "
        "it sits below no DP, that is the clipping, not a gift of the noise."
    )
    if c.no_dp < c.optimum:
        st.caption(
            "The “no DP” line can sit below the optimum: the optimum is the best fit to the training rows, and on "
            "these test rows a descent stopped early happens to generalise slightly better."
        )
    st.table(
        pd.DataFrame(
            {
                "ε": [f"{p.epsilon:g}" for p in c.points],
                "noise multiplier z": [f"{p.noise_multiplier:.3g}" for p in c.points],
                "test MSE (median)": [f"{p.median:.1f}" for p in c.points],
                "range": [f"{p.mse[0]:.0f} – {p.mse[-1]:.0f}" for p in c.points],
            }
        ),
        hide_index=True,
    )


def _shuffle(lab: Lab) -> None:
    st.markdown("##### Shuffled ring: the server + Hospital 2 coalition over every round")
    coalition = frozenset({2})
    fixed = remedies.exposure_counts(lab.variants["none"], coalition, True)
    moved = remedies.exposure_counts(lab.shuffled, coalition, True)
    rounds = lab.config.rounds
    st.table(
        pd.DataFrame(
            {
                "hospital": [f"Hospital {k}" for k in fixed],
                "rounds exposed, fixed ring": [fixed[k] for k in fixed],
                "rounds exposed, shuffled ring": [moved[k] for k in fixed],
            }
        ),
        hide_index=True,
    )
    spread = sum(1 for v in moved.values() if v)
    always = [f"Hospital {k}" for k, v in fixed.items() if v == rounds]
    st.caption(
        f"Out of {rounds} rounds. The fixed ring hands this coalition {' and '.join(always) or 'no one'} in "
        f"every round; the shuffled one exposes {spread} hospital{'s' if spread != 1 else ''} in some rounds "
        f"({sum(moved.values())} hospital-rounds in all, against {sum(fixed.values())}): whose gradient leaks, "
        "and when, changes with the order. Any round where Hospital 2 follows a lone hospital still exposes "
        "that hospital exactly, so shuffling spreads the weak spot; masks remove it."
    )
