"""Privacy page: why at least three hospitals, shown with the run's own numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fedviz.config import Config
from fedviz.privacy.attacks import alternative_split, difference_attack
from pages import common, lab, remedies, session

st.title("Privacy: what the ring protects, and what it does not")
st.markdown(
    "The ring hides each hospital's gradient from everyone else — but every hospital also learns "
    "the **broadcast average** in the clear, and it knows its **own** gradient. Subtracting gives it "
    "the sum of everybody else's gradients. Whether that exposes anyone depends on how many others "
    "there are."
)

state = common.require_run("This page explains privacy with the numbers of a real run.")


def _sub(k: int) -> str:
    """A number as subscript digits (g₂, not g2, beside g₁)."""
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def explain_difference(state: session.RunState, label: str, key: str) -> None:
    obs = state.observations
    n = obs.hospitals
    r = common.round_slider("Federated round", 1, obs.rounds, f"{key}-round")
    FEATURES = state.record.features
    # what each hospital put into the ring (under DP: with its noise); hospital 1 knows its own
    truth, average = obs.sent[r - 1], obs.averages[r - 1]
    attack = difference_attack(truth[0], average, n, truth, attacker=0)
    st.markdown(
        f"**{label}.** Hospital 1 knows its own gradient g₁ and the broadcast average ā; it computes "
        f"{n}·ā − g₁ = "
        + (
            "g₂"
            if n == 2
            else " + ".join(f"g{_sub(k)}" for k in range(2, min(n, 4) + 1)) + (" + …" if n > 4 else "")
        )
        + "."
    )
    noisy = state.config.dp_epsilon is not None
    clean = obs.gradients[r - 1]
    # under DP what it recovers is what the others sent, noise included; their true gradients differ
    off_truth = float(np.max(np.abs(attack.recovered - clean[1:].sum(axis=0))))
    if attack.exposes_a_hospital:
        table = pd.DataFrame(
            {
                "feature": FEATURES,
                "what Hospital 2 sent" if noisy else "Hospital 2's true gradient": attack.target,
                "recovered by Hospital 1": attack.recovered,
                "difference": attack.recovered - attack.target,
            }
        )
        common.number_table(table, f"{key}-table", "%.12g")
        if noisy:
            st.warning(
                f"Hospital 2's noised gradient comes back exactly (largest difference {attack.error:.1e}); "
                f"its true gradient only to within its differential-privacy noise (off by up to "
                f"{off_truth:.2g}). With 2 hospitals the ring itself hides nothing from the other hospital: "
                "only the noise protects.",
                icon=":material/shield:",
            )
        else:
            st.error(
                f"Exposed: Hospital 2's gradient comes back exactly (largest difference "
                f"{attack.error:.1e}, floating-point rounding). With 2 hospitals the ring hides nothing "
                "from the other hospital.",
                icon=":material/lock_open:",
            )
    else:
        fake = alternative_split(truth, 0, np.random.default_rng(r))
        a, b = 1, 2
        columns = {
            "feature": FEATURES,
            f"true g{a + 1}": truth[a],
            f"true g{b + 1}": truth[b],
            f"other g{a + 1}": fake[a],
            f"other g{b + 1}": fake[b],
        }
        if noisy:
            columns = {
                name.replace("true g", "sent g") if name.startswith("true") else name: v
                for name, v in columns.items()
            }
        if n == 3:  # g2 + g3 is the whole sum: the columns above show it
            columns["what Hospital 1 recovers (sum of the others)"] = attack.recovered
        else:  # the made-up split changed only g2 and g3: show that every sum still agrees
            columns["true sum of the others" if not noisy else "sum of what the others sent"] = truth[1:].sum(
                axis=0
            )
            columns["made-up sum (= what Hospital 1 recovers)"] = fake[1:].sum(axis=0)
        common.number_table(pd.DataFrame(columns), f"{key}-table", "%.4f")
        same = float(np.max(np.abs(fake[1:].sum(axis=0) - truth[1:].sum(axis=0))))
        what = (
            f"the **sum** of what the other {n - 1} sent, noise included (to {attack.error:.1e}); that sum is "
            f"off their true gradients by up to {off_truth:.2g}, their differential-privacy noise, which the "
            "chart below shows round by round"
            if noisy
            else f"only the **sum** of the other {n - 1} gradients (to {attack.error:.1e})"
        )
        st.success(
            f"Hospital 1 recovers {what}. "
            f"The true split and the made-up split above both fit what it saw (their sums differ by "
            f"{same:.1e}), so it cannot tell which hospital contributed what — as long as no one colludes.",
            icon=":material/lock:",
        )
    lab.difference_errors(state, f"{key}-errors")


config = state.config
explain_difference(state, f"This run: {config.hospitals} hospitals", "diff")

if config.hospitals >= 3:
    st.markdown("##### The same with 2 hospitals")
    two = Config(**{**config.to_dict(), "hospitals": 2, "key_length": 1024})
    demo = session.two_demo()
    if demo is not None and demo.config == two:
        explain_difference(demo, "2 hospitals, same settings", "two")
    elif session.running() is None:
        if st.button("Run the 2-hospital case (1024-bit keys, a second or less)", key="two-run"):
            session.start(two, purpose="two")
            st.rerun()
    else:
        st.caption("The 2-hospital case can run when the run in progress has ended.")

st.divider()
lab.coalitions(state)
st.divider()
lab.aggregate(state)
st.divider()
lab.one_patient(state)
st.divider()
lab.exponents(state)
st.divider()
lab.topologies()
st.divider()
finished = state.record.finished
remedies.section(
    config, sum(finished.federated_mse) / len(finished.federated_mse) if finished else None, state
)
st.divider()
lab.summary()
