"""What first-time visitors hit (issue 18): crashes, a control that refused its own default,
and sentences that the numbers beside them contradicted. Each test drives the dashboard
through AppTest the way the visitor did, and checks the words against the run's numbers."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app import TIMEOUT, fast_run, texts, v2_navigation_only  # noqa: F401  (the fixture)


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def small(at: AppTest, **settings: str) -> None:
    at.selectbox(key="w_key_length").set_value(1024)
    for name, value in {"rounds": "5", **settings}.items():
        at.text_input(key=f"w_{name}").set_value(value)
    at.run()


def test_privacy_after_a_run_whose_key_stayed_with_the_key_holder(app: AppTest) -> None:
    """A Flower run leaves no key in the session (the key holder's node kept it): the default
    coalition, server + hospital 2, needs one. It used to crash (IndexError at `exact[0]`)."""
    small(app)
    fast_run(app)
    app.session_state["last_run"].server = None  # what a Flower run leaves in the session
    app.switch_page("pages/privacy.py").run()
    assert not app.exception, app.exception
    said = texts(app.info)
    assert "would read Hospital 1, Hospital 3" in said and "key holder's own process" in said
    assert "Exposed in every round: ****" not in texts(app.error)
    heads = texts(app.subheader)
    assert "Leakage from the aggregate" in heads and "Summary" in heads  # the rest of the page is drawn
    dot = app.get("graphviz_chart")[0].proto.spec
    assert "(exposed)" not in dot  # nothing is drawn as exposed that the page did not show


def test_a_masked_run_draws_no_one_exposed_that_the_masks_hide(app: AppTest) -> None:
    app.toggle(key="w_masks").set_value(True)
    small(app)
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    assert not app.exception, app.exception
    assert "lands off by up to" in texts(app.success) and "masks of pairs" in texts(app.success)
    dot = app.get("graphviz_chart")[0].proto.spec
    assert "Hospital 1\\n(masked)" in dot and "Hospital 3\\n(masked)" in dot and "(exposed)" not in dot


def test_a_dp_run_says_the_recovered_sum_is_what_was_sent_noise_and_all(app: AppTest) -> None:
    import re

    app.toggle(key="w_dp").set_value(True).run()
    small(app)
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    assert not app.exception, app.exception
    said = texts(app.success)
    # the sentence gives both figures: the sum of what was sent (exact) and the true sum (noise)
    match = re.search(
        r"noise included \(to ([0-9.e+-]+)\); that sum is off their true gradients by up to ([0-9.e+-]+)",
        said,
    )
    assert match, said
    assert float(match.group(1)) < 1e-6 < 1.0 < float(match.group(2))
    state = app.session_state["last_run"]
    from fedviz.privacy.attacks import difference_errors

    chart = difference_errors(state.observations)
    assert chart[0] == pytest.approx(float(match.group(2)), rel=0.05)  # the chart shows that noise
    dot = app.get("graphviz_chart")[0].proto.spec
    assert "(noisy)" in dot and "(exposed)" not in dot


@pytest.mark.parametrize(("dataset", "first"), [("diabetes", "age"), ("breast-cancer", "mean radius")])
def test_sorting_by_a_feature_accepts_the_feature_it_shows(app: AppTest, dataset: str, first: str) -> None:
    app.selectbox(key="w_dataset").set_value(dataset).run()
    app.selectbox(key="w_split").set_value("by-feature").run()
    assert app.selectbox(key="w_split_feature").value == first
    assert not app.sidebar.error, [e.value for e in app.sidebar.error]
    assert app.session_state["config"].split_feature == first


def metric(at: AppTest, start: str):
    return next(m for m in at.metric if m.label.startswith(start))


def test_a_dp_run_names_its_noise_and_no_best_hospital_in_a_tie(app: AppTest) -> None:
    """Under DP the federated phase starts from zero: every hospital ends with the same score,
    the curves coincide, warm start shows off, and a worse result is blamed on the noise."""
    app.toggle(key="w_dp").set_value(True).run()
    app.text_input(key="w_dp_epsilon").set_value("0.1").run()
    small(app, rounds="50")
    assert app.toggle(key="w_warm_start_dp").value is False  # shown as it is used: off under DP
    intro = app.markdown[0].value
    assert "lie on top of each other" in intro and "stay apart" not in intro
    fast_run(app)
    assert not app.exception, app.exception
    scores = app.session_state["last_run"].record.finished.federated_mse
    assert max(scores) - min(scores) < 1e-9  # the tie is real
    labels = [m.label for m in app.metric]
    assert "Every hospital after federation (3 tied)" in labels
    assert not any(label.startswith("Best hospital after federation (Hospital") for label in labels)
    warned = texts(app.warning)  # at ε 0.1 the noise makes every hospital worse (MSE 5000-20000)
    assert "Federation made 3 of 3 hospitals worse" in warned
    assert "differential privacy's noise" in warned and "varies from run to run" in warned
    assert "happened to suit the test patients" not in warned


def test_differences_below_the_last_digit_are_no_change(app: AppTest, tmp_path) -> None:
    """A CSV whose target is an exact linear function: each hospital's local model already fits,
    federation moves nothing visible. No 'better', no green -0.00, and a reason."""
    import numpy as np

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    path = tmp_path / "exact.csv"
    path.write_text("a,b,c,y\n" + "\n".join(",".join(f"{v:.17g}" for v in (*x, t)) for x, t in zip(X, y)))
    app.selectbox(key="w_dataset").set_value("csv").run()
    settings = app.session_state["settings"]
    settings.update(
        data_path=str(path), upload_name="exact.csv", csv_columns=("a", "b", "c", "y"), target="y"
    )
    small(app, rounds="1000", learning_rate="0.01")
    fast_run(app)
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert set(table["Federation made it"]) == {"no change"}, table
    assert (table["Improvement"] == 0).all()
    assert "no change" in metric(app, "Federated test MSE").delta
    assert "Federation changed no hospital's test MSE" in texts(app.info)
    assert not app.warning or "worse" not in texts(app.warning)


@pytest.mark.parametrize("hospitals", [2, 3, 5])
@pytest.mark.parametrize("remedy", [{}, {"masks": "pairwise"}, {"dp_epsilon": 1.0, "warm_start": False}])
def test_every_walkthrough_step_agrees_with_who_sees_what(events, hospitals: int, remedy: dict) -> None:
    """A hospital's step may say nobody else sees its gradient only if no row of the
    who-sees-what table (the same rules) recovers it; the parties that do are named."""
    from test_story import folded, view_of

    from fedviz.story import visibility
    from fedviz.story import walkthrough as walk

    state, _ = folded(events, hospitals=hospitals, rounds=1, **remedy)
    view = view_of(state)
    rows = visibility.table(hospitals, noisy="dp_epsilon" in remedy)
    others = visibility.COLUMNS.index("others' gradients")
    for stage in walk.outline(view):
        step = walk.step(view, stage)
        if stage.kind != "hop":
            continue
        readers = [
            r.party for r in rows if r.party != step.actor and f"{step.actor}'s" in r.cells[others].why
        ]
        if readers:
            assert "nobody else" not in step.learned and "no other party" not in step.learned
            assert all(reader in step.learned + step.cannot for reader in readers), (step.learned, readers)
        elif stage.first == 1:
            assert "no other party on its own ever sees it" in step.learned
    decrypt = walk.step(view, next(s for s in walk.outline(view) if s.kind == "decrypt"))
    if "masks" in remedy:
        assert (
            "would decrypt to noise" in decrypt.cannot
            and "it could decrypt that partial sum" not in decrypt.cannot
        )
    else:
        assert "it could decrypt that partial sum" in decrypt.cannot
    assert ("noise" in decrypt.learned) == ("dp_epsilon" in remedy)


def test_the_remedies_table_says_beside_its_mse_why_it_differs_from_the_run(app: AppTest) -> None:
    small(app, rounds="8")
    fast_run(app)
    headline = metric(app, "Federated test MSE").value
    app.switch_page("pages/privacy.py").run()
    next(b for b in app.button if b.label.startswith("Measure the remedies")).click().run()
    assert not app.exception, app.exception
    threats = next(t for t in (e.value for e in app.table) if "masks" in t.columns and "none" in t.columns)
    label = next(v for v in threats[""] if str(v).startswith("cost: test MSE"))
    assert "8 federated rounds from zero weights" in label
    assert f"your run continued from local models and ended at {headline}" in label


def test_forecasts_count_what_a_run_really_does() -> None:
    """The forecast counts a data set's real width (breast cancer: 31 values, 2 packed
    ciphertexts a message, not the diabetes data's 1), the standardisation through the ring,
    and the runs already sharing the cores."""
    from fedviz.config import Config
    from fedviz.report import estimate

    plain = Config()
    cancer = Config(dataset="breast-cancer", model="logistic")
    obf, dec = estimate.operation_costs(2048, "djn")
    assert estimate.planned_dims(cancer) == 30 and estimate.planned_dims(plain) == 10
    assert estimate.setup_seconds(plain) == 0.0
    assert estimate.setup_seconds(cancer) >= 61 * (3 * obf + 2 * dec) + estimate.LOGISTIC_FIT_S
    # two ciphertexts per message: the per-round decryption alone is twice the diabetes run's
    assert estimate.estimate_seconds(cancer) - estimate.setup_seconds(cancer) >= 50 * 2 * dec
    assert estimate.estimate_seconds(plain, others=2) == pytest.approx(3 * estimate.estimate_seconds(plain))


def test_a_calibration_scales_by_the_median_of_recent_runs() -> None:
    from fedviz.report.estimate import Calibration

    c = Calibration(keep=5, least=3)
    c.record(1.0, 3.0)
    c.record(1.0, 2.0)
    assert c.factor() == 1.0  # too few runs to know
    c.record(1.0, 5.0)
    assert c.factor() == 3.0
    c.record(0.01, 100.0)  # too short a forecast to learn from
    assert c.factor() == 3.0
    for _ in range(5):
        c.record(1.0, 100.0)
    assert c.factor() == 10.0  # never more than tenfold


def test_the_run_time_adds_up_and_the_next_forecast_learns_from_it(app: AppTest) -> None:
    import re

    from pages import session

    app.text_input(key="w_rounds").set_value("20")  # 2048 bits: a forecast long enough to learn from
    app.button_group(key="w_pace").set_value("slow").run()
    before = session.calibration("inprocess")._ratios.copy()
    next(b for b in app.button if b.label == "Run").click().run()
    app.session_state["job"].job.join(60)
    app.run()
    assert not app.exception, app.exception
    assert len(session.calibration("inprocess")._ratios) == len(before) + 1
    help_text = metric(app, "Run time").help
    total, *parts = (float(x) for x in re.findall(r"([0-9.]+) s", help_text))
    assert "pauses for the audience" in help_text
    assert sum(parts) == pytest.approx(total, abs=0.02), help_text
    pauses = float(re.search(r"pauses for the audience ([0-9.]+) s", help_text).group(1))
    assert pauses >= 20 * 0.15  # 20 rounds of the slow pace's pause


def test_a_busy_server_says_so_and_forecasts_longer(app: AppTest) -> None:
    other = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    other.run()
    other.button_group(key="w_pace").set_value("slow").run()
    quiet = next(c.value for c in app.caption if c.value.startswith("Expected"))
    next(b for b in other.button if b.label == "Run").click().run()
    try:
        app.run()
        busy = next(c.value for c in app.caption if c.value.startswith("Expected"))
        assert "1 other run in flight on this server share its cores" in busy
        assert "other run" not in quiet
    finally:
        other.session_state["job"].job.cancel("the test ended")
        other.session_state["job"].job.join(10)


def test_a_reloaded_page_takes_over_the_run_in_its_url(app: AppTest) -> None:
    """Reloading mid-run: the new session finds the run by `?run=`, with its settings,
    progress and Stop; the run was never stopped."""
    app.text_input(key="w_hospitals").set_value("5").run()
    app.button_group(key="w_pace").set_value("slow").run()
    next(b for b in app.button if b.label == "Run").click().run()
    slot = app.session_state["job"]
    assert app.query_params["run"] in (slot.run_id, [slot.run_id])
    reloaded = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    reloaded.query_params["run"] = slot.run_id
    reloaded.run()
    try:
        assert not reloaded.exception, reloaded.exception
        assert reloaded.session_state["job"] is slot and not slot.job.done
        assert reloaded.text_input(key="w_hospitals").value == "5"  # the run's settings, not defaults
        assert any(b.label == "Stop" for b in reloaded.button)
        next(b for b in reloaded.button if b.label == "Stop").click().run()
        assert slot.job.done and slot.job.status == "cancelled" and slot.job.worker_pids() == []
        assert "The run was stopped (Stop was pressed)" in texts(reloaded.warning)
        assert "run" not in reloaded.query_params
    finally:
        slot.job.cancel("the test ended")


def test_a_run_whose_page_is_gone_stops_within_seconds(app: AppTest, monkeypatch) -> None:
    from pages import session

    app.button_group(key="w_pace").set_value("slow").run()
    next(b for b in app.button if b.label == "Run").click().run()
    job = app.session_state["job"].job
    monkeypatch.setattr(session, "_connected", lambda session_id: False)  # the tab was closed
    from conftest import wait_until

    started = __import__("time").monotonic()
    assert wait_until(lambda: job.done, session.RECONNECT_GRACE_S + 5)
    assert __import__("time").monotonic() - started < 10
    assert job.status == "cancelled" and "page was closed" in job.reason
    reloaded = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    reloaded.query_params["run"] = app.session_state["job"].run_id
    reloaded.run()
    assert "The run was stopped (its page was closed and not reopened within 5 s)" in texts(reloaded.warning)


def test_the_cli_refuses_a_constant_target_in_one_line(tmp_path) -> None:
    import io

    from fedviz.cli import main

    path = tmp_path / "constant_target.csv"
    path.write_text("age,bmi,y\n" + "".join(f"{20 + i % 50},{18 + i % 17},5\n" for i in range(400)))
    out, err = io.StringIO(), io.StringIO()
    assert main(["--data", str(path), "--target", "y", "--key-length", "1024"], out, err) == 2
    assert err.getvalue().splitlines() == [
        "error: the target 'y' of constant_target.csv has the same value (5) in every row: there is nothing "
        "to learn; choose another target"
    ]
    assert out.getvalue() == ""


def test_during_its_own_run_the_page_neither_counts_it_as_another_nor_offers_run(app: AppTest) -> None:
    """A second visitor pass: the session's own run was counted as 'another run' (doubling the
    forecast and asking to confirm again), and Run stayed clickable (a double click restarted)."""
    app.button_group(key="w_pace").set_value("slow").run()
    next(b for b in app.button if b.label == "Run").click().run()
    try:
        app.button_group(key="w_pace").set_value("watchable").run()
        caption = next(c.value for c in app.caption if c.value.startswith("Expected"))
        assert "other run" not in caption
        assert next(b for b in app.button if b.label == "Run").disabled
    finally:
        app.session_state["job"].job.cancel("the test ended")


def test_a_reloaded_page_shows_the_pace_the_run_has_now(app: AppTest) -> None:
    app.button_group(key="w_pace").set_value("slow").run()
    next(b for b in app.button if b.label == "Run").click().run()
    slot = app.session_state["job"]
    app.button_group(key="w_pace").set_value("watchable").run()  # changed mid-run
    reloaded = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    reloaded.query_params["run"] = slot.run_id
    reloaded.run()
    try:
        assert reloaded.button_group(key="w_pace").value == "watchable"
        assert slot.job.pause == 0.02
    finally:
        slot.job.cancel("the test ended")


def test_a_passed_over_last_column_is_explained() -> None:
    from fedviz.data.sources import inspect_csv
    from pages.controls import _why_not_last

    data = b"age,sex,progression\n" + b"".join(f"{20 + i % 50},{i % 2},100\n".encode() for i in range(40))
    preview = inspect_csv(data, "const_target.csv")
    note = _why_not_last(data, "const_target.csv", preview, "sex")
    assert note is not None and note.startswith("The last column, 'progression', cannot be the target:")
    assert "same value (100) in every row" in note and "The target is set to 'sex' instead" in note
    assert _why_not_last(data, "const_target.csv", preview, "progression") is None


def test_words_the_second_pass_caught(app: AppTest) -> None:
    small(app, hospitals="2")
    app.toggle(key="w_masks").set_value(True).run()
    fast_run(app)
    said = texts(app.info)
    assert "1 agreed pair seed:" in said and "With 2 hospitals they cannot help" in said
    app.text_input(key="w_hospitals").set_value("3").run()
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    assert "3·ā − g₁ = g₂ + g₃" in texts(app.markdown)
