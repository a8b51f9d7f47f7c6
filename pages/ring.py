"""Ring inspector: what travelled on each hop of a round, byte for byte."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fedviz.crypto.encoding import FRACTION_BITS, PackedCodec, make_codec
from fedviz.events import RingHop
from pages import common
from pages.diagrams import prefix, ring_dot, star_dot

FLOAT64_BYTES = 8

st.title("Ring inspector")
st.markdown(
    "Each round, hospital 1 encrypts its gradient and passes it on; each next hospital multiplies in "
    "its own encrypted gradient (which **adds** the hidden values) and passes the total on; the last "
    "hospital hands it to the server, the only party with the private key. Below is exactly what "
    "travelled: the integers an eavesdropper — or the next hospital — would see."
)

state = common.require_run("The inspector shows the ciphertexts of the last run.")
FEATURES = state.record.features


def _size(nbytes: int) -> str:
    """Bytes as people read them: 768 bytes, 38.4 kB, 7.68 MB."""
    if nbytes < 1000:
        return f"{nbytes} bytes"
    return f"{nbytes / 1e3:.1f} kB" if nbytes < 1_000_000 else f"{nbytes / 1e6:.2f} MB"


config, transcript = state.config, state.transcript
keys = transcript.keys
assert keys is not None and transcript.n is not None
n_hosp = config.hospitals
kept = sorted(set(transcript.rounds) | {transcript.last_round})

pick_round, pick_hop = st.columns(2)
round_ = pick_round.select_slider(
    "Round",
    options=kept,
    value=kept[0],
    key="ring-round",
    help="Rounds beyond the memory budget are not kept (the last one always is)."
    if transcript.dropped
    else None,
)
hops = transcript.hops(round_)
assert hops is not None
hop_labels = {h.hop: f"{h.hop}: {h.sender} → {h.receiver}" for h in hops}
hop_no = pick_hop.selectbox("Hop", list(hop_labels), format_func=hop_labels.__getitem__, key="ring-hop")
hop: RingHop = hops[hop_no - 1]
parties = transcript.parties
star = parties is not None and parties.topology == "star"

if parties is not None:
    st.info(
        (
            "**This run's parties were separate processes on Flower**: every message passed a relay (Flower's "
            "ServerApp), which holds no key. "
        )
        + (
            "In the **star** every hospital sent its encrypted gradient to the relay at once; the relay "
            "multiplied them and handed the product, with every part, to the key holder (**Server**)."
            if star
            else "Each hop was **sealed** for the next hospital, so the relay saw only sealed bytes; below is the "
            "ciphertext only the receiver could open, and what the relay carried."
        ),
        icon=":material/lan:",
    )
# keyed "dot-sized-": the DOT's own font sizes (pages/layout.py), readable from the back of a room
st.container(key="dot-sized-ring").graphviz_chart(
    star_dot(n_hosp, hop_no) if star else ring_dot(n_hosp, hop_no), width="stretch"
)
if parties is not None:
    with st.expander(f"The parties: {len(parties.parties)} separate processes (Flower, {parties.topology})"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "party": p.name,
                        "role": p.role,
                        "process id": p.pid,
                        "Flower node id": "" if p.node_id is None else str(p.node_id),
                    }
                    for p in parties.parties
                ]
            ),
            hide_index=True,
            width="stretch",
            key="ring-parties",
        )
        st.caption(
            "Each hospital and the key holder is a Flower SuperNode of its own; the relay is Flower's "
            "ServerApp under the SuperLink. The private key lives only in the key holder's node. These "
            "processes ended with the run."
        )

terms = f"g{hop.hop}" if hop.receiver == "Relay" else prefix(hop.contributions)
per_ct = hop.nbytes // len(hop.ciphertexts)
st.subheader(f"Round {round_}, hop {hop.hop}: {hop.sender} → {hop.receiver}")
hop_metrics = st.container(horizontal=True)  # wraps on a narrow window
masked = state.config.masks == "pairwise" and hop.receiver != "Server"
hop_metrics.metric(
    "Holds",
    f"Enc({terms} + masks)" if masked else f"Enc({terms})",
    help="Pairwise masks are on: this partial sum also carries the masks of pairs it cuts, so even the key "
    "holder would decrypt noise."
    if masked
    else None,
)
hop_metrics.metric("Ciphertexts", len(hop.ciphertexts))
hop_metrics.metric("Bytes on this hop", f"{hop.nbytes:,}")
hop_metrics.metric(
    "Blow-up vs float64",
    f"{hop.nbytes / (len(FEATURES) * FLOAT64_BYTES):.0f}×",
    help=f"The same gradient in the clear: {len(FEATURES)} float64 values = {len(FEATURES) * 8} bytes.",
)

exchange = transcript.exchange(round_, f"part {hop.hop}" if star else f"hop {hop.hop}")
if exchange is not None and exchange.sealed:
    relay_saw, only_receiver = st.columns(2)
    relay_saw.info(
        f"**What the relay carried:** {exchange.nbytes:,} sealed bytes (AES-GCM under a key only "
        f"{hop.sender} and {hop.receiver} can derive), beginning `{exchange.preview}…`. It learns the size "
        f"and the timing ({exchange.seconds:.1f} s for this exchange), nothing else.",
        icon=":material/mail_lock:",
    )
    only_receiver.info(
        f"**What only {hop.receiver} could open:** the ciphertext below, after checking the seal. "
        f"{hop.sender} also signed a statement naming it (by its hash), which the key holder checks before "
        "it decrypts anything.",
        icon=":material/key:",
    )
elif exchange is not None:
    st.info(
        f"**The relay sees this ciphertext itself** ({exchange.nbytes:,} bytes, not sealed): in the star it "
        "multiplies all hospitals' ciphertexts. It cannot read them (no key), but if it colluded with the "
        "key holder, every hospital's gradient would be open — see the Privacy page.",
        icon=":material/visibility:",
    )

can, cannot = st.columns(2)
if hop.receiver == "Relay":
    can.success(
        "**The relay can** multiply this ciphertext with the other hospitals' (which adds the hidden "
        "gradients) and forward the product, with every hospital's signed statement, to the key holder.",
        icon=":material/lock_open:",
    )
    cannot.error(
        "**The relay cannot** read any value: it holds no key.",
        icon=":material/lock:",
    )
elif hop.receiver == "Server":
    can.success(
        f"**The server can** decrypt this total of all {n_hosp} gradients, divide by {n_hosp} and broadcast "
        "the average in the clear.",
        icon=":material/lock_open:",
    )
    cannot.error(
        "**The server cannot** tell the hospitals' shares apart: it only ever decrypts the total. "
        "(If hospital k+1 colluded and handed it an earlier hop, it could — see the Privacy page.)",
        icon=":material/lock:",
    )
else:
    can.success(
        f"**{hop.receiver} can** see how many gradients are summed ({hop.contributions}: its position is "
        "public), the exponent, and the size; it multiplies in its own ciphertext and passes the result on.",
        icon=":material/lock_open:",
    )
    cannot.error(
        f"**{hop.receiver} cannot** read any value: without the private key each integer is "
        f"indistinguishable from a random number modulo n² ({2 * config.key_length} bits).",
        icon=":material/lock:",
    )

st.markdown("**The ciphertext integers, in full** (decimal; copy with the button at the corner)")
if len(hop.ciphertexts) == 1:
    labels = [f"all {len(FEATURES)} values (packed)"]
elif keys.encoding == "packed":
    labels = [f"ciphertext {i + 1}" for i in range(len(hop.ciphertexts))]
else:
    labels = list(FEATURES)
rows = [
    {
        "holds": label,
        "exponent": c.exponent,
        "bits": c.value.bit_length(),
        "bytes": per_ct,
        "digits": len(str(c.value)),
    }
    for label, c in zip(labels, hop.ciphertexts, strict=True)
]
if len(hop.ciphertexts) > 1:
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch", height="content", key="ring-ciphertexts"
    )
    which = st.selectbox(
        "Show ciphertext", range(len(labels)), format_func=lambda i: labels[i], key="ring-which"
    )
else:
    which = 0
    st.caption(
        f"exponent {rows[0]['exponent']} · {rows[0]['bits']} bits · {per_ct} bytes on the wire "
        f"(fixed size: an integer modulo n²) · {rows[0]['digits']} decimal digits"
    )
st.code(str(hop.ciphertexts[which].value), language=None, wrap_lines=True, height=160)

st.subheader("Encoding")
codec = make_codec(keys.encoding, transcript.n, len(FEATURES), n_hosp)
if isinstance(codec, PackedCodec):
    st.markdown(
        f"**Packed.** The {len(FEATURES)} gradient values share one plaintext integer below n in {codec.slots} "
        f"slots of {codec.slot_bits} bits. Each value becomes an integer on a 2⁻{FRACTION_BITS} grid, plus "
        f"the public offset 2^{codec.value_bits - 1} so it is never negative; {codec.carry_bits} carry bits "
        f"above it give room for the sum of {n_hosp} hospitals, so adding ciphertexts never spills into the "
        f"next slot. Largest |value| one hospital may send: {codec.max_abs:.3g}; anything larger stops the run "
        "with an error instead of wrapping. No per-value exponent travels: the exponent is 0 for the whole "
        "integer."
    )
    own = state.observations.sent[round_ - 1][0] if state.observations.sent else None
    layout = []
    plain = codec.encode(np.asarray(own)) if own is not None else None
    for i, feature in enumerate(FEATURES):
        slot, ct = i % codec.slots, i // codec.slots
        entry = {
            "value": feature,
            "ciphertext": ct + 1,
            "bits": f"{slot * codec.slot_bits}–{(slot + 1) * codec.slot_bits - 1}",
        }
        if plain is not None and own is not None:
            entry["Hospital 1's value (it alone knows)"] = float(own[i])
            entry["slot content (offset added)"] = str(codec.slot_of(plain[ct], slot))
        layout.append(entry)
    st.table(pd.DataFrame(layout), hide_index=True)
    if state.config.masks == "pairwise":
        st.caption(
            "This run uses pairwise masks: before encrypting, Hospital 1 also added its masks (random numbers "
            "below n, which cancel in the full sum) to this integer, so the ciphertext above encrypts the slots "
            "shown plus those masks. Without the other hospitals' seeds the masked integer looks random."
        )
else:
    st.markdown(
        f"**Per value**, as in the post: one ciphertext per gradient value, {len(FEATURES)} per message. Every "
        f"value uses the one agreed exponent {codec.exponent} (16^{codec.exponent} = 2⁻{FRACTION_BITS}), so "
        "the exponent travelling in the clear says nothing about a value's size. phe's default would pick "
        "each exponent from the value itself and leak its magnitude."
    )

st.subheader("Traffic")
traffic = st.container(horizontal=True)
traffic.metric("Bytes per hop", f"{hop.nbytes:,}")
traffic.metric(
    "Bytes per round",
    f"{sum(h.nbytes for h in hops):,}",
    help=f"{len(hops)} hops" + (" (the hospitals' parts, then the product)" if star else " of the ring"),
)
traffic.metric(
    "Whole run",
    _size(sum(h.nbytes for h in hops) * config.rounds),
    help=f"{config.rounds} rounds; plus the broadcast average: {len(FEATURES)} float64 values per hospital per "
    "round.",
)
st.download_button(
    f"Round {round_} transcript (JSON, phe serialisation)",
    transcript.round_json(round_),
    icon=":material/download:",
    file_name=f"fedviz-round-{round_}.json",
    mime="application/json",
)
if transcript.dropped:
    st.caption(
        f"{transcript.dropped} middle rounds were not kept to bound memory; the first rounds and the "
        "last one are."
    )
