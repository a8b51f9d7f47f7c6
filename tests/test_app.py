"""The dashboard through Streamlit's AppTest: controls, validation, a run, state across pages."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from fedviz.engines.inprocess import preflight

APP = "../app.py"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def v2_navigation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around a Streamlit 1.67 AppTest bug: with a folder named `pages/` beside the entry
    script, AppTest re-runs the page file alone on the second run (the legacy pages-directory
    mode), so the entry script's sidebar disappears. The real server does not do this (the
    browser test checks it); here we tell PagesManager the app uses st.navigation only."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def sidebar_text(at: AppTest, name: str):
    return next(w for w in at.sidebar.text_input if w.label == name)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def run_button(at: AppTest):
    return next(b for b in at.button if b.label == "Run")


def wait(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Let this session's background run end, then draw the page again (as the live
    fragment's rerun would in a browser)."""
    slot = at.session_state["job"] if "job" in at.session_state else None  # noqa: SIM401 (no .get here)
    if slot is None:  # a short run was waited for and taken in by the Run click's own page run
        assert not at.exception, at.exception
        return at
    assert slot.job.join(timeout), "the run did not end"
    at.run()
    assert not at.exception, at.exception
    return at


def set_pace(at: AppTest, pace: str) -> None:
    at.button_group(key="w_pace").set_value(pace).run()


def fast_run(at: AppTest) -> AppTest:
    set_pace(at, "full speed")
    run_button(at).click().run()
    assert not at.exception, at.exception
    return wait(at)


def test_defaults_are_the_posts_and_valid(app: AppTest) -> None:
    assert app.sidebar.selectbox[0].value == 2048
    assert sidebar_text(app, "Hospitals").value == "3"
    assert sidebar_text(app, "Learning rate").value == "0.01"
    assert not app.error and not run_button(app).disabled
    assert "Press **Run**" in texts(app.info)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "Learning rate: 'abc' is not a number — use a finite number greater than 0."),
        ("-0.1", "Learning rate: '-0.1' is not allowed — use a finite number greater than 0."),
        ("1e-400", "Learning rate: '1e-400' is too small to represent (it would become 0)"),
        ("", "Learning rate is empty: enter a finite number greater than 0."),
        ("0.5", "Learning rate 0.5 makes training diverge (federated round 1: the gradients grow beyond"),
    ],
)
def test_a_bad_learning_rate_is_refused_next_to_it(app: AppTest, text: str, message: str) -> None:
    sidebar_text(app, "Learning rate").set_value(text).run()
    errors = [e.value for e in app.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert run_button(app).disabled
    assert "Fix the settings" in texts(app.error)
    assert sidebar_text(app, "Learning rate").value == text  # the user's text stays, never replaced


def test_a_diverging_learning_rate_is_told_what_works(app: AppTest) -> None:
    from fedviz.advice import largest_stable_learning_rate
    from fedviz.config import Config

    sidebar_text(app, "Learning rate").set_value("0.5").run()
    best = largest_stable_learning_rate(Config(learning_rate=0.5))
    assert app.sidebar.error[0].value.endswith(f"Use at most {best:g}.")
    sidebar_text(app, "Learning rate").set_value(f"{best:g}").run()
    assert not app.sidebar.error and not run_button(app).disabled


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("Hospitals", "79", "Hospitals: '79' is not allowed — use a whole number from 2 to 78"),
        ("Hospitals", "1", "Hospitals: '1' is not allowed — use a whole number from 2 to 78"),
        ("Hospitals", "-3", "Hospitals: '-3' is not allowed"),
        ("Hospitals", "", "Hospitals is empty: enter a whole number from 2 to 78"),
        ("Rounds", "0", "Rounds: '0' is not allowed — use a whole number from 1 to 1000"),
        ("Rounds", "1001", "Rounds: '1001' is not allowed"),
        ("Seed", "1e3", "Seed: '1e3' must be written as a whole number — write 1000."),
        ("Seed", "", "Seed is empty: enter a whole number from 0 to 4294967295"),
    ],
)
def test_an_out_of_range_number_is_refused_not_replaced(
    app: AppTest, field: str, text: str, message: str
) -> None:
    sidebar_text(app, field).set_value(text).run()
    errors = [e.value for e in app.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert run_button(app).disabled
    assert sidebar_text(app, field).value == text
    assert app.session_state["config"] is None  # nothing silently used instead
    assert "Expected ≈" not in texts(app.caption)  # no forecast for a run that cannot start


def test_weak_choices_warn_in_the_sidebar(app: AppTest) -> None:
    sidebar_text(app, "Hospitals").set_value("2").run()
    app.sidebar.selectbox[0].set_value(1024).run()
    warnings = texts(app.sidebar.warning)
    assert "2 hospitals are not private" in warnings and "80-bit security" in warnings
    assert not run_button(app).disabled


def test_a_run_fills_the_table_with_the_seed_numbers_and_survives_page_switches(app: AppTest) -> None:
    fast_run(app)
    table = app.dataframe[0].value
    assert [round(v, 2) for v in table["Local MSE"]] == [3933.78, 4176.48, 3795.95]
    assert [round(v, 2) for v in table["Federated MSE"]] == pytest.approx(
        [3695.77, 3855.13, 3598.62], abs=0.011
    )
    metrics = [m.value for m in app.metric]
    # mean of the three hospitals, the best one, pooled over the same 100 rounds in all, the optimum
    assert metrics[:4] == ["3716.51", "3598.62", "3694.66", "4181.20"]
    charts = app.get("plotly_chart")
    assert len(charts) >= 2

    app.switch_page("pages/ring.py").run()
    assert not app.exception
    assert "Round 1, hop 1: Hospital 1 → Hospital 2" in texts(app.subheader)
    ciphertext = app.code[0].value
    assert ciphertext.isdigit() and len(ciphertext) > 1000
    assert [m.value for m in app.metric][:3] == ["Enc(g1)", "1", "512"]
    assert sidebar_text(app, "Hospitals").value == "3"  # controls kept across pages

    app.switch_page("pages/privacy.py").run()
    assert not app.exception
    assert "recovers only the **sum** of the other 2 gradients" in texts(app.success)

    app.switch_page("pages/training.py").run()
    assert [round(v, 2) for v in app.dataframe[0].value["Local MSE"]] == [3933.78, 4176.48, 3795.95]


def test_changing_a_control_marks_results_stale_without_erasing_them(app: AppTest) -> None:
    fast_run(app)
    sidebar_text(app, "Hospitals").set_value("4").run()
    assert "Settings changed since this run" in texts(app.info)
    assert len(app.dataframe[0].value) == 3  # still the 3-hospital results


def test_a_failed_run_says_why_and_keeps_the_previous_results(app: AppTest, monkeypatch) -> None:
    fast_run(app)
    import pages.controls

    monkeypatch.setattr(pages.controls, "preflight", lambda config: None)  # let a diverging run start
    sidebar_text(app, "Learning rate").set_value("5").run()
    run_button(app).click().run()
    wait(app)
    assert "The run stopped: training diverged in federated round 1" in texts(app.error)
    assert "previous results are kept" in texts(app.error)
    assert [round(v, 2) for v in app.dataframe[0].value["Local MSE"]] == [3933.78, 4176.48, 3795.95]


def test_ring_and_privacy_pages_offer_a_run_before_any(app: AppTest) -> None:
    app.switch_page("pages/ring.py").run()
    assert "No run yet in this session" in texts(app.info)
    offer = next(b for b in app.button if b.label.startswith("Run now"))
    offer.click().run()
    wait(app)
    assert app.code[0].value.isdigit()


def test_the_two_hospital_case_is_exact(app: AppTest) -> None:
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    next(b for b in app.button if b.label.startswith("Run the 2-hospital case")).click().run()
    wait(app)
    exposed = texts(app.error)
    assert "Exposed: Hospital 2's gradient comes back exactly" in exposed
    diff = app.dataframe[1].value["difference"].abs().max()
    assert 0 <= diff < 1e-9


def test_preflight_agrees_with_the_engine() -> None:
    from fedviz.config import Config

    assert preflight(Config(key_length=1024)) is None
    problem = preflight(Config(learning_rate=0.05))
    assert problem is not None and problem.phase == "federated" and problem.round == 1


def test_privacy_lab_sections_use_the_runs_numbers(app: AppTest) -> None:
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    assert not app.exception
    heads = texts(app.subheader)
    for title in ("Coalitions", "Leakage from the aggregate", "one patient", "phe's exponent", "Summary"):
        assert title in heads
    assert "Exposed in every round: **Hospital 1, Hospital 3**" in texts(app.error)
    coalition = next(d for d in app.dataframe if "recovered by the coalition" in d.value.columns)
    assert coalition.value["difference"].abs().max() < 1e-9
    metrics = {m.label: m.value for m in app.metric}
    rank = int(metrics["Rank after all rounds"].split()[0])
    assert 4 <= rank < 12
    assert float(metrics["Error of A"].rstrip(" %")) < 5
    patient = next(d for d in app.dataframe if "recovered from the gradient" in d.value.columns)
    assert patient.value["difference"].abs().max() < 1e-9

    app.session_state["lab-coalition"] = ["Hospital 1"]
    app.text_input(key="lab-patient").set_value("7")
    app.run()
    assert not app.exception
    assert "This coalition recovers no other hospital's gradient" in texts(app.success)
    patient = next(d for d in app.dataframe if "recovered from the gradient" in d.value.columns)
    from fedviz.data import split

    assert patient.value["true record"].iloc[0] == split(3, 42).hospital_X[0][7][0]
    assert patient.value["difference"].abs().max() < 1e-9


def test_ring_page_shows_one_ciphertext_per_value_with_the_agreed_exponent(app: AppTest) -> None:
    app.selectbox(key="w_encoding").set_value("per-value")
    app.selectbox(key="w_key_length").set_value(1024)
    app.run()
    fast_run(app)
    app.switch_page("pages/ring.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["holds"])[:3] == ["age", "sex", "bmi"] and len(table) == 11
    assert set(table["exponent"]) == {-14}
    assert [m.value for m in app.metric][:3] == ["Enc(g1)", "11", "2,816"]  # 11 x 256 bytes
    assert "Per value" in texts(app.markdown)


def test_a_one_round_run_draws_every_page(app: AppTest) -> None:
    app.text_input(key="w_rounds").set_value("1")
    app.selectbox(key="w_key_length").set_value(1024)
    app.run()
    fast_run(app)
    assert len(app.dataframe[0].value) == 3
    for page in ("pages/ring.py", "pages/privacy.py"):
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)


def test_the_largest_ring_draws_every_page(app: AppTest) -> None:
    app.text_input(key="w_hospitals").set_value("78")
    app.text_input(key="w_rounds").set_value("3")
    app.selectbox(key="w_key_length").set_value(1024)
    app.run()
    fast_run(app)
    assert list(app.dataframe[0].value["Patients"]) == [5] * 78
    for page in ("pages/ring.py", "pages/privacy.py"):
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)


def job_of(at: AppTest):
    return at.session_state["job"].job


def test_a_run_survives_page_switches_and_shows_progress_everywhere(app: AppTest) -> None:
    set_pace(app, "slow")
    run_button(app).click().run()
    job = job_of(app)
    app.switch_page("pages/ring.py").run()
    assert not app.exception
    assert not job.done  # leaving the page did not end the run
    assert "A run is in progress" in texts(app.info)
    bars = app.get("progress")
    assert bars and any(b.proto.text.startswith(("Local", "Key", "Federated", "Setup")) for b in bars)
    assert any(b.label == "Stop" for b in app.button)
    app.switch_page("pages/privacy.py").run()
    assert not job.done
    wait(app)
    assert job.status == "finished"
    assert "recovers only the **sum** of the other 2 gradients" in texts(app.success)
    app.switch_page("pages/training.py").run()
    assert [round(v, 2) for v in app.dataframe[0].value["Local MSE"]] == [3933.78, 4176.48, 3795.95]


def test_stop_cancels_the_run_and_keeps_the_previous_results(app: AppTest) -> None:
    fast_run(app)
    set_pace(app, "slow")
    run_button(app).click().run()
    job = job_of(app)
    next(b for b in app.button if b.label == "Stop").click().run()
    assert job.done and job.status == "cancelled" and job.worker_pids() == []
    warnings = texts(app.warning)
    assert (
        "The run was stopped (Stop was pressed)" in warnings and "The previous results are kept." in warnings
    )
    assert app.metric[0].value == "3716.51"  # the mean of the seed table's federated MSEs


def test_changing_a_setting_cancels_the_run_in_flight(app: AppTest) -> None:
    set_pace(app, "slow")
    run_button(app).click().run()
    job = job_of(app)
    sidebar_text(app, "Rounds").set_value("20").run()
    assert job.done and job.status == "cancelled"
    assert "The run was stopped (a setting changed)" in texts(app.warning)
    assert sidebar_text(app, "Rounds").value == "20"


def test_changing_the_pace_does_not_cancel_but_retimes_the_run(app: AppTest) -> None:
    set_pace(app, "slow")
    run_button(app).click().run()
    job = job_of(app)
    set_pace(app, "full speed")
    assert job.pause == 0.0
    wait(app)
    assert job.status == "finished"


def test_a_long_run_asks_first(app: AppTest, monkeypatch) -> None:
    import pages.common

    monkeypatch.setattr(pages.common, "estimate_seconds", lambda config, others=0: 1100.0)
    app.run()
    assert run_button(app).disabled
    assert "expected to take about **18 min**" in texts(app.warning)
    app.checkbox(key="confirm-training").check().run()
    assert not run_button(app).disabled


# ------------------------------------------------- settings survive what the browser forgets


def browser_report(at: AppTest):
    """What a browser that rebuilt its widgets from this run's messages reports next: a
    widget's value when the run sent it (`set_value`), else the widget's built-in default."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

    states = WidgetStates()
    for box in at.text_input:
        p = box.proto
        states.widgets.append(WidgetState(id=p.id, string_value=p.value if p.set_value else p.default))
    for group in at.get("button_group"):
        p, state = group.proto, WidgetState(id=group.proto.id)
        shown = list(p.raw_values) if p.set_value else [p.options[i].content for i in p.default]
        state.string_array_value.data[:] = shown
        states.widgets.append(state)
    return states


def test_settings_survive_a_page_switch_that_drops_the_widgets(app: AppTest) -> None:
    """The cause of 'Learning rate empty, no pace' under load: a sidebar page switch sends no
    widget states and the browser drops its widgets; the next click reports their defaults."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    app._run(WidgetStates())  # the nav click: nothing reported, widgets rebuilt from this run
    app._run(browser_report(app))  # the Run click: what the rebuilt widgets show
    assert not app.exception
    assert sidebar_text(app, "Learning rate").value == "0.01"
    assert sidebar_text(app, "Hospitals").value == "3"
    assert app.button_group(key="w_pace").value == "watchable"
    assert app.session_state["settings"]["learning_rate"] == "0.01"
    assert not run_button(app).disabled


def test_settings_survive_a_run_cut_short_before_its_values_were_sent() -> None:
    """A click during a run stops it at its next message (fast reruns): the one message
    carrying a widget's value may never leave. The next run must send it again."""
    from unittest import mock

    from streamlit.proto.WidgetStates_pb2 import WidgetStates
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    original, stopped = LocalScriptRunner._enqueue_forward_msg, []

    def enqueue(self, msg):  # type: ignore[no-untyped-def]
        if not stopped and msg.delta.new_element.WhichOneof("type") == "text_input":
            stopped.append(True)
            raise StopException()
        return original(self, msg)

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    with mock.patch.object(LocalScriptRunner, "_enqueue_forward_msg", enqueue):
        at.run()
    assert stopped
    at._run(WidgetStates())
    at._run(browser_report(at))
    assert not at.exception
    assert at.session_state["settings"]["key_length"] == 2048
    assert at.session_state["settings"]["hospitals"] == "3"
    assert sidebar_text(at, "Hospitals").value == "3"
    assert not run_button(at).disabled


def test_remedy_controls_refuse_bad_values_and_a_dp_run_says_its_budget(app: AppTest) -> None:
    app.toggle(key="w_dp").set_value(True).run()
    assert not app.exception
    epsilon = next(w for w in app.sidebar.text_input if w.label == "Privacy budget ε")
    epsilon.set_value("0").run()
    assert "Privacy budget ε" in texts(app.sidebar.error) and run_button(app).proto.disabled
    epsilon.set_value("2").run()
    app.toggle(key="w_masks").set_value(True).run()
    assert not app.sidebar.error
    assert app.session_state["config"].warm_start is False  # DP starts from zero
    fast_run(app)
    info = texts(app.info)
    assert "Differential privacy** ε = 2" in info and "Pairwise masks" in info
    record = app.session_state["last_run"].record
    assert record.budget is not None and record.budget.epsilon == 2.0 and record.masks is not None


def test_shuffling_is_refused_next_to_it_on_flower(app: AppTest) -> None:
    app.toggle(key="w_shuffle_ring").set_value(True).run()
    app.selectbox(key="w_engine").set_value("Flower ring").run()
    assert "in-process only" in texts(app.sidebar.error)
    assert app.session_state["config"] is None


def test_the_remedies_section_measures_every_cell(app: AppTest) -> None:
    app.text_input(key="w_rounds").set_value("12").run()
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    assert not app.exception
    next(b for b in app.button if b.label.startswith("Measure the remedies")).click().run()
    assert not app.exception, app.exception
    tables = [t.value for t in app.table]
    threats = next(t for t in tables if "masks" in t.columns and "none" in t.columns)
    first = threats.iloc[0]  # server + hospital 2 decrypt hop 1
    assert first["none"].startswith("recovered") and first["masks"].startswith("fails: masked")
    assert threats.iloc[1]["DP ε=1"].startswith("noise only")
    coalitions = next(t for t in tables if "error with masks" in t.columns)
    assert list(coalitions["with masks"]) == ["fails", "still recovers", "still recovers", "still recovers"]
    shuffle = next(t for t in tables if "rounds exposed, shuffled ring" in t.columns)
    # in a ring of 3, server + hospital 2 expose hospitals 1 and 3 in every round; shuffled, only
    # in the rounds where hospital 2 sits in the middle
    assert list(shuffle["rounds exposed, fixed ring"]) == [12, 12]
    shuffled = list(shuffle["rounds exposed, shuffled ring"])
    assert shuffled[0] == shuffled[1] < 12
    assert any("Utility curve" in str(c.proto.spec) for c in app.get("plotly_chart"))
    # the table is kept with the stored run, and a stored run opened later shows it as measured
    from fedviz.store import RunStore

    stored = RunStore().load(app.session_state["last_run"].stored_id)
    assert stored.remedies is not None
    assert [r["none"] for r in stored.remedies] == list(threats["none"])


def test_breast_cancer_switches_to_logistic_and_reports_accuracy(app: AppTest) -> None:
    app.selectbox(key="w_dataset").set_value("breast-cancer").run()
    assert app.session_state["settings"]["model"] == "logistic"
    app.selectbox(key="w_split").set_value("label-skew").run()
    app.text_input(key="w_split_alpha").set_value("0").run()
    assert "Skew α" in texts(app.sidebar.error)
    app.text_input(key="w_split_alpha").set_value("0.3").run()
    app.text_input(key="w_rounds").set_value("10").run()
    assert not app.sidebar.error, texts(app.sidebar.error)
    fast_run(app)
    labels = [m.label for m in app.metric]
    assert "Federated test log-loss, mean of 3 hospitals" in labels and "Best federated accuracy" in labels
    table = next(d for d in app.dataframe if "Fed. acc. %" in d.value.columns).value
    assert len(table) == 3 and set(table["Effect"]) <= {"better", "worse", "no change"}
    assert "Improvement" not in table.columns  # nine columns did not fit a projector
    assert "label skew" in texts(app.markdown).lower() or "Dirichlet" in texts(app.markdown)


def test_an_impossible_split_is_refused_next_to_the_data(app: AppTest) -> None:
    app.selectbox(key="w_split").set_value("label-skew").run()
    assert "needs a two-valued target" in texts(app.sidebar.error)
    app.selectbox(key="w_split").set_value("by-feature").run()
    app.selectbox(key="w_split_feature").set_value("bmi").run()
    assert not app.sidebar.error
    app.selectbox(key="w_dataset").set_value("breast-cancer").run()
    app.selectbox(key="w_engine").set_value("Flower ring").run()
    assert "Flower engine runs the post's diabetes data" in texts(app.sidebar.error)


def test_coalition_presets_and_the_whole_ring(app: AppTest) -> None:
    app.text_input(key="w_hospitals").set_value("5").run()
    fast_run(app)
    app.switch_page("pages/privacy.py").run()
    next(b for b in app.button if b.label == "Server + Hospital 2's neighbours").click().run()
    assert app.session_state["lab-coalition"] == ["Server", "Hospital 1", "Hospital 3"]
    assert "Exposed in every round: **Hospital 2**" in texts(app.error)
    next(b for b in app.button if b.label == "All hospitals but Hospital 1").click().run()
    assert "Exposed in every round: **Hospital 1**" in texts(app.error)
    app.session_state["lab-coalition"] = [f"Hospital {k}" for k in range(1, 6)]
    app.run()
    assert "Every hospital is in this coalition" in texts(app.info)
    made_up = next(d for d in app.dataframe if "true sum of the others" in d.value.columns).value
    made = made_up["made-up sum (= what Hospital 1 recovers)"]
    assert (made_up["true sum of the others"] - made).abs().max() < 1e-9
    assert (made_up["true g2"] - made_up["other g2"]).abs().max() > 1  # the split itself differs
