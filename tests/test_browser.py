"""A real browser (Debian's Chromium via Playwright) against `streamlit run app.py`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser

SAMPLER = """
() => {
  window.__samples = [];
  window.__t0 = performance.now();
  window.__sampler = setInterval(() => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    const fed = plots.find(p => p.layout && p.layout.title && String(p.layout.title.text).includes('Federated training'));
    const n = fed && fed.data && fed.data[0] ? fed.data[0].x.length : -1;
    window.__samples.push([performance.now() - window.__t0, n]);
  }, 5);
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("streamlit did not become healthy: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    yield url
    proc.terminate()
    log = proc.communicate(timeout=20)[0].decode()
    (ARTIFACTS / "streamlit-server.log").write_text(log)
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server)
        page.errors = errors  # type: ignore[attr-defined]
        yield page
        browser.close()


def idle(page: Page, timeout: float = 60_000) -> None:
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout
    )
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


def no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_training_runs_live_and_shows_the_seed_table(page: Page) -> None:
    idle(page)
    expect(page.get_by_role("heading", name="Federated learning on encrypted gradients")).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "1-training-empty.png"), full_page=True)

    page.evaluate(SAMPLER)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("[data-testid='stApp'][data-test-script-state='running']").wait_for(state="attached")
    idle(page)
    expect(page.get_by_text("Results", exact=True)).to_be_visible()
    samples = page.evaluate("() => { clearInterval(window.__sampler); return window.__samples; }")
    seen = sorted({n for _, n in samples if n > 0})
    first = next(t for t, n in samples if n > 0)
    final_at = next(t for t, n in samples if n == 50)
    (ARTIFACTS / "live-timing.json").write_text(
        json.dumps(
            {"first_federated_point_ms": first, "chart_complete_ms": final_at, "distinct_lengths": seen}
        )
    )
    assert len(seen) >= 3 and seen[-1] == 50, seen  # the chart grew in steps, then reached round 50

    metrics = page.get_by_test_id("stMetricValue").all_inner_texts()
    assert "3598.62" in metrics and "3946.78" in metrics and "4181.20" in metrics
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "2-training-results.png"), full_page=True)


def test_stop_interrupts_a_run_and_keeps_the_previous_results(page: Page) -> None:
    page.get_by_test_id("stButtonGroup").get_by_text("slow").click()
    idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_contain_text("Federated training (round", timeout=30_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    idle(page)
    expect(page.get_by_text("The run was stopped during federated training")).to_be_visible()
    expect(page.get_by_text("The previous results are kept.", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3598.62")
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "2b-training-stopped.png"), full_page=True)
    page.get_by_test_id("stButtonGroup").get_by_text("watchable").click()
    idle(page)


def test_ring_page_shows_the_ciphertexts(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
    idle(page)
    expect(page.get_by_role("heading", name="Ring inspector")).to_be_visible()
    expect(page.get_by_test_id("stGraphVizChart")).to_be_visible()
    code = page.get_by_test_id("stCode").first.inner_text()
    digits = "".join(ch for ch in code if ch.isdigit())
    assert len(digits) > 1000  # a 2048-bit key gives ciphertexts modulo n² of ~1233 digits
    expect(page.get_by_text("Round 1, hop 1: Hospital 1 → Hospital 2")).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "3-ring.png"), full_page=True)


def test_privacy_page_explains_with_the_runs_numbers(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text("Privacy").click()
    idle(page)
    expect(page.get_by_text("recovers only the sum of the other 2 gradients")).to_be_visible()
    page.get_by_role("button", name="Run the 2-hospital case").click()
    idle(page)
    expect(page.get_by_text("Exposed: Hospital 2's gradient comes back exactly")).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "4-privacy.png"), full_page=True)


def nudge(page: Page, label: str) -> None:
    """Move a slider one step right with the keyboard, as a user would."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label).first.get_by_role("slider").first
    slider.focus()
    slider.press("ArrowRight")
    idle(page)


def test_privacy_lab_controls_work_in_the_browser(page: Page) -> None:
    expect(page.get_by_text("Exposed in every round: Hospital 1, Hospital 3")).to_be_visible()
    nudge(page, "Federated round")  # difference attack
    page.get_by_test_id("stButtonGroup").get_by_text("Hospital 3", exact=True).click()  # coalition
    idle(page)
    expect(page.get_by_text("Exposed in every round: Hospital 1.", exact=False)).to_be_visible()
    nudge(page, "Start the fit after round")  # aggregate leakage
    patient = page.get_by_test_id("stNumberInput").filter(has_text="Patient of Hospital 1").locator("input")
    patient.fill("5")
    patient.press("Enter")  # one patient
    idle(page)
    expect(patient).to_have_value("5")
    nudge(page, "Gradients of round")  # phe's exponent
    expect(page.get_by_text("phe's default used", exact=False)).to_be_visible()
    no_exception(page)
    page.get_by_text("Summary", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "5-privacy-lab.png"))


def test_another_session_has_its_own_state(page: Page, server: str) -> None:
    other = page.context.browser.new_context().new_page()  # a second visitor
    other.goto(server)
    idle(other)
    expect(other.get_by_text("Press Run to train", exact=False)).to_be_visible()
    expect(other.get_by_test_id("stMetricValue")).to_have_count(0)
    other.context.close()


def test_results_survive_page_switches(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text("Training").click()
    idle(page)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3598.62")
    no_exception(page)
