"""The privacy lab's sections: what curious parties and coalitions learn from a run.
Drawing only; every inference is computed by `fedviz.privacy.attacks`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fedviz.config import parse_number
from fedviz.crypto.encoding import PHE_EXPONENT, make_codec
from fedviz.data import prepared
from fedviz.errors import ConfigError
from fedviz.models import for_kind
from fedviz.privacy import attacks, remedies, topology
from fedviz.report.charts import LEGEND_BELOW, REFERENCE, colour
from pages.common import number_table, round_slider
from pages.diagrams import ring_dot
from pages.session import RunState

SERVER = "Server"


def coalitions(state: RunState) -> None:
    st.subheader("Coalitions: who can recover whom")
    n = state.config.hospitals
    obs, transcript = state.observations, state.transcript
    parties = [SERVER] + [f"Hospital {k}" for k in range(1, n + 1)]
    presets = _presets(n)
    row = st.container(horizontal=True)
    row.caption("Quick picks:")
    for label, members in presets.items():
        row.button(label, key=f"lab-preset-{label}", on_click=_pick, args=(members,), type="tertiary")
    chosen = st.pills(
        "Coalition",
        parties,
        selection_mode="multi",
        default=None if "lab-coalition" in st.session_state else [SERVER, "Hospital 2"],
        key="lab-coalition",
        help="Pick the parties that share what they saw.",
    )
    members = frozenset(int(p.split()[1]) for p in chosen or [] if p != SERVER)
    with_server = SERVER in (chosen or [])
    drawing = st.container(key="dot-sized-lab").empty()  # filled once the attempt says who is exposed
    rounds = sorted(set(transcript.rounds) | {transcript.last_round})
    r = st.select_slider("Round", rounds, key="lab-coalition-round")
    if state.config.shuffle_ring:
        order = obs.orders[r - 1]
        st.caption(
            "This run shuffles the ring: the drawing shows hospitals in their own order; in round "
            f"{r} the order was " + " → ".join(str(h + 1) for h in order) + ", and the attack below uses it."
        )
    outcome = coalition_outcome(state, members, with_server, r)
    drawing.graphviz_chart(
        ring_dot(
            n,
            coalition=members,
            exposed=outcome.exposed,
            server_in_coalition=with_server,
            shielded={k: outcome.verdict for k in outcome.shielded},
        ),
        width="stretch",
    )
    if len(members) >= n:
        st.info(
            "Every hospital is in this coalition: there is no one outside it whose gradient it could "
            "recover (and together they hold all the data anyway).",
            icon=":material/groups:",
        )
        return
    if not members and not with_server:
        st.info("Pick at least one party above.", icon=":material/touch_app:")
        return
    if not outcome.by_rules:
        st.success(
            "This coalition recovers no other hospital's gradient: what it holds is consistent with "
            "many different splits among the others.",
            icon=":material/lock:",
        )
        return
    if outcome.shielded:
        worst = max(outcome.errors[k] for k in outcome.shielded)
        st.success(
            f"Without remedies this coalition would expose {_names(outcome.shielded)}. In this run its "
            f"recovery code lands off by up to {worst:.2g}: "
            + (
                "the prefix it decrypted still carries the masks of pairs it holds no seed of, so every "
                "value is equally likely."
                if outcome.verdict == "masked"
                else "it reads what was sent, and that carries each hospital's share of the DP noise."
            ),
            icon=":material/lock:",
        )
    if outcome.unmeasured and state.opened and state.config.masks == "pairwise":
        st.info(
            f"Without masks this coalition would read {_names(outcome.unmeasured)}. With this run's pairwise "
            "masks, what the server decrypts for it is noise to any coalition short of all the other "
            "hospitals (the rules the Compare page gives too). This stored run cannot measure it again: what "
            "a coalition can take off depends on the mask seeds its members hold, and seeds never leave the "
            "run that made them. Run it again here to measure it.",
            icon=":material/key_off:",
        )
    elif outcome.unmeasured:
        st.info(
            f"By the coalition rules this coalition would read {_names(outcome.unmeasured)}"
            + (" unless this run's masks hide it" if state.config.masks == "pairwise" else "")
            + ", but this page cannot show it: "
            + _why_unmeasured(state, r),
            icon=":material/key_off:",
        )
    if not outcome.exposed:
        return
    exact = sorted(outcome.exposed)
    decrypted = with_server and any(j >= 2 for j in members)
    when = f"in round {r}" if state.config.shuffle_ring else "in every round"
    st.error(
        f"Exposed {when}: **{_names(exact)}**. Recovered exactly from what the coalition holds"
        + (
            (
                " (the server decrypted, with this run's private key while it ran, the messages its members "
                "received; the run store kept what it read, never the key)"
                if state.opened
                else " (the server really decrypts, with this run's private key, the messages its members received)"
            )
            if decrypted
            else ""
        )
        + ".",
        icon=":material/lock_open:",
    )
    k = exact[0]
    truth = obs.gradients[r - 1]
    recovered = outcome.recovered[k]
    frame = pd.DataFrame(
        {
            "feature": state.record.features,
            f"Hospital {k}'s true gradient": truth[k - 1],
            "recovered by the coalition": recovered,
            "difference": recovered - truth[k - 1],
        }
    )
    number_table(frame, "lab-coalition-table", "%.10g")
    st.caption(
        f"Round {r}: largest error over all exposed hospitals {max(outcome.errors[j] for j in exact):.1e} "
        "(fixed-point and float rounding)."
    )


@dataclass(frozen=True)
class Outcome:
    """A coalition's attempt in one round, sorted for drawing: who the rules say it would read,
    who it really read exactly, whose recovery the run's remedies spoiled, and whom this page
    could not try (no key in this session)."""

    by_rules: frozenset[int]
    exposed: frozenset[int]
    shielded: frozenset[int]
    unmeasured: frozenset[int]
    verdict: str
    """"masked" or "noisy": why the shielded recoveries are off."""
    errors: dict[int, float]
    recovered: dict[int, np.ndarray]


def coalition_outcome(state: RunState, members: frozenset[int], with_server: bool, r: int) -> Outcome:
    """What the coalition really recovers in round `r`, split by the rules' expectation."""
    n = state.config.hospitals
    obs, transcript = state.observations, state.transcript
    by_rules = attacks.exposed_hospitals(members, with_server, n)
    if obs.orders:  # who is exposed in this round's ring order
        positions = {h + 1: p + 1 for p, h in enumerate(obs.orders[r - 1])}
        inverse = {p: h for h, p in positions.items()}
        in_order = frozenset(positions[h] for h in members)
        by_rules = frozenset(inverse[p] for p in attacks.exposed_hospitals(in_order, with_server, n))
    if len(members) >= n or not by_rules:
        return Outcome(by_rules, frozenset(), frozenset(), frozenset(), "", {}, {})
    codec = (
        make_codec(state.config.encoding, transcript.n, len(state.record.features), n)
        if transcript.n is not None
        else None
    )
    # the server really decrypts, with this run's private key, the messages its members received
    got = remedies.coalition_attempt(
        obs, list(transcript.hops(r) or []), state.opener, state.masks, codec, members, with_server, r
    )
    scale = float(np.max(np.abs(obs.gradients[r - 1])))
    exposed = frozenset(k for k in got.errors if got.exact(k, scale))
    shielded = frozenset(got.errors) - exposed
    masked = state.config.masks == "pairwise" and with_server and state.server is not None
    verdict = "masked" if masked else "noisy"
    unmeasured = by_rules - frozenset(got.errors)
    return Outcome(by_rules, exposed, shielded, unmeasured, verdict, got.errors, got.recovered)


def _why_unmeasured(state: RunState, r: int) -> str:
    """Why the lab could not open what a coalition hands the key holder, in words."""
    if state.opened and state.openings is not None:
        kept = state.openings.rounds
        return (
            f"this is a stored run, and it kept what the key holder read for rounds {_rounds(kept)} only "
            "(the private key is never stored). Choose one of those rounds."
        )
    if state.opened:
        return (
            "this is a stored run, and the private key is never stored: what its key holder read was not "
            "kept for it (a run of the command line, or of Flower). Run it here to measure it."
        )
    return (
        "the run's private key never left the key holder's own process on Flower, so the lab holds no key "
        "to decrypt with. The table “Separate parties: ring or star” below measures such coalitions with "
        "real keys."
    )


def _rounds(rounds: list[int]) -> str:
    """[1, 2, 3, 7] -> "1–3 and 7"."""
    spans: list[list[int]] = []
    for r in rounds:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in spans]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _presets(n: int) -> dict[str, list[str]]:
    """Coalitions worth a click (a pill per party is slow to pick at 78 hospitals)."""
    hospitals = [f"Hospital {k}" for k in range(1, n + 1)]
    out = {"Server + Hospital 2": [SERVER, "Hospital 2"]}
    if n >= 3:
        out["Server + Hospital 2's neighbours"] = [SERVER, "Hospital 1", "Hospital 3"]
    out["All hospitals but Hospital 1"] = hospitals[1:]
    out["Server alone"] = [SERVER]
    return out


def _pick(members: list[str]) -> None:
    st.session_state["lab-coalition"] = list(members)


def _names(hospitals: object) -> str:
    return ", ".join(f"Hospital {k}" for k in sorted(hospitals))  # type: ignore[call-overload]


def aggregate(state: RunState) -> None:
    st.subheader("Leakage from the aggregate")
    config, obs = state.config, state.observations
    st.markdown(
        "For a linear model the broadcast average is an affine function of how far the weights have moved: "
        "**Gₜ = c − A·uₜ**, with uₜ = η·(sum of earlier averages) the same for every hospital and A the "
        "hospitals' average of XᵀX. Anyone who saw the broadcasts can fit A by least squares. In exact "
        "arithmetic 12 rounds in general position suffice; a real descent moves in few directions, so the "
        "design is nearly degenerate."
    )
    if config.model != "linear":
        st.info(
            "This run trains logistic regression: its gradient is not an affine function of the weights, so "
            "there is no XᵀX to fit from the broadcasts. (Membership and model-inversion attacks on logistic "
            "models exist; they are not shown here.)",
            icon=":material/info:",
        )
        return
    data = prepared(config)
    truth = attacks.true_aggregate_matrix(data.hospital_X, config.gradient)
    start = round_slider(
        "Start the fit after round",
        2,
        obs.rounds,
        "lab-agg-from",
        help="The curve shows the fit with the first t broadcasts, for t from here to the end.",
    )
    curve = attacks.aggregate_curve(obs.averages, config.learning_rate, truth, start=start)
    if not curve:
        st.info("Not enough rounds in this run to fit.")
        return
    ts = [t for t, _, _ in curve]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ts, y=[100 * e for _, _, e in curve], name="relative error of A (%)", line={"color": colour(0)}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=[rk for _, rk, _ in curve],
            name="numerical rank (of 12)",
            yaxis="y2",
            line={"color": colour(1), "dash": "dot"},
        )
    )
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={
            "text": "Fitting the hospitals' XᵀX from the broadcasts: error and rank",
            "font": {"size": 14},
        },
        xaxis={"title": "broadcasts seen"},
        yaxis={"title": "error of A (%)", "type": "log", "exponentformat": "e", "dtick": 1},
        yaxis2={
            "title": "rank",
            "overlaying": "y",
            "side": "right",
            "range": [0, 12.5],
            "tickmode": "linear",
            "dtick": 2,
            "showgrid": False,
        },
        legend=LEGEND_BELOW,
    )
    st.plotly_chart(fig, key="lab-agg-chart")
    t, rank, error = curve[-1]
    fit = attacks.fit_aggregate(
        attacks.cumulative_updates(obs.averages, config.learning_rate), np.asarray(obs.averages)
    )
    others = attacks.others_gram(fit.A, data.hospital_X[0], config.hospitals, config.gradient)
    true_others = attacks.others_gram(truth, data.hospital_X[0], config.hospitals, config.gradient)
    metrics = st.container(horizontal=True)  # wraps on a narrow window
    metrics.metric("Rank after all rounds", f"{rank} of 12")
    metrics.metric("Error of A", f"{100 * error:.2f} %")
    metrics.metric(
        "Hospital 1's estimate of the others' XᵀX",
        f"{100 * attacks.relative_error(others, true_others):.2f} %",
        help="n·A minus its own XᵀX: the others' pooled second moments (feature correlations).",
    )
    frame = pd.DataFrame(
        {
            "feature": data.features,
            "others' XᵀX diagonal (true)": np.diag(true_others),
            "inferred by Hospital 1": np.diag(others),
        }
    )
    with st.expander("The others' pooled statistics, as Hospital 1 infers them"):
        number_table(frame, "lab-agg-table", "%.4f")
    st.caption(
        f"{t} broadcasts: an honest fit is good where the trajectory moved and blind elsewhere; "
        "more rounds or varied learning rates close the gap. With a cold start c reveals Xᵀy too."
    )


def one_patient(state: RunState) -> None:
    st.subheader("A hospital with one patient: gradients are data")
    st.markdown(
        "A what-if on one record (real runs keep at least 5 patients per hospital): a hospital holding a "
        "single patient sends (w·x − y)·x — the record times one number. The intercept entry of x is 1, so "
        "that entry **is** the number: divide, and the record is back."
    )
    config, obs = state.config, state.observations
    data = prepared(config)
    block = data.hospital_X[0]
    FEATURES = data.features
    text = st.text_input(
        "Patient of Hospital 1",
        "0",
        key="lab-patient",
        help=f"Which of Hospital 1's {len(block)} patients, 0 to {len(block) - 1}.",
    )
    try:
        i = int(parse_number("patient", text or "", int))
        if not 0 <= i < len(block):
            raise ValueError
    except (ConfigError, ValueError):
        st.error(
            f"Patient: {text!r} is not one of Hospital 1's patients — use a whole number from 0 to "
            f"{len(block) - 1}.",
            icon=":material/block:",
        )
        return
    u = attacks.cumulative_updates(obs.averages, config.learning_rate)
    weights = -u[-1] if len(u) else np.zeros(len(FEATURES))
    if config.model == "logistic":
        st.caption(
            "For logistic regression the gradient is (p − y)·x with p = sigmoid(w·x): again the record times one "
            "number, and the same division gives x back."
        )
    x, y = block[int(i)], float(data.hospital_y[0][int(i)])
    model = for_kind(config.model)
    gradient = attacks.single_patient_gradient(x, y, weights, model)
    got = attacks.recover_single_patient(gradient, weights, model)
    frame = pd.DataFrame(
        {
            "feature": [*FEATURES, "target y"],
            "true record": [*x, y],
            "recovered from the gradient": [*got.record, got.target],
            "difference": [*(got.record - x), got.target - y],
        }
    )
    number_table(frame, "lab-patient-table", "%.10g")
    st.error(
        "Recovered exactly (differences at float rounding). The ring hides this gradient only while no "
        "coalition can isolate that hospital's contribution — see the coalitions above.",
        icon=":material/lock_open:",
    )
    st.caption(
        "Weights used: the public cumulative update of this run (everyone can compute it from the "
        "broadcasts); y needs the weights, x does not."
    )
    if config.dp_epsilon is not None:
        st.info(
            f"This run adds differential privacy (ε = {config.dp_epsilon:g}): a hospital clips each patient's "
            f"gradient to length {config.dp_clip:g} and adds noise to its sum before encrypting, so what a "
            "one-patient hospital sends is its record, scaled down and drowned in noise: the division above "
            "would give noise back, not the record.",
            icon=":material/shield:",
        )


def exponents(state: RunState) -> None:
    st.subheader("phe's exponent, in the clear")
    obs, n = state.observations, state.transcript.n
    st.markdown(
        "phe sends each ciphertext with an exponent in the clear. Its default encoding picks the exponent from "
        f"the value, so the exponent tracks the magnitude. fedviz encodes every value on one grid (exponent "
        f"{PHE_EXPONENT}), so the exponent is the same for all. Packed ciphertexts carry no per-value exponent "
        "at all (exponent 0 for the whole integer)."
    )
    if n is None or not obs.gradients:
        return
    r = round_slider("Gradients of round", 1, obs.rounds, "lab-exp-round")
    values = obs.gradients[r - 1].ravel()
    default = attacks.phe_default_exponents(values, n)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=np.abs(values),
            y=default,
            mode="markers",
            name="phe default exponent",
            marker={"color": colour(1), "size": 8},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=np.abs(values),
            y=[PHE_EXPONENT] * len(values),
            mode="markers",
            name=f"fedviz per-value (always {PHE_EXPONENT})",
            marker={"color": REFERENCE},
        )
    )
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": "The exponent each value would travel with, in the clear", "font": {"size": 14}},
        xaxis={"title": "|gradient value|", "type": "log", "dtick": 1, "exponentformat": "e"},
        yaxis={"title": "exponent sent in clear"},
        legend=LEGEND_BELOW,
    )
    st.plotly_chart(fig, key="lab-exp-chart")
    st.caption(
        f"Round {r}: phe's default used {len(set(default))} different exponents for {len(values)} values."
    )


SUMMARY = pd.DataFrame(
    [
        (
            "A curious hospital, 2 hospitals",
            "—",
            "the other hospital's gradient, exactly (own gradient and the broadcast are enough)",
            "at least 3 hospitals",
        ),
        (
            "A curious hospital, 3 or more",
            "each other hospital's gradient",
            "the sum of the others' gradients",
            "keep 3 or more; no collusion",
        ),
        (
            "An eavesdropper on a hop",
            "every value (Paillier encryption: reading it means breaking a problem believed as hard as "
            "factoring the key)",
            "message sizes, timing, the ring order",
            "TLS underneath; Flower's hops are also sealed hospital to hospital",
        ),
        (
            "Server + hospital k+1",
            "—",
            "the partial sum g₁+…+gₖ (for k = 1, hospital 1's gradient itself)",
            "pairwise masks (measured above); a shuffled ring only spreads it",
        ),
        (
            "n − 1 hospitals together",
            "—",
            "the last hospital's gradient",
            "no collusion; more hospitals; DP noise",
        ),
        (
            "The relay (Flower)",
            "every value: ring hops are sealed, star parts are ciphertexts",
            "who talks to whom, sizes, timing",
            "—",
        ),
        (
            "The key holder in a star (Flower)",
            "—",
            "every hospital's part: it is handed them to check the sum is complete",
            "the ring, or pairwise masks on the parts",
        ),
        (
            "Anyone seeing the broadcasts",
            "individual gradients",
            "the pooled XᵀX (and Xᵀy) of a linear model",
            "differential privacy (measured above)",
        ),
        ("Membership questions", "—", "whether a patient was used", "differential privacy"),
        (
            "phe's default exponent",
            "fedviz sends one agreed exponent",
            "the size of each value (phe's default)",
            "a fixed exponent or packing (fedviz does both)",
        ),
    ],
    columns=["threat", "what the protocol protects", "what it does not", "remedy"],
)


@st.cache_data(show_spinner="Measuring both topologies on a small real run…", max_entries=1)
def _topology_table() -> pd.DataFrame:
    """The measured exposure table (public data and fresh keys: safe to share across sessions;
    it keeps only scores and words, no key or ciphertext)."""
    rows: dict[str, dict[str, str]] = {}
    for e in topology.measure():
        verdict = (
            f"reads it exactly (error {e.error:.0e}): {e.how}"
            if e.exact
            else f"reads noise (off by {e.error:.0e}): {e.how}"
            if "noise" in e.how
            else f"only the average (its best guess is off by {e.error:.3g}): {e.how}"
        )
        rows.setdefault(e.coalition, {"coalition": e.coalition})[e.topology] = verdict
    return pd.DataFrame(list(rows.values()), columns=["coalition", *topology.LAYOUTS])


def topologies() -> None:
    st.subheader("Separate parties: ring or star, who can read hospital 1's gradient")
    st.markdown(
        "On the Flower engine every party is its own process and every message passes a **relay** that "
        "holds no key. In the **ring** each hop is sealed from hospital k to hospital k + 1, so the relay "
        "sees only sealed bytes; in the **star** all hospitals send at once and the relay multiplies their "
        "ciphertexts. Either way the key holder decrypts one aggregate per round, and only after checking "
        "every hospital's signed statement that it is complete. Below, each coalition pools what its members "
        "really saw and hold in a small run (3 hospitals, 1024 bits) and tries to read hospital 1's gradient, "
        "without and with pairwise masks:"
    )
    st.table(_topology_table(), hide_index=True)
    st.caption(
        "The ring's weak spot stays the one the seed post has: hospital k + 1 holds Enc(g1 + … + gk), so with "
        "the key holder's help it reads that sum (for k = 1, hospital 1's gradient). The star removes that "
        "spot but creates a worse one: to check that the sum is complete the key holder is handed every part, "
        "so a curious key holder alone can read every gradient. Pairwise masks close both spots: a partial sum "
        "or a lone part then decrypts to noise, while the total stays exact. n − 1 colluding hospitals expose "
        "the last one in every column."
    )


def summary() -> None:
    st.subheader("Summary")
    st.table(SUMMARY, hide_index=True)  # a static table: long cells wrap instead of being cut
    st.caption(
        "Sources: python-paillier, docs/caveats.rst (exponent and information leakage); the n1analytics post "
        "“Distributed machine learning and partially homomorphic encryption”; Zhu, Liu and Han, "
        "“Deep Leakage from Gradients” (NeurIPS 2019); Damgård, Jurik and Nielsen (2010) for the short-exponent "
        "randomness."
    )


def difference_errors(state: RunState, key: str) -> None:
    """Per round: how far Hospital 1's difference attack lands from the others' true sum."""
    errors = attacks.difference_errors(state.observations)
    n = state.config.hospitals
    target = "Hospital 2's true gradient" if n == 2 else f"the true sum of the other {n - 1}"
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(errors) + 1)),
            y=np.where(errors > 0, errors, np.nan),  # an exact 0 has no place on a log axis: a gap
            mode="lines+markers",
            line={"color": colour(3)},
            name="error",
        )
    )
    fig.update_layout(
        height=260,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"Hospital 1's error against {target}, per round", "font": {"size": 14}},
        xaxis={"title": "federated round"},
        yaxis={"title": "largest |error|", "type": "log", "exponentformat": "e", "dtick": 1},
    )
    st.plotly_chart(fig, key=key)
    zeros = int(np.sum(errors == 0))
    if zeros:
        st.caption(
            f"{zeros} of {len(errors)} rounds had an error of exactly 0: "
            + ("it is a gap in the line." if zeros == 1 else "they are gaps in the line.")
        )
