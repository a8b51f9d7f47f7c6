"""The Runs page through AppTest: every run the dashboard ends is stored, opens back into
every page with the same figures, is labelled, pinned, compared and deleted; a store that
cannot be used is one sentence and the dashboard keeps working."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, TIMEOUT, fast_run, set_pace, sidebar_text, texts, v2_navigation_only  # noqa: F401

from fedviz.config import Config
from fedviz.privacy.attacks import open_hop
from fedviz.privacy.openings import KeptOpenings, keep
from fedviz.store import RunStore
from fedviz.store import db as store_db

pytestmark = pytest.mark.usefixtures("v2_navigation_only")
RUNS = "pages/runs.py"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fresh() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def small(at: AppTest, hospitals: str = "3", rounds: str = "4") -> None:
    at.sidebar.selectbox[0].set_value(1024).run()
    sidebar_text(at, "Hospitals").set_value(hospitals).run()
    sidebar_text(at, "Rounds").set_value(rounds).run()


def to_page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def pick(at: AppTest, run_id: str, other: str | None = None) -> AppTest:
    at.selectbox(key="runs-picked").set_value(run_id).run()
    if other is not None:
        at.selectbox(key="runs-other").set_value(other).run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def test_a_run_is_stored_when_it_ends_and_reopens_with_the_same_figures(home: Path) -> None:
    live = fresh()
    small(live)
    fast_run(live)
    state = live.session_state["last_run"]
    runs = RunStore().list()
    assert [r.id for r in runs] == [state.stored_id] and runs[0].status == "finished"
    live_metrics = metrics(live)
    assert live_metrics

    later = fresh()  # another session: nothing of the live run in its memory
    to_page(later, RUNS)
    assert runs[0].id in texts(later.markdown) or runs[0].id in str(later.dataframe[0].value)
    pick(later, runs[0].id)
    next(b for b in later.button if b.label == "Open in every page").click().run()
    assert not later.exception, later.exception
    opened = later.session_state["last_run"]
    assert opened.opened and opened.server is None and opened.stored_id == runs[0].id
    assert metrics(later) == live_metrics
    assert opened.record.summary() == state.record.summary()
    assert f"Showing stored run {runs[0].id}" in texts(later.info)
    # the sidebar shows the run's settings: they make the same config, so nothing is "stale"
    assert later.session_state["config"] == opened.config
    assert "Settings changed" not in texts(later.info)

    # the lab: the server + Hospital 2 coalition reads Hospital 1 from what was opened then
    for at in (live, later):
        to_page(at, "pages/privacy.py")
    assert "Exposed in every round: **Hospital 1, Hospital 3**" in texts(later.error)
    assert "the server really decrypts, with this run's private key" in texts(live.error)
    assert "the run store kept what it read, never the key" in texts(later.error)
    said = texts(later.error).replace(
        "decrypted, with this run's private key while it ran, the messages its members received; the run "
        "store kept what it read, never the key",
        "really decrypts, with this run's private key, the messages its members received",
    )
    assert said == texts(live.error)
    assert np.array_equal(live.dataframe[0].value.to_numpy(), later.dataframe[0].value.to_numpy())
    # the ring inspector and the walkthrough tell the same round with the same numbers
    for name in ("pages/ring.py", "pages/walkthrough.py"):
        for at in (live, later):
            to_page(at, name)
        same = texts(later.markdown).replace("One round of the stored run", "One round of your last run")
        assert same == texts(live.markdown)
        assert [c.value for c in live.code] == [c.value for c in later.code]


def test_stored_openings_hold_no_key_and_skip_masked_runs(events) -> None:
    from fedviz.engines.inprocess import run
    from fedviz.events import RingHop
    from fedviz.protocol import Server

    servers: list[Server] = []

    def make() -> Server:
        servers.append(Server(1024, "djn"))
        return servers[-1]

    config = Config(key_length=1024, rounds=3, hospitals=4)
    hops = [e for e in run(config, server=make) if isinstance(e, RingHop)]
    kept = keep(servers[0], hops, masked=False)
    assert kept is not None and kept.rounds == [1, 2, 3]
    assert set(kept.values) == {f"{r}/{h}" for r in (1, 2, 3) for h in (1, 2, 3)}  # not the hop to the server
    back = KeptOpenings.from_bytes(kept.to_bytes())
    assert back == kept and back.modulus == servers[0].public.n
    first = next(h for h in hops if h.round == 2 and h.hop == 1)
    assert back.open_hop(first) == open_hop(servers[0], first)
    # the first and the last round always; the rounds between while the work fits the limit
    per_round = (
        sum(len(h.ciphertexts) for h in hops if h.round == 1 and h.receiver != "Server") / 8
    )  # 1024 bits
    assert keep(servers[0], hops, masked=False, limit=0).rounds == [1, 3]  # type: ignore[union-attr]
    assert keep(servers[0], hops, masked=False, limit=2 * per_round).rounds == [1, 3]  # type: ignore[union-attr]
    assert keep(servers[0], hops, masked=False, limit=3 * per_round).rounds == [1, 2, 3]  # type: ignore[union-attr]
    assert keep(servers[0], hops, masked=True) is None and keep(None, hops, masked=False) is None
    secret = servers[0].export_for_own_node()
    raw = zlib.decompress(kept.to_bytes())
    for name in ("p", "q"):
        prime = int.from_bytes(secret[name], "big")
        assert f"{prime:x}".encode() not in raw and str(prime).encode() not in raw


def test_label_pin_compare_and_delete(home: Path) -> None:
    at = fresh()
    small(at, hospitals="3", rounds="3")
    fast_run(at)
    first = at.session_state["last_run"].stored_id
    sidebar_text(at, "Hospitals").set_value("5").run()
    fast_run(at)
    second = at.session_state["last_run"].stored_id
    to_page(at, RUNS)
    pick(at, first)
    at.text_input(key=f"runs-label-{first}").set_value("  for the   board ").run()
    next(b for b in at.button if b.label == "Save the label").click().run()
    next(b for b in at.button if b.label == "Pin").click().run()
    assert not at.exception
    stored = RunStore().info(first)
    assert stored.label == "for the board" and stored.pinned
    listing = at.dataframe[0].value
    assert list(listing["Id"]) == [first, second]  # pinned first
    assert listing["Label"][0] == "for the board" and bool(listing["Pinned"][0])
    name = at.selectbox(key="runs-picked").format_func(first)
    assert name.endswith(f"3 hospitals, 1024-bit keys, 3 rounds, in-process · finished · #{first[-6:]}")
    assert "board" not in name  # a name never changes with the label or the pin: no picker shows a stale one
    assert listing["Remedies"][0] == "none"

    pick(at, first, second)
    assert "Settings: 1 differs (highlighted)" in texts(at.markdown)
    settings = at.table[0].value
    differing = settings[settings["A"] != settings["B"]]
    assert list(differing["Setting"]) == ["Hospitals"] and list(differing["A"]) == ["3"]
    assert "δ" not in list(
        settings["Setting"]
    )  # DP is off: its δ and clip norm are not settings of these runs
    assert "Encryption randomness" in list(settings["Setting"])  # every row shown, none scrolled away
    figures = at.table[1].value.set_index("Figure")
    a, b = RunStore().info(first), RunStore().info(second)
    federated = "Federated MSE (mean of the hospitals; lower is better)"
    assert figures.loc[federated, "A"] == f"{a.mean_federated:.2f}"
    assert figures.loc[federated, "B"] == f"{b.mean_federated:.2f}"
    assert figures.loc["Key length", "A"] == "1024 bits"
    assert "key holder with hospital 2" in figures.loc["Who reads hospital 1's gradient (by the rules)", "B"]
    assert figures.loc["One federated round (encrypt, add, decrypt)", "A"].endswith((" ms", " s"))
    assert figures.loc["… of which pauses for the audience", "A"] == "none"  # full speed
    chart = at.get("plotly_chart")[0].proto.spec
    assert chart.count('"name":"A: federated') == 1 and chart.count('"name":"B: federated') == 1

    pick(at, second)
    next(b for b in at.button if b.label == "Delete it").click().run()
    assert not at.exception
    assert [r.id for r in RunStore().list()] == [first]
    assert at.selectbox(key="runs-picked").value is None
    assert "was deleted" in texts(at.success)


def test_a_stopped_run_is_stored_as_stopped(home: Path) -> None:
    at = fresh()
    set_pace(at, "slow")
    sidebar_text(at, "Rounds").set_value("200").run()
    at.sidebar.selectbox[0].set_value(1024).run()
    next(b for b in at.button if b.label == "Run").click().run()
    slot = at.session_state["job"]
    assert __import__("conftest").wait_until(lambda: slot.state.record.federated, 60)
    next(b for b in at.button if b.label == "Stop").click().run()
    assert slot.job.join(30)
    assert "kept on the **Runs** page as a stopped run" in texts(at.warning)
    runs = RunStore().list()
    assert len(runs) == 1 and runs[0].status == "interrupted"
    done = runs[0].summary["rounds_completed"]["federated"]
    assert 1 <= done < 200
    # opened later, every page draws what it finished (the Training page says it stopped)
    later = fresh()
    to_page(later, RUNS)
    pick(later, runs[0].id)
    assert f"(round {done})" in str(later.dataframe[0].value.iloc[0].to_dict())
    next(b for b in later.button if b.label == "Open in every page").click().run()
    assert not later.exception, later.exception
    assert f"This stored run was stopped after {done} of 200 federated rounds" in texts(later.warning)
    for name in ("pages/ring.py", "pages/privacy.py", "pages/walkthrough.py"):
        to_page(later, name)
    assert f"of the {done} it finished" in texts(later.caption)


def test_a_store_that_cannot_be_used_is_one_sentence_and_runs_go_on(home: Path) -> None:
    home.mkdir(parents=True)
    (home / store_db.DB_NAME).write_bytes(b"not a database, just bytes" * 100)
    at = fresh()
    small(at, rounds="2")
    fast_run(at)
    assert at.session_state["last_run"].record.finished is not None  # the run's results stand
    warned = texts(at.warning)
    assert "This run was not saved to the Runs page:" in warned and "is not a fedviz run store" in warned
    to_page(at, RUNS)
    said = texts(at.error)
    assert "The run store cannot be used:" in said and "move it away to start a new one" in said
    assert "Traceback" not in said


def test_a_newer_store_is_refused_in_words_on_the_page(home: Path) -> None:
    import sqlite3

    home.mkdir(parents=True)
    with sqlite3.connect(home / store_db.DB_NAME) as connection:
        connection.execute(f"PRAGMA application_id = {store_db.APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {store_db.SCHEMA_VERSION + 1}")
        connection.execute("CREATE TABLE runs (id TEXT)")
    at = fresh()
    to_page(at, RUNS)
    assert "written by a newer fedviz" in texts(at.error)


def test_a_version_1_store_is_migrated_and_keeps_its_runs(home: Path, events) -> None:
    import sqlite3

    store = RunStore(home)
    run_id = store.save(events(rounds=2), "finished", label="made by version 1")
    path = home / store_db.DB_NAME
    with sqlite3.connect(path) as connection:  # back to what version 1 wrote
        connection.execute("ALTER TABLE runs DROP COLUMN openings")
        connection.execute("PRAGMA user_version = 1")
    assert store.info(run_id).label == "made by version 1"  # opening migrates it
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == store_db.SCHEMA_VERSION == 2
        assert "openings" in [row[1] for row in connection.execute("PRAGMA table_info(runs)")]
    again = store.load(run_id)
    assert again.openings is None and again.fold().record.finished is not None


def test_a_stored_masked_run_says_why_the_lab_cannot_open_its_hops(home: Path) -> None:
    at = fresh()
    small(at, rounds="2")
    at.sidebar.toggle(key="w_masks").set_value(True).run()
    fast_run(at)
    run_id = at.session_state["last_run"].stored_id
    assert RunStore().load(run_id).openings is None  # masked: nothing opened is kept
    later = fresh()
    to_page(later, RUNS)
    pick(later, run_id)
    next(b for b in later.button if b.label == "Open in every page").click().run()
    to_page(later, "pages/privacy.py")
    said = texts(later.info)
    assert (
        "This stored run cannot measure it again: what a coalition can take off depends on the mask seeds"
        in said
    )
    assert "noise to any coalition short of all the other hospitals" in said
    assert not later.error or "Exposed" not in texts(later.error)


def test_a_reloaded_page_shows_the_stored_run_it_showed(home: Path) -> None:
    at = fresh()
    small(at, rounds="2")
    fast_run(at)
    run_id = at.session_state["last_run"].stored_id
    viewer = fresh()
    to_page(viewer, RUNS)
    pick(viewer, run_id)
    next(b for b in viewer.button if b.label == "Open in every page").click().run()
    assert viewer.query_params["stored"] == run_id
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a new session, the same address
    reloaded.query_params["stored"] = run_id
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["last_run"].stored_id == run_id
    assert f"Showing stored run {run_id}" in texts(reloaded.info)
    gone = AppTest.from_file(APP, default_timeout=TIMEOUT)
    gone.query_params["stored"] = "20200101-000000-abcdef"
    gone.run()
    assert not gone.exception and "cannot be opened: no run" in texts(gone.info)


def test_two_runs_of_the_same_settings_are_told_apart(home: Path) -> None:
    at = fresh()
    small(at, rounds="2")
    fast_run(at)
    first = at.session_state["last_run"].stored_id
    at.sidebar.toggle(key="w_dp").set_value(
        True
    ).run()  # a remedy: the same numbers of hospitals, keys, rounds
    fast_run(at)
    second = at.session_state["last_run"].stored_id
    to_page(at, RUNS)
    picker = at.selectbox(key="runs-picked")
    names = {picker.format_func(i) for i in (first, second)}
    assert len(names) == 2 and any("DP ε=1" in n for n in names)
    for run_id, dp in ((first, False), (second, True), (first, False)):
        pick(at, run_id)  # each pick shows that run, whichever was shown before
        assert at.session_state["runs-picked"] == run_id
        header = next(m.value for m in at.markdown if m.value.startswith("**3 hospitals"))
        assert ("DP ε=1" in header) is dp
    assert RunStore().info(second).config.dp_epsilon == 1.0
    listing = at.dataframe[0].value
    assert list(listing["Remedies"]) == ["DP ε=1", "none"]
