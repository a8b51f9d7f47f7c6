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
from playwright.sync_api import Browser, Page, expect, sync_playwright

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


SERVERS: dict[str, int] = {}
"""url -> pid of the streamlit server behind it."""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the fork server, pool workers, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the given processes so far (clock ticks)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


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
    SERVERS[url] = proc.pid
    yield url
    family = descendants(proc.pid)
    proc.terminate()
    log = proc.communicate(timeout=20)[0].decode()
    (ARTIFACTS / "streamlit-server.log").write_text(log)
    assert "Traceback" not in log, log[-3000:]
    assert wait_until(lambda: not [pid for pid in family if alive(pid)], 15), "processes left running"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


def visit(browser: Browser, url: str, width: int = 1440, height: int = 1000) -> Page:
    """A new visitor (its own browser context, so its own Streamlit session)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((url, "data:", "blob:", "about:"))
            else None
        ),
    )
    page.goto(url)
    page.errors = errors  # type: ignore[attr-defined]
    page.outside = outside  # type: ignore[attr-defined]
    return page


@pytest.fixture(scope="module")
def page(browser: Browser, server: str) -> Iterator[Page]:
    page = visit(browser, server)
    yield page
    page.context.close()


def idle(page: Page, timeout: float = 60_000) -> None:
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout
    )
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


def no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    assert not page.outside, page.outside  # type: ignore[attr-defined]  # every asset served locally


def test_training_runs_live_and_shows_the_seed_table(page: Page) -> None:
    idle(page)
    expect(page.get_by_role("heading", name="Federated learning on encrypted gradients")).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "1-training-empty.png"), full_page=True)

    page.evaluate(SAMPLER)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("Results", exact=True)).to_be_visible(timeout=60_000)
    idle(page)
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


def pace(page: Page, name: str) -> None:
    page.get_by_test_id("stButtonGroup").get_by_text(name, exact=True).click()
    idle(page)


def test_stop_interrupts_a_run_and_keeps_the_previous_results(page: Page) -> None:
    pace(page, "slow")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_contain_text("Federated training (round", timeout=30_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(
        page.get_by_text("The run was stopped (Stop was pressed) during federated training")
    ).to_be_visible()
    idle(page)
    expect(page.get_by_text("The previous results are kept.", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3598.62")
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "2b-training-stopped.png"), full_page=True)
    pace(page, "watchable")


def test_a_run_survives_a_page_switch(page: Page) -> None:
    pace(page, "slow")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_contain_text("Federated training (round", timeout=30_000)
    page.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
    expect(page.get_by_role("heading", name="Ring inspector")).to_be_visible()
    banner = page.get_by_test_id("stProgress")
    expect(banner).to_contain_text("Federated training (round")  # still running, shown here too
    first = banner.inner_text()
    expect(banner).not_to_have_text(first, timeout=15_000)  # and it moves
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stProgress")).to_have_count(0, timeout=30_000)  # it ended
    idle(page)
    expect(page.get_by_text("Round 1, hop 1: Hospital 1 → Hospital 2")).to_be_visible()
    no_exception(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Training").click()
    idle(page)
    pace(page, "watchable")


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
    patient = page.get_by_test_id("stTextInput").filter(has_text="Patient of Hospital 1").locator("input")
    patient.fill("5")
    patient.press("Enter")  # one patient
    idle(page)
    expect(patient).to_have_value("5")
    nudge(page, "Gradients of round")  # phe's exponent
    expect(page.get_by_text("phe's default used", exact=False)).to_be_visible()
    no_exception(page)
    page.get_by_text("Summary", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "5-privacy-lab.png"))


def test_another_session_has_its_own_state(page: Page, browser: Browser, server: str) -> None:
    other = visit(browser, server)  # a second visitor
    idle(other)
    expect(other.get_by_text("Press Run to train", exact=False)).to_be_visible()
    expect(other.get_by_test_id("stMetricValue")).to_have_count(0)
    other.context.close()


def test_results_survive_page_switches(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text("Training").click()
    idle(page)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3598.62")
    no_exception(page)


def set_text(page: Page, label: str, value: str) -> None:
    """Type into a sidebar text box and commit it (Enter), as a user would."""
    box = page.get_by_test_id("stSidebar").get_by_label(label, exact=True)
    if not box.is_visible():
        page.get_by_test_id("stSidebar").get_by_text("Advanced").click()
    box.fill(value)
    box.press("Enter")
    idle(page)


def choose_select(page: Page, label: str, option: str) -> None:
    page.get_by_test_id("stSidebar").get_by_label(label).click()
    page.get_by_role("option", name=option).click()
    idle(page)


def heavy_run(page: Page) -> None:
    """Settings whose first round alone is minutes of encryption randomness."""
    choose_select(page, "Key length", "4096 bits")
    set_text(page, "Hospitals", "78")
    if not page.get_by_text("Encryption randomness").is_visible():
        page.get_by_test_id("stSidebar").get_by_text("Advanced").click()
    choose_select(page, "Encoding", "per value")
    choose_select(page, "Encryption randomness", "standard")
    confirm = page.get_by_text("Yes, run for about", exact=False)
    confirm.click()
    idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_contain_text("encryption randomness ready", timeout=60_000)


def test_out_of_range_input_is_refused_next_to_it(browser: Browser, server: str) -> None:
    visitor = visit(browser, server)
    idle(visitor)
    for value, message in (("79", "Hospitals: '79' is not allowed"), ("", "Hospitals is empty")):
        set_text(visitor, "Hospitals", value)
        expect(visitor.get_by_test_id("stSidebar").get_by_test_id("stAlertContentError")).to_contain_text(
            message
        )
        expect(visitor.get_by_role("button", name="Run", exact=True)).to_be_disabled()
        expect(visitor.get_by_test_id("stSidebar").get_by_label("Hospitals", exact=True)).to_have_value(value)
    set_text(visitor, "Hospitals", "3")
    expect(visitor.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    no_exception(visitor)
    visitor.context.close()


def test_a_heavy_run_neither_stalls_another_session_nor_survives_stop(browser: Browser, server: str) -> None:
    heavy = visit(browser, server)
    idle(heavy)
    heavy_run(heavy)
    light = visit(browser, server)
    idle(light)
    pace(light, "full speed")
    started = time.monotonic()
    light.get_by_role("button", name="Run", exact=True).click()
    expect(light.get_by_test_id("stMetricValue").first).to_have_text("3598.62", timeout=30_000)
    light_s = time.monotonic() - started
    expect(heavy.get_by_test_id("stProgress")).to_contain_text("encryption randomness ready")  # still going

    family = descendants(SERVERS[server])
    busy_before = cpu_ticks(family)
    time.sleep(1.0)
    assert cpu_ticks(family) - busy_before > 50, "the heavy run should be using the CPU"  # > 0.5 core-s
    workers = [pid for pid in family if alive(pid)]
    heavy.get_by_role("button", name="Stop", exact=True).click()
    expect(heavy.get_by_text("The run was stopped (Stop was pressed)", exact=False)).to_be_visible()
    stopped = time.monotonic()
    time.sleep(1.0)
    left = descendants(SERVERS[server])
    idle_before = cpu_ticks(left)
    time.sleep(2.0)
    idle_ticks = cpu_ticks(left) - idle_before
    (ARTIFACTS / "heavy-vs-light.json").write_text(
        json.dumps(
            {
                "light_run_s": light_s,
                "cpu_ticks_2s_after_stop": idle_ticks,
                "stop_s": time.monotonic() - stopped,
            }
        )
    )
    assert idle_ticks < 20, f"{idle_ticks} ticks of CPU in 2 s after Stop: work left running"
    assert len(left) < len(workers), "the heavy run's workers are still there"
    assert light_s < 15, f"the light run took {light_s:.1f} s next to a heavy one"
    no_exception(heavy)
    no_exception(light)
    heavy.context.close()
    light.context.close()


def clipped(page: Page) -> list[str]:
    """Visible labels and button texts whose text does not fit their box."""
    return page.evaluate(
        """() => [...document.querySelectorAll(
              "[data-testid='stWidgetLabel'] p, [data-testid='stMetricLabel'] p, button p, " +
              "[data-testid='stSidebarNav'] span, [data-testid='stMarkdownContainer'] p")]
            .filter(e => e.offsetParent !== null)
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.innerText.slice(0, 40))"""
    )


def test_nothing_is_clipped_on_a_projector(browser: Browser, server: str) -> None:
    small = visit(browser, server, 1024, 768)
    idle(small)
    small.get_by_test_id("stSidebar").get_by_text("Advanced").click()
    pace(small, "full speed")
    small.get_by_role("button", name="Run", exact=True).click()
    expect(small.get_by_test_id("stMetricValue").first).to_have_text("3598.62", timeout=30_000)
    idle(small)
    small.screenshot(path=str(ARTIFACTS / "6-projector-1024x768.png"), full_page=True)
    assert clipped(small) == []
    for name in ("Ring inspector", "Privacy"):
        small.get_by_test_id("stSidebarNav").get_by_text(name).click()
        idle(small)
        assert clipped(small) == [], name
    no_exception(small)
    small.context.close()


def test_on_a_phone_the_menu_gets_out_of_the_way(browser: Browser, server: str) -> None:
    phone = visit(browser, server, 390, 844)
    idle(phone)
    sidebar = phone.get_by_test_id("stSidebar")
    if not sidebar.get_by_test_id("stSidebarNav").is_visible():
        phone.get_by_test_id("stExpandSidebarButton").click()
    sidebar.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
    idle(phone)
    expect(phone.get_by_role("heading", name="Ring inspector")).to_be_in_viewport()
    box = phone.get_by_role("heading", name="Ring inspector").bounding_box()
    side = sidebar.bounding_box()
    assert box is not None
    assert side is None or side["x"] + side["width"] <= box["x"] or not sidebar.is_visible()
    phone.screenshot(path=str(ARTIFACTS / "7-phone.png"))
    no_exception(phone)
    phone.context.close()


def test_four_sessions_running_at_once_keep_their_settings(browser: Browser, server: str) -> None:
    visitors = [visit(browser, server) for _ in range(4)]
    for v in visitors:
        idle(v)
        v.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
    for v in visitors:  # all at once: Training, then Run, without waiting in between
        v.get_by_test_id("stSidebarNav").get_by_text("Training").click()
    for v in visitors:
        v.get_by_role("button", name="Run", exact=True).click()
    for v in visitors:
        expect(v.get_by_test_id("stMetricValue").first).to_have_text("3598.62", timeout=60_000)
        idle(v)
        expect(v.get_by_test_id("stSidebar").get_by_label("Learning rate", exact=True)).to_have_value("0.01")
        expect(v.get_by_test_id("stSidebar").get_by_label("Hospitals", exact=True)).to_have_value("3")
        expect(v.get_by_test_id("stButtonGroup").get_by_role("button", pressed=True)).to_have_count(1)
        no_exception(v)
    for v in visitors:
        v.context.close()
