"""The story pages: the walkthrough's steps against real runs, who sees what from the rules,
the glossary's coverage of the words the UI uses, and both pages through AppTest."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import of_type
from streamlit.testing.v1 import AppTest

from fedviz.config import Config
from fedviz.events import Event, FederatedRound, HospitalGradients, KeysGenerated, LocalRound, RingHop
from fedviz.privacy.attacks import exposed_hospitals, known_prefixes
from fedviz.story import diagram, glossary, visibility
from fedviz.story import walkthrough as walk
from pages.session import RunState

ROOT = Path(__file__).resolve().parent.parent
APP = "../app.py"
TIMEOUT = 120
Events = Callable[..., tuple[Event, ...]]


# --------------------------------------------------------------------------- helpers


def folded(events: Events, **settings: object) -> tuple[RunState, tuple[Event, ...]]:
    """A real in-process run (1024-bit keys, 3 rounds unless told) folded as a session folds it."""
    settings.setdefault("rounds", 3)
    stream = events(pooled=False, **settings)
    state = RunState(Config(key_length=1024, **settings))  # type: ignore[arg-type]
    for event in stream:
        state.add(event)
    return state, stream


def view_of(state: RunState, round_: int = 1) -> walk.RoundView:
    return walk.round_view(state.record, state.transcript, state.observations, round_)


def hops_of(stream: tuple[Event, ...], round_: int) -> list[RingHop]:
    return [h for h in of_type(stream, RingHop) if h.round == round_]


def stage_of(view: walk.RoundView, kind: str, first: int | None = None) -> walk.Stage:
    return next(s for s in walk.outline(view) if s.kind == kind and (first is None or s.first == first))


# --------------------------------------------------------------------------- the walkthrough


def test_the_keys_step_shows_the_published_modulus(events: Events) -> None:
    state, stream = folded(events)
    (keys,) = of_type(stream, KeysGenerated)
    step = walk.step(view_of(state), stage_of(view_of(state), "keys"))
    n = str(keys.n)
    assert f"{len(n)} decimal digits, beginning {n[:6]}… and ending …{n[-6:]}" in step.does
    assert ("n", f"{len(n)} digits") in step.facts
    assert step.actor == "Server" and step.focus.parties == ("Server",)


def test_hospital_1_encrypts_its_real_gradient_into_the_real_ciphertext(events: Events) -> None:
    state, stream = folded(events)
    view = view_of(state, 2)
    truth = next(e for e in of_type(stream, HospitalGradients) if e.round == 2).gradients[0]
    hop = hops_of(stream, 2)[0]
    step = walk.step(view, stage_of(view, "hop", 1))
    assert step.actor == "Hospital 1" and "Hospital 2" in step.does
    assert step.vectors[0][1] == truth  # its 11 numbers, exactly
    for value in truth:
        assert walk.fmt(value) in step.text
    value = str(hop.ciphertexts[0].value)
    assert f"one ciphertext of {len(value)} digits ({hop.nbytes:,} bytes)" in step.does
    assert step.ciphertext == f"{value[:12]}…{value[-12:]}"
    assert "at the model every hospital reached after round 1's step" in step.does


def test_each_next_hospital_receives_the_previous_ciphertext_and_adds_its_own(events: Events) -> None:
    state, stream = folded(events)
    view = view_of(state)
    hops = hops_of(stream, 1)
    truth = next(e for e in of_type(stream, HospitalGradients) if e.round == 1).gradients
    for k in (2, 3):
        step = walk.step(view, stage_of(view, "hop", k))
        incoming, outgoing = hops[k - 2], hops[k - 1]
        assert step.actor == f"Hospital {k}" and step.vectors[0][1] == truth[k - 1]
        assert f"receives from Hospital {k - 1}" in step.does
        assert f"one ciphertext of {len(str(incoming.ciphertexts[0].value))} digits" in step.does
        assert ("Digits", str(len(str(outgoing.ciphertexts[0].value)))) in step.facts
        assert step.focus.edge == (f"Hospital {k}", outgoing.receiver)
    last = walk.step(view, stage_of(view, "hop", 3))
    assert "sends Enc(g1 + g2 + g3) to Server" in last.does
    assert "g1 + g2: without the private key" in last.cannot


def test_decrypt_and_broadcast_show_the_real_average_and_the_rounds_mse_change(events: Events) -> None:
    state, stream = folded(events)
    local = of_type(stream, LocalRound)[-1].mse
    rounds = of_type(stream, FederatedRound)
    for r, before in ((1, local), (2, rounds[0].mse)):
        view = view_of(state, r)
        done = rounds[r - 1]
        broadcast = walk.step(view, stage_of(view, "broadcast"))
        assert broadcast.vectors == (("Broadcast average ā", done.average_gradient),)
        for value in done.average_gradient:
            assert walk.fmt(value) in broadcast.text
        mean_before, mean_after = np.mean(before), np.mean(done.mse)
        change = mean_after - mean_before
        sign = "+" if change >= 0 else "−"
        assert (
            f"mean test MSE {mean_before:.2f} → {mean_after:.2f} ({sign}{abs(change):.2f})" in broadcast.does
        )
        assert [(m.before, m.after) for m in broadcast.mse] == list(zip(before, done.mse))
        decrypt = walk.step(view, stage_of(view, "decrypt"))
        assert decrypt.vectors[0][1] == tuple(3 * a for a in done.average_gradient)
        total = np.sum(next(e for e in of_type(stream, HospitalGradients) if e.round == r).gradients, axis=0)
        assert np.allclose(decrypt.vectors[0][1], total, rtol=1e-12, atol=1e-9)


def test_a_cold_start_does_not_invent_the_zero_models_mse(events: Events) -> None:
    state, stream = folded(events, warm_start=False, rounds=2)
    view = view_of(state)
    step = walk.step(view, stage_of(view, "broadcast"))
    assert all(m.before is None for m in step.mse)
    assert f"mean test MSE {np.mean(of_type(stream, FederatedRound)[0].mse):.2f} after the step" in step.does


def test_twenty_hospitals_group_the_middle_and_pick_any_of_them(events: Events) -> None:
    state, stream = folded(events, hospitals=20, rounds=2)
    view = view_of(state)
    stages = walk.outline(view)
    assert [s.label for s in stages] == [
        "Keys",
        "Hospital 1",
        "Hospital 2",
        "Hospitals 3–19",
        "Hospital 20",
        "Decrypt",
        "Broadcast",
    ]
    assert len(stages) <= walk.MAX_STAGES
    group = stages[3]
    hops = hops_of(stream, 1)
    truth = next(e for e in of_type(stream, HospitalGradients) if e.round == 1).gradients
    step = walk.step(view, group, pick=10)
    assert step.actor == "Hospital 10" and step.vectors[0][1] == truth[9]
    assert f"Enc(g1 + … + g9): one ciphertext of {len(str(hops[8].ciphertexts[0].value))} digits" in step.does
    assert "holds 9 gradients" in step.learned
    assert walk.step(view, group).actor == "Hospital 3"  # default: the group's first
    assert walk.step(view, group, pick=99).actor == "Hospital 19"  # clamped into the group


def test_three_hospitals_get_a_step_each(events: Events) -> None:
    state, _ = folded(events)
    labels = [s.label for s in walk.outline(view_of(state))]
    assert labels == ["Keys", "Hospital 1", "Hospital 2", "Hospital 3", "Decrypt", "Broadcast"]


def test_per_value_encoding_sends_eleven_ciphertexts_with_the_agreed_exponent(events: Events) -> None:
    state, stream = folded(events, encoding="per-value")
    view = view_of(state)
    hop = hops_of(stream, 1)[0]
    assert len(hop.ciphertexts) == 11
    step = walk.step(view, stage_of(view, "hop", 1))
    assert ("Ciphertexts sent", "11") in step.facts
    assert f"the agreed exponent {hop.ciphertexts[0].exponent}, the same for every value" in step.does
    first = str(hop.ciphertexts[0].value)
    assert f"11 ciphertexts ({hop.nbytes:,} bytes); the first, for age, has {len(first)} digits" in step.does
    keys = walk.step(view, stage_of(view, "keys"))
    assert ("Ciphertexts per message", "11") in keys.facts


def test_two_hospitals_are_told_they_expose_each_other(events: Events) -> None:
    state, _ = folded(events, hospitals=2, rounds=1)
    view = view_of(state)
    first = walk.step(view, stage_of(view, "hop", 1))
    assert "is Hospital 2's gradient, exactly" in first.cannot
    assert "Nothing stays hidden between 2 hospitals" in walk.step(view, stage_of(view, "broadcast")).cannot
    state3, _ = folded(events)
    view3 = view_of(state3)
    assert "exactly" not in walk.step(view3, stage_of(view3, "hop", 1)).cannot


def test_a_shuffled_ring_is_told_in_the_order_it_ran(events: Events) -> None:
    state, stream = folded(events, hospitals=4, shuffle_ring=True, rounds=2)
    for r in (1, 2):
        view = view_of(state, r)
        order = of_type(stream, FederatedRound)[r - 1].order
        names = [f"Hospital {i + 1}" for i in order]
        assert [s.label for s in walk.outline(view)][1:5] == names
        truth = next(e for e in of_type(stream, HospitalGradients) if e.round == r).gradients
        first = walk.step(view, stage_of(view, "hop", 1))
        assert first.actor == names[0] and first.vectors[0][1] == truth[order[0]]


def test_the_ring_picture_stays_small_and_readable_at_78_hospitals(events: Events) -> None:
    state, _ = folded(events, hospitals=78, rounds=1)
    view = view_of(state)
    stages = walk.outline(view)
    picks: list[tuple[walk.Stage, int | None]] = [(s, None) for s in stages]
    picks += [(stages[3], p) for p in (3, 40, 77)]
    for stage, pick in picks:
        step = walk.step(view, stage, pick)
        dot = diagram.ring_dot(view.order, step.focus, view.star)
        boxes = re.findall(r"^(\w+) \[label=\"([^\"]+)\"(.*)\];$", dot, re.MULTILINE)
        assert len(boxes) <= diagram.MAX_BOXES, (stage, pick, dot)
        assert min(int(size) for size in re.findall(r"fontsize=(\d+)", dot)) >= diagram.MIN_FONT_PT
        labels = {label for _, label, _ in boxes}
        assert {"Hospital 1", "Hospital 2", "Hospital 78"} <= labels
        if stage.kind == "hop":
            actor = next(b for b in boxes if b[1] == step.actor)
            assert "penwidth=3" in actor[2]  # the acting hospital is drawn and highlighted
        if pick == 40:
            assert {"Hospitals 3–39", "Hospital 40", "Hospital 41", "Hospitals 42–77"} <= labels
    small = diagram.ring_dot(("Hospital 1", "Hospital 2", "Hospital 3"), walk.Focus())
    assert small.count("[label=") == 4  # three hospitals and the server, nothing grouped


def test_autoplay_advances_once_per_interval_and_stops_at_the_end() -> None:
    assert walk.autoplay(0, 6, elapsed=1.0, interval=5.0) == (0, False)
    assert walk.autoplay(0, 6, elapsed=5.0, interval=5.0) == (1, False)
    assert walk.autoplay(4, 6, elapsed=5.0, interval=5.0) == (5, True)
    assert walk.autoplay(5, 6, elapsed=99.0, interval=5.0) == (5, True)  # never wraps round


# --------------------------------------------------------------------------- who sees what


def cells(rows: tuple[visibility.Row, ...], party: str) -> dict[str, visibility.Cell]:
    row = next(r for r in rows if r.party == party)
    return dict(zip(visibility.COLUMNS, row.cells, strict=True))


def test_with_two_hospitals_each_sees_the_others_gradient_with_three_none_does() -> None:
    two, three = visibility.table(2), visibility.table(3)
    assert [r.party for r in three] == [
        "Hospital 1",
        "Hospital 2",
        "Hospital 3",
        "Server",
        "Eavesdropper on a hop",
    ]
    assert cells(two, "Hospital 1")["others' gradients"].sees is True
    assert "Hospital 2's gradient exactly" in cells(two, "Hospital 1")["others' gradients"].why
    assert cells(two, "Hospital 2")["others' gradients"].sees is True
    for party in ("Hospital 1", "Hospital 2", "Hospital 3"):
        assert cells(three, party)["others' gradients"].sees is False
        assert cells(three, party)["own gradient"].sees is True
    for rows in (two, three):
        assert [cells(rows, r.party)["the private key"].sees for r in rows] == [False] * (len(rows) - 2) + [
            True,
            False,
        ]
        assert all(cells(rows, r.party)["the sum"].sees for r in rows)  # n·ā for everyone who hears it
        assert cells(rows, "Server")["others' gradients"].sees is False


def test_the_table_follows_the_rules_it_is_given() -> None:
    def leaky(members: frozenset[int], with_server: bool, hospitals: int) -> frozenset[int]:
        """A protocol where the key holder reads every hospital's gradient (like the star's)."""
        return (
            frozenset(range(1, hospitals + 1))
            if with_server
            else exposed_hospitals(members, with_server, hospitals)
        )

    server = cells(visibility.table(3, exposed=leaky), "Server")["others' gradients"]
    assert server.sees is True and "Hospital 1 and Hospital 2 and Hospital 3" in server.why
    assert cells(visibility.table(3), "Server")["others' gradients"].sees is False

    def no_broadcast(members: frozenset[int], with_server: bool, hospitals: int) -> frozenset[int]:
        return known_prefixes(members, with_server, hospitals) - {hospitals}

    quiet = visibility.table(3, prefixes=no_broadcast)
    assert not any(cells(quiet, r.party)["the average"].sees for r in quiet)


def test_beyond_five_hospitals_the_middle_is_one_row_checked_for_each() -> None:
    rows = visibility.table(8)
    assert [r.party for r in rows] == [
        "Hospital 1",
        "Hospital k (middle: 2–7)",
        "Hospital 8",
        "Server",
        "Eavesdropper on a hop",
    ]

    def fourth_sees_fifth(members: frozenset[int], with_server: bool, hospitals: int) -> frozenset[int]:
        return frozenset({5}) if members == {4} else frozenset()

    middle = cells(visibility.table(8, exposed=fourth_sees_fifth), "Hospital k (middle: 2–7)")
    assert middle["others' gradients"].sees is None
    assert middle["others' gradients"].why == "Depends on the hospital: yes for Hospital 4."


# --------------------------------------------------------------------------- the glossary

REQUIRED = (
    "Paillier", "ciphertext", "plaintext", "public key", "private key", "homomorphic addition",
    "encoding", "fixed-point", "packed slots", "per-value encoding", "obfuscator",
    "encryption randomness", "DJN", "security bits", "key length", "modulus n", "n²", "gradient",
    "gradient descent", "learning rate", "MSE", "local training", "federated training",
    "warm start", "cold start", "ring", "hop", "coalition", "difference attack", "XᵀX",
    "average gradient (ā)", "differential privacy", "ε", "δ", "clip norm", "noise multiplier",
    "pairwise masks", "shuffled ring", "Flower", "relay", "key holder", "phe",
)  # fmt: skip
"""The terms issue 13 asks the glossary to explain."""

USED_TERMS = (
    "DJN", "packed", "per value", "obfuscator", "phe", "n²", "XᵀX", "ā", "ε", "δ", "Clip norm",
    "noise multiplier", "Pairwise masks", "shuffled", "Flower", "relay", "key holder", "cold start",
    "coalition", "difference attack", "fixed-point", "homomorphic", "modulus", "security",
    "Learning rate", "MSE", "ciphertext", "plaintext", "private key", "gradient descent", "hop",
    "Paillier", "Encoding", "Differential privacy", "Encryption randomness", "Warm start",
    "logistic regression", "log-loss", "accuracy", "label skew", "star", "SecAgg+", "CKKS", "TenSEAL",
)  # fmt: skip
"""Technical words the dashboard writes, as it writes them: each must have a glossary entry."""


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text.replace("e.g.", "eg").replace("flower.ai", "flower-ai")))


def test_the_glossary_explains_every_required_term_in_two_or_three_sentences() -> None:
    missing = [term for term in REQUIRED if glossary.lookup(term) is None]
    assert not missing
    for entry in glossary.ENTRIES:
        assert 2 <= sentences(entry.text) <= 3, entry.term
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry.anchor), entry.anchor
    assert len({e.anchor for e in glossary.ENTRIES}) == len(glossary.ENTRIES)
    words = [w.casefold() for e in glossary.ENTRIES for w in e.words]
    assert len(words) == len(set(words))  # a word leads to one entry only


def test_the_glossary_is_alphabetical_and_searchable() -> None:
    terms = [e.term for e in glossary.entries()]
    assert terms.index("Modulus n") < terms.index("n² (n squared)") < terms.index("Noise multiplier")
    assert terms[-1] == "XᵀX"
    masks = [e.term for e in glossary.search("mask")]
    assert "Pairwise masks" in masks and "Paillier" not in masks
    assert masks == [t for t in terms if t in masks]  # still alphabetical
    assert [e.term for e in glossary.search("MASK")] == masks  # case ignored
    assert "Epsilon (ε)" in [e.term for e in glossary.search("ε")]
    assert glossary.search("no such word") == []
    assert len(glossary.search("  ")) == len(glossary.ENTRIES)


def test_every_used_term_is_explained_and_really_used_by_the_ui() -> None:
    sources = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    ui = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.name != "glossary.py")
    unexplained = [w for w in USED_TERMS if glossary.lookup(w) is None]
    unused = [w for w in USED_TERMS if w.casefold() not in ui.casefold()]
    assert not unexplained, f"add glossary entries (or aliases) for {unexplained}"
    assert not unused, f"the UI no longer writes {unused}: update USED_TERMS"


# --------------------------------------------------------------------------- the pages (AppTest)


@pytest.fixture(autouse=True)
def v2_navigation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around a Streamlit 1.67 AppTest bug (see tests/test_app.py): with a folder named
    `pages/` beside the entry script, AppTest re-runs the page file alone on the second run;
    tell PagesManager the app uses st.navigation only."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def wait(at: AppTest) -> AppTest:
    """Let this session's background run end, then draw the page again."""
    slot = at.session_state["job"] if "job" in at.session_state else None  # noqa: SIM401 (no .get here)
    if slot is not None:
        assert slot.job.join(TIMEOUT), "the run did not end"
        at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="w_key_length").set_value(1024)
    at.text_input(key="w_rounds").set_value("3")
    at.button_group(key="w_pace").set_value("full speed")
    at.run()
    assert not at.exception, at.exception
    return at


def walkthrough_after_a_run(at: AppTest) -> AppTest:
    at.switch_page("pages/walkthrough.py").run()
    assert "No run yet in this session" in texts(at.info)
    next(b for b in at.button if b.label.startswith("Run now")).click().run()
    return wait(at)


def stage(at: AppTest) -> int:
    return int(at.button_group(key="w_walk_stage").value)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_the_walkthrough_walks_every_step_forward_and_back(app: AppTest) -> None:
    walkthrough_after_a_run(app)
    state = app.session_state["last_run"]
    view = view_of(state)
    steps = [walk.step(view, s) for s in walk.outline(view)]
    assert len(app.button_group(key="w_walk_stage").proto.options) == len(steps) == 6
    seen = []
    while True:
        assert not app.exception, app.exception
        seen.append(stage(app))
        current = steps[stage(app)]
        assert current.title in texts(app.subheader)
        assert current.does in texts(app.markdown)
        assert f"**Cannot learn:** {current.cannot}" in texts(app.error)
        assert len(app.get("graphviz_chart")) == 1
        if button(app, "Next").disabled:
            break
        button(app, "Next").click().run()
    assert seen == list(range(len(steps)))
    assert app.dataframe[0].value["Broadcast average ā"].tolist() == list(view.average)
    while not button(app, "Previous").disabled:
        button(app, "Previous").click().run()
        assert not app.exception, app.exception
    assert stage(app) == 0 and "The server makes the key pair" in texts(app.subheader)
    assert "Who sees what" in texts(app.subheader)
    who = app.table[0].value
    assert list(who["party"]) == ["Hospital 1", "Hospital 2", "Hospital 3", "Server", "Eavesdropper on a hop"]
    assert who["the private key"].str.startswith("yes —").tolist() == [False, False, False, True, False]


def test_autoplay_advances_on_its_clock_and_turns_itself_off_at_the_end(app: AppTest) -> None:
    walkthrough_after_a_run(app)
    app.toggle(key="w_walk_play").set_value(True).run()
    assert stage(app) == 0 and app.toggle(key="w_walk_play").value
    app.session_state["walk-advanced"] = 0.0  # the step's time is up
    app.run()
    assert stage(app) == 1
    app.session_state["walk-stage"] = 4
    app.session_state["walk-advanced"] = 0.0
    app.run()  # reaches the last step (6 of 6): autoplay ends there
    assert not app.exception, app.exception
    assert stage(app) == 5 and not app.toggle(key="w_walk_play").value
    app.session_state["walk-advanced"] = 0.0
    app.run()
    assert stage(app) == 5  # stopped: no wrapping round


def test_the_glossary_page_lists_every_term_and_the_search_filters(app: AppTest) -> None:
    app.switch_page("pages/glossary.py").run()
    assert not app.exception, app.exception
    shown = [h.value for h in app.subheader]
    assert shown == [e.term for e in glossary.entries()]
    app.text_input(key="glossary-search").set_value("masks").run()
    assert [h.value for h in app.subheader] == [e.term for e in glossary.search("masks")]
    assert 0 < len(app.subheader) < len(glossary.ENTRIES)
    app.text_input(key="glossary-search").set_value("qwertyuiop").run()
    assert not app.subheader and "No term matches 'qwertyuiop'" in texts(app.info)


@pytest.mark.parametrize("topology", ["ring", "star"])
def test_a_flower_run_is_told_as_its_messages_went(topology: str) -> None:
    """The relay's own events (no observer: sealed hops carry no ciphertext and no hospital's
    gradient is recorded), through the Flower engine's logic without the network."""
    from fedviz.engines.flower.direct import DirectTransport
    from fedviz.engines.flower.relay import Relay

    config = Config(key_length=1024, rounds=1)
    transport = DirectTransport(config)
    stream: list[Event] = []
    try:
        Relay(transport, config, topology, stream.append).run()  # type: ignore[arg-type]
    finally:
        transport.close()
    state = RunState(config)
    for event in stream:
        state.add(event)
    view = view_of(state)
    hops = hops_of(tuple(stream), 1)
    labels = [s.label for s in walk.outline(view)]
    middle = ["Relay"] if topology == "star" else []
    assert labels == ["Keys", "Hospital 1", "Hospital 2", "Hospital 3", *middle, "Decrypt", "Broadcast"]
    steps = [walk.step(view, s) for s in walk.outline(view)]
    first = steps[1]
    assert first.vectors == () and "(this run did not record them)" in first.does
    if topology == "star":
        assert view.star and "acts at the same time as the other 2" in first.does
        assert "sends Enc(g1) to Relay" in first.does
        relay = steps[4]
        assert relay.actor == "Relay" and f"{hops[-1].nbytes:,}" in relay.does
        assert "a curious key holder could decrypt each one" in steps[5].cannot
        assert 'R [label="Relay' in diagram.ring_dot(view.order, relay.focus, star=True)
    else:
        assert not view.star and f"sealed for {hops[0].receiver}" in first.does
        assert ("Ciphertexts sent", "1") in first.facts
    average = next(e for e in stream if isinstance(e, FederatedRound)).average_gradient
    assert steps[-1].vectors == (("Broadcast average ā", average),)
