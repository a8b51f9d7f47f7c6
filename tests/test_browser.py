"""A real browser (Debian's Chromium via Playwright) against `streamlit run app.py`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import alive, wait_until
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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
        start_new_session=True,  # its own process group: a failed stop can still end them all
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
    try:
        log = proc.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("streamlit did not stop within 20 s of SIGTERM") from None
    finally:
        gone = wait_until(lambda: not [pid for pid in family if alive(pid)], 15)
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    (ARTIFACTS / "streamlit-server.log").write_text(log)
    assert "Traceback" not in log, log[-3000:]
    assert gone, "processes left running after the server stopped"


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


def visit(browser: Browser, url: str, width: int = 1440, height: int = 1000, path: str = "") -> Page:
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
    page.goto(url + path)
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


def test_a_bookmarked_page_as_the_servers_first_request_gets_the_whole_app(
    browser: Browser, server: str
) -> None:
    """Runs first: before the app has ever run in this server, Streamlit would serve the files
    under pages/ as bare pages of their own (no sidebar, helper modules listed as pages)."""
    first = visit(browser, server, path="/privacy")
    try:
        idle(first)
        nav = first.get_by_test_id("stSidebarNav")
        expect(nav.get_by_text("Ring inspector")).to_be_visible(timeout=30_000)
        expect(nav.get_by_text("controls", exact=True)).to_have_count(0)
        expect(first.get_by_role("heading", name="Experiment")).to_be_visible()
        expect(
            first.get_by_role("heading", name="Privacy: what the ring protects, and what it does not")
        ).to_be_visible()
        no_exception(first)
    finally:
        first.context.close()


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
    assert "3598.62" in metrics and "3694.66" in metrics and "4181.20" in metrics
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "2-training-results.png"), full_page=True)


def pace(page: Page, name: str) -> None:
    """Choose a pace by its role and wait until it is chosen (a rerun can briefly leave a
    hidden stale copy of the control)."""
    option = page.get_by_role("radiogroup", name="Pace").get_by_role("radio", name=name)
    idle(page)
    for attempt in range(4):
        expect(option).to_have_count(1, timeout=15_000)  # wait out a stale copy mid-rerun
        try:
            option.click(timeout=5_000)
            break
        except PlaywrightError:  # a stale copy came back between the count and the click
            if attempt == 3:
                raise
            idle(page)
    for attempt in range(4):  # a rerun can show a stale copy beside the new one for a moment
        try:
            expect(option).to_have_count(1, timeout=15_000)
            expect(option).to_be_checked(timeout=5_000)
            break
        except (AssertionError, PlaywrightError):
            if attempt == 3:
                raise
            idle(page)
    idle(page)


def test_stop_interrupts_a_run_and_keeps_the_previous_results(page: Page) -> None:
    pace(page, "slow")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stProgress")).to_contain_text("Federated training (round", timeout=30_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    stopped = page.get_by_text("The run was stopped (Stop was pressed) during federated training")
    expect(stopped).to_be_visible(timeout=20_000)
    idle(page)
    expect(page.get_by_text("The previous results are kept.", exact=False)).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3716.51", timeout=20_000)
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
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("3716.51")
    no_exception(page)


def set_text(page: Page, label: str, value: str) -> None:
    """Type into a sidebar text box and commit it (Enter), as a user would."""
    box = page.get_by_test_id("stSidebar").get_by_label(label, exact=True)
    idle(page)
    expect(box).to_have_count(1, timeout=15_000)  # wait out a stale copy mid-rerun
    if not box.is_visible():
        page.get_by_test_id("stSidebar").get_by_text("Advanced").click()
    box.fill(value)
    box.press("Enter")
    idle(page)


def choose_select(page: Page, label: str, option: str) -> None:
    """Pick an option of a sidebar select box, as a user would. A click right after another
    widget's rerun can be taken as focus only, or land while the list is redrawn: retry."""
    box = page.get_by_test_id("stSidebar").get_by_role("combobox", name=label)
    choice = page.get_by_role("option", name=option).first
    for attempt in range(4):
        try:
            box.click(timeout=5_000)
            choice.wait_for(state="visible", timeout=2_000)
            choice.click(timeout=5_000)
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise
            page.keyboard.press("Escape")
            idle(page)
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
    expect(light.get_by_test_id("stMetricValue").first).to_have_text("3716.51", timeout=30_000)
    light_s = time.monotonic() - started
    expect(heavy.get_by_test_id("stProgress")).to_contain_text("encryption randomness ready")  # still going

    family = descendants(SERVERS[server])
    before = {pid: cpu_ticks([pid]) for pid in family}
    time.sleep(2.0)
    workers = [pid for pid in family if alive(pid) and cpu_ticks([pid]) - before[pid] > 5]
    assert workers, "the heavy run should have busy worker processes"
    heavy.get_by_role("button", name="Stop", exact=True).click()
    stopped = time.monotonic()
    assert wait_until(lambda: not [pid for pid in workers if alive(pid)], 10), "workers survived Stop"
    expect(heavy.get_by_text("The run was stopped (Stop was pressed)", exact=False)).to_be_visible(
        timeout=20_000
    )
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
    assert light_s < 15, f"the light run took {light_s:.1f} s next to a heavy one"
    no_exception(heavy)
    no_exception(light)
    heavy.context.close()
    light.context.close()


def test_a_reload_reattaches_and_a_closed_page_stops_its_run(browser: Browser, server: str) -> None:
    """Reloading mid-run brings the run back (its settings, progress, Stop); closing the page
    stops it within seconds: no worker keeps the CPU busy for nobody."""
    visitor = visit(browser, server)
    idle(visitor)
    heavy_run(visitor)
    assert "run=" in visitor.url
    visitor.reload()
    idle(visitor)
    expect(visitor.get_by_test_id("stProgress")).to_contain_text(
        "encryption randomness ready", timeout=30_000
    )
    expect(visitor.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    expect(visitor.get_by_test_id("stSidebar").get_by_label("Hospitals", exact=True)).to_have_value("78")
    family = descendants(SERVERS[server])
    before = {pid: cpu_ticks([pid]) for pid in family}
    time.sleep(2.0)
    workers = [pid for pid in family if alive(pid) and cpu_ticks([pid]) - before[pid] > 5]
    assert workers, "the reattached run should still have busy worker processes"
    no_exception(visitor)
    visitor.context.close()  # the tab is gone
    closed = time.monotonic()
    assert wait_until(lambda: not [pid for pid in workers if alive(pid)], 10), (
        "a closed page's run kept running"
    )
    # and it is kept as stopped, within seconds of the tab closing
    from fedviz.store import RunStore

    assert wait_until(
        lambda: any(r.status == "interrupted" and r.config.hospitals == 78 for r in RunStore().list()),
        max(0.5, 10 - (time.monotonic() - closed)),
    ), "the closed page's run was not stored as stopped within 10 s"


def clipped(page: Page, scrolling: bool = False) -> list[str]:
    """Visible text the window does not show whole: cut by a box that hides or scrolls its
    overflow (a button group, a metric label, a download button, a column), ended with an
    ellipsis, or outside the window; a select box showing part of its value; a table (drawn on a
    canvas) wider than its box, with a header or cell cut, rows hidden or empty space below its
    last row. With `scrolling`, text in a box that scrolls sideways counts as shown (a phone)."""
    return page.evaluate(
        """(scrolling) => {
  const out = [];
  const shell = new Set(["stApp", "stAppViewContainer", "stMain", "stSidebar", "stSidebarContent",
                         "stSidebarUserContent"]);  // the page's own scrolling: below the fold is fine
  const shown = (e) => e.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  const short = (s) => s.trim().replace(/\\s+/g, " ").slice(0, 40);
  const where = (e) => e.closest("[data-testid]")?.dataset.testid ?? e.tagName;
  const sidebar = document.querySelector("[data-testid='stSidebar']");
  const closed = (e) => sidebar !== null && sidebar.contains(e) && sidebar.getBoundingClientRect().right < 1;
  const width = document.documentElement.clientWidth;

  // Every run of text lies inside each box that could hide part of it, and inside the window.
  const texts = document.createTreeWalker(document.querySelector("[data-testid='stApp']"), NodeFilter.SHOW_TEXT);
  for (let n = texts.nextNode(); n; n = texts.nextNode()) {
    const e = n.parentElement;
    if (!n.nodeValue.trim() || e.closest("svg, script, style, canvas, [data-testid='stSkipToContent']")) continue;
    if (closed(e) || !shown(e)) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const r = range.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;  // text for screen readers only
    let why = null, scrolls = false;
    for (let a = e; !why && !scrolls && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.textOverflow === "ellipsis" && a.scrollWidth > a.clientWidth + 1) why = "ends in an ellipsis";
      if (why || (s.overflowX === "visible" && s.overflowY === "visible")) continue;
      const box = a.getBoundingClientRect(), left = box.left + a.clientLeft, top = box.top + a.clientTop;
      const page = shell.has(a.dataset.testid);
      if (s.overflowX !== "visible" && (r.left < left - 1 || r.right > left + a.clientWidth + 1)) {
        scrolls = scrolling && !page && ["auto", "scroll"].includes(s.overflowX);
        if (!scrolls) why = `cut by ${where(a)} (overflow-x: ${s.overflowX})`;
      } else if (!page && ["hidden", "clip"].includes(s.overflowY)
                 && (r.top < top - 1 || r.bottom > top + a.clientHeight + 1)) {
        why = `cut by ${where(a)} (overflow-y: ${s.overflowY})`;
      }
    }
    if (!why && !scrolls && (r.left < -1 || r.right > width + 1)) why = "outside the window";
    if (why) out.push(`${short(n.nodeValue)} [${where(e)}: ${why}]`);
  }

  // A select box shows its whole value.
  for (const input of document.querySelectorAll("[data-testid='stSelectbox'] input")) {
    if (!closed(input) && shown(input) && input.scrollWidth > input.clientWidth + 1) {
      out.push(`${short(input.value)} [stSelectbox: value cut]`);
    }
  }

  // Tables are drawn on a canvas: read their columns and shown texts from the grid's props.
  const ruler = document.createElement("canvas").getContext("2d");
  for (const grid of document.querySelectorAll("[data-testid='stDataFrame']")) {
    const canvas = grid.querySelector("[data-testid='data-grid-canvas']");
    if (canvas === null || closed(grid) || !shown(grid)) continue;
    const fiber = Object.keys(canvas).find((k) => k.startsWith("__reactFiber$"));
    let p = null;
    for (let f = canvas[fiber]; f && !p; f = f.return) {
      const props = f.memoizedProps;
      if (Array.isArray(props?.columns) && typeof props.getCellContent === "function") p = props;
    }
    if (p === null) { out.push("a table whose columns cannot be read [stDataFrame]"); continue; }
    const style = getComputedStyle(canvas);  // the grid's --gdg-* theme variables are inherited
    const pad = parseFloat(style.getPropertyValue("--gdg-cell-horizontal-padding")) || 8;
    const fits = (text, font, w) => {
      ruler.font = `${style.getPropertyValue(font)} ${style.getPropertyValue("--gdg-font-family")}`;
      return ruler.measureText(text).width <= w - 2 * pad + 1;
    };
    const name = short(p.columns.map((c) => c.title).join(", "));
    const total = p.columns.reduce((sum, c) => sum + c.width, 0);
    if (total > canvas.clientWidth + 1 && !scrolling) {
      out.push(`${name} [stDataFrame: ${Math.round(total)} px of columns in ${canvas.clientWidth} px]`);
    }
    const rows = p.headerHeight + p.rows * p.rowHeight;
    if (rows > canvas.clientHeight + 1) out.push(`${name} [stDataFrame: rows hidden, ${rows} px in ${canvas.clientHeight} px]`);
    if (canvas.clientHeight - rows > 4) out.push(`${name} [stDataFrame: empty space below the last row]`);
    p.columns.forEach((c, i) => {
      if (!fits(c.title, "--gdg-header-font-style", c.width)) out.push(`${short(c.title)} [stDataFrame: header cut]`);
      for (let row = 0; row < p.rows; row++) {
        const cell = p.getCellContent([i, row]);
        const text = String(cell.displayData ?? cell.data ?? "");
        if (!fits(text, "--gdg-base-font-style", c.width)) { out.push(`${short(text)} [stDataFrame: cell cut]`); break; }
      }
    });
  }
  return [...new Set(out)];
}""",
        scrolling,
    )


def test_nothing_is_clipped_on_a_projector(browser: Browser, server: str) -> None:
    """1024×768 in a Chromium that shows its scrollbars (as a real one does, taking width from the
    page): before a run, during one (progress and Stop), after it on every page."""
    real = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        ignore_default_args=["--hide-scrollbars"],
    )
    small = visit(real, server, 1024, 768)

    def settled(where: str) -> None:
        """Nothing clipped once the page has settled (expanders animate, charts lay out)."""
        small.mouse.move(1000, 760)
        expect(small.get_by_test_id("stTooltipContent")).to_have_count(0)  # no tooltip over the page
        deadline = time.monotonic() + 5
        while (found := set(clipped(small))) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not found, f"{where}: {sorted(found)}"

    def pace_to(name: str) -> None:
        pace(small, name)

    def shoot(name: str) -> None:
        """The window as the audience sees it, then the whole page (the window made as tall)."""
        small.screenshot(path=str(ARTIFACTS / f"6-projector-{name}.png"))
        tall = small.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
        small.set_viewport_size({"width": 1024, "height": max(768, tall)})
        small.wait_for_timeout(800)  # charts redraw at the new size (only for the picture)
        small.screenshot(path=str(ARTIFACTS / f"6-projector-{name}-whole.png"))
        small.set_viewport_size({"width": 1024, "height": 768})

    try:
        idle(small)
        small.get_by_test_id("stSidebar").get_by_text("Advanced").click()
        settled("Training, before a run")

        pace_to("slow")
        small.get_by_role("button", name="Run", exact=True).click()
        expect(small.get_by_test_id("stProgress")).to_contain_text(
            "Federated training (round", timeout=30_000
        )
        settled("Training, during a run")
        small.screenshot(path=str(ARTIFACTS / "6-projector-training-running.png"))
        small.get_by_role("button", name="Stop", exact=True).click()
        expect(small.get_by_test_id("stProgress")).to_have_count(0, timeout=30_000)
        idle(small)

        pace_to("full speed")
        small.get_by_role("button", name="Run", exact=True).click()
        expect(small.get_by_test_id("stMetricValue").first).to_have_text("3716.51", timeout=30_000)
        idle(small)
        small.get_by_text("How the data is split across hospitals").click()
        settled("Training")
        shoot("training")

        small.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
        idle(small)
        settled("Ring inspector")
        shoot("ring")

        small.get_by_test_id("stSidebarNav").get_by_text("Privacy").click()
        idle(small)
        small.get_by_role("button", name="Run the 2-hospital case").click()
        expect(small.get_by_text("Exposed: Hospital 2's gradient comes back exactly")).to_be_visible(
            timeout=30_000
        )
        idle(small)
        small.get_by_text("The others' pooled statistics, as Hospital 1 infers them").click()
        settled("Privacy")
        shoot("privacy")
        no_exception(small)
    finally:
        real.close()


def test_on_a_phone_the_menu_gets_out_of_the_way(browser: Browser, server: str) -> None:
    """390×844 with a desktop browser's user agent (a narrow window: Streamlit itself closes the
    menu after a choice only for a phone's user agent). The menu opens over the page; choosing a
    page closes it, and the page is readable."""
    phone = visit(browser, server, 390, 844)

    def readable() -> list[str]:
        """Clipped text once the page has settled; wide tables may scroll sideways."""
        deadline = time.monotonic() + 5
        while (found := clipped(phone, scrolling=True)) and time.monotonic() < deadline:
            time.sleep(0.25)
        return found

    idle(phone)
    menu = phone.get_by_test_id("stSidebar").get_by_test_id("stSidebarNav")
    expect(menu).not_to_be_in_viewport()  # a narrow window starts with the menu closed
    phone.get_by_role("radiogroup", name="Pace").get_by_role("radio", name="full speed").click()
    idle(phone)
    phone.get_by_role("button", name="Run", exact=True).click()
    expect(phone.get_by_test_id("stMetricValue").first).to_have_text("3716.51", timeout=30_000)
    idle(phone)
    assert readable() == []
    phone.screenshot(path=str(ARTIFACTS / "7-phone-training.png"))

    phone.get_by_test_id("stExpandSidebarButton").click()
    expect(menu).to_be_in_viewport()
    phone.screenshot(path=str(ARTIFACTS / "7-phone-menu.png"))
    menu.get_by_text("Ring inspector").click()
    idle(phone)
    heading = phone.get_by_role("heading", name="Ring inspector")
    expect(menu).not_to_be_in_viewport()  # closed by itself
    expect(heading).to_be_in_viewport()
    box = heading.bounding_box()
    assert box is not None
    on_top = "([x, y]) => document.elementFromPoint(x, y)?.closest(\"[data-testid='stHeading']\") !== null"
    assert phone.evaluate(on_top, [box["x"] + 10, box["y"] + box["height"] / 2])  # nothing lies over it
    assert readable() == []
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
        expect(v.get_by_test_id("stMetricValue").first).to_have_text("3716.51", timeout=60_000)
        idle(v)
        expect(v.get_by_test_id("stSidebar").get_by_label("Learning rate", exact=True)).to_have_value("0.01")
        expect(v.get_by_test_id("stSidebar").get_by_label("Hospitals", exact=True)).to_have_value("3")
        expect(v.get_by_role("radiogroup", name="Pace").get_by_role("radio", checked=True)).to_have_count(1)
        no_exception(v)
    for v in visitors:
        v.context.close()


def test_a_phone_browser_closes_the_menu_once(browser: Browser, server: str) -> None:
    """With a phone's user agent Streamlit closes the menu after a choice itself; the page's own
    closing must not undo that (a second toggle would open it again)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        is_mobile=True,
        has_touch=True,
    )
    phone = context.new_page()
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    phone.goto(server)
    idle(phone)
    menu = phone.get_by_test_id("stSidebar").get_by_test_id("stSidebarNav")
    phone.get_by_test_id("stExpandSidebarButton").tap()
    expect(menu).to_be_in_viewport()
    menu.get_by_text("Privacy").tap()
    idle(phone)
    expect(phone.get_by_role("heading", name="Privacy: what the ring protects")).to_be_in_viewport()
    expect(menu).not_to_be_in_viewport()
    expect(phone.get_by_test_id("stExpandSidebarButton")).to_be_visible()
    assert not errors, errors
    context.close()


def test_the_walkthrough_tells_a_round_with_the_runs_numbers(browser: Browser, server: str) -> None:
    """Every step of the walkthrough, forward and back, on 3 and then on 20 hospitals; what the
    steps say is checked against the same run made here (encryption changes no number)."""
    visitor = visit(browser, server)
    idle(visitor)
    choose_select(visitor, "Key length", "1024 bits")
    set_text(visitor, "Rounds", "2")
    pace(visitor, "full speed")
    for hospitals in (3, 20):
        walk_every_step(visitor, hospitals)
    no_exception(visitor)
    visitor.context.close()


def walk_every_step(visitor: Page, hospitals: int) -> None:
    from conftest import of_type

    from fedviz.config import Config
    from fedviz.engines.inprocess import run
    from fedviz.events import FederatedRound
    from fedviz.story.walkthrough import fmt_mse

    first = of_type(
        list(run(Config(hospitals=hospitals, key_length=1024, rounds=2), pool=None)), FederatedRound
    )[0]
    visitor.get_by_test_id("stSidebarNav").get_by_text("Training", exact=True).click()
    idle(visitor)
    set_text(visitor, "Hospitals", str(hospitals))
    visitor.get_by_role("button", name="Run", exact=True).click()
    expect(visitor.get_by_text("Results", exact=True)).to_be_visible(timeout=60_000)
    expect(visitor.get_by_text(f"Federated test MSE, mean of {hospitals} hospitals")).to_be_visible()
    visitor.get_by_test_id("stSidebarNav").get_by_text("Walkthrough").click()
    idle(visitor)
    metric = lambda label: visitor.get_by_test_id("stMetric").filter(  # noqa: E731
        has=visitor.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    expect(metric("Key length").get_by_test_id("stMetricValue")).to_have_text("1024 bits (≈80-bit security)")
    heading = visitor.get_by_role("heading", level=3).nth(0)
    titles = [heading.inner_text()]
    nxt = visitor.get_by_role("button", name="Next", exact=True)
    while nxt.is_enabled():
        nxt.click()
        expect(heading).not_to_have_text(titles[-1])  # the next step is drawn
        idle(visitor)
        titles.append(heading.inner_text())
        if len(titles) == 2:  # Hospital 1's step: its own patients, one packed ciphertext
            expect(metric("Patients").get_by_test_id("stMetricValue")).to_have_text(str(392 // hospitals))
            expect(metric("Ciphertexts sent").get_by_test_id("stMetricValue")).to_have_text("1")
    assert len(titles) == (6 if hospitals == 3 else 7), titles
    assert len(set(titles)) == len(titles), titles
    mean = sum(first.mse) / hospitals
    expect(metric("Mean test MSE").get_by_test_id("stMetricValue")).to_have_text(fmt_mse(mean))
    expect(visitor.get_by_text(f"Step {len(titles)} of {len(titles)}", exact=False)).to_be_visible()
    previous = visitor.get_by_role("button", name="Previous", exact=True)
    for title in reversed(titles[:-1]):
        previous.click()
        expect(heading).to_have_text(title)
        idle(visitor)
    expect(previous).to_be_disabled()
    visitor.screenshot(path=str(ARTIFACTS / f"11-walkthrough-{hospitals}.png"), full_page=True)


def test_your_own_csv_then_breast_cancer_with_a_skewed_split(browser: Browser, server: str) -> None:
    """Issue 12 in the browser: an uploaded CSV (a bad one refused beside the uploader, the
    good one kept), then the breast-cancer classifier on a label-skewed split."""
    from fedviz.data.sources import example_csv

    visitor = visit(browser, server)
    idle(visitor)
    sidebar = visitor.get_by_test_id("stSidebar")
    sidebar.get_by_text("Data and model").click()
    choose_select(visitor, "Data", "Your own CSV file")
    expect(sidebar.get_by_text("Upload a CSV file (or choose a built-in data set) to run.")).to_be_visible()
    good = ARTIFACTS / "patients.csv"
    good.write_text(example_csv())
    sidebar.locator("input[type='file']").set_input_files(str(good))
    idle(visitor)
    expect(sidebar.get_by_text("Using patients.csv.")).to_be_visible(timeout=20_000)
    expect(sidebar.get_by_role("combobox", name="Target column")).to_have_value("progression")
    pace(visitor, "full speed")
    visitor.get_by_role("button", name="Run", exact=True).click()
    expect(visitor.get_by_text("Results", exact=True)).to_be_visible(timeout=60_000)
    idle(visitor)
    expect(
        visitor.get_by_test_id("stMetricLabel").filter(has_text="Federated test MSE, mean of 3 hospitals")
    ).to_be_visible()
    visitor.screenshot(path=str(ARTIFACTS / "9-csv-results.png"), full_page=True)

    bad = ARTIFACTS / "not-a-table.csv"
    bad.write_bytes(b"\x00\x01\x02")
    sidebar.locator("input[type='file']").set_input_files(str(bad))
    idle(visitor)
    expect(sidebar.get_by_text("is not a text file")).to_be_visible(timeout=20_000)
    expect(sidebar.get_by_text("Using patients.csv.")).to_be_visible()  # the good file is kept
    cell = ARTIFACTS / "bad-cell.csv"
    cell.write_text("age,bmi,progression\n50,abc,151\n60,22.1,75\n70,30.2,141\n")
    sidebar.locator("input[type='file']").set_input_files(str(cell))
    idle(visitor)
    expect(sidebar.get_by_text("row 2, column 'bmi' of bad-cell.csv is 'abc'", exact=False)).to_be_visible()
    expect(sidebar.get_by_text("Using patients.csv.")).to_be_visible()  # still the good file
    expect(visitor.get_by_text("Results", exact=True)).to_be_visible()  # and so are the results
    # Issue 18: a constant target used to be accepted, then crash the results (ZeroDivisionError)
    constant = ARTIFACTS / "constant_target.csv"
    constant.write_text("age,bmi,y\n" + "".join(f"{20 + i % 50},{18 + i % 17},5\n" for i in range(400)))
    sidebar.locator("input[type='file']").set_input_files(str(constant))
    idle(visitor)
    refusal = sidebar.get_by_test_id("stAlertContentError").filter(has_text="constant_target.csv")
    expect(refusal).to_contain_text("has the same value (5) in every row")
    expect(refusal).to_contain_text("patients.csv is still used")
    expect(sidebar.get_by_text("Using patients.csv.")).to_be_visible()
    expect(visitor.get_by_text("Results", exact=True)).to_be_visible()
    no_exception(visitor)

    choose_select(visitor, "Data", "Breast cancer")
    choose_select(visitor, "Split", "label skew (α)")
    expect(sidebar.get_by_text("logistic regression")).to_be_visible()
    visitor.get_by_role("button", name="Run", exact=True).click()
    expect(visitor.get_by_test_id("stMetricLabel").filter(has_text="Best federated accuracy")).to_be_visible(
        timeout=60_000
    )
    idle(visitor)
    visitor.get_by_text("How the data is split across hospitals").click()
    expect(visitor.get_by_text("Dirichlet(α = 0.5)", exact=False)).to_be_visible()
    no_exception(visitor)
    visitor.screenshot(path=str(ARTIFACTS / "10-breast-cancer-label-skew.png"), full_page=True)
    visitor.context.close()


def test_a_flower_run_shows_its_parties_and_sealed_hops(browser: Browser, server: str) -> None:
    """The Flower engine from the dashboard: separate processes, progress per exchange, the
    parties and the sealed bytes in the ring inspector, the same table, nothing left running."""
    from fedviz.engines.flower.launcher import MARKER, marked

    visitor = visit(browser, server)
    idle(visitor)
    choose_select(visitor, "Key length", "1024 bits")
    set_text(visitor, "Rounds", "1")
    choose_select(visitor, "Engine", "Flower: separate processes, ring")
    expect(visitor.get_by_text("Flower: separate processes, ring").first).to_be_visible()
    # Flower's seconds per message make even one round a minute or more: it asks first
    expect(visitor.get_by_text("every message between parties takes seconds")).to_be_visible()
    visitor.get_by_text("Yes, run for about", exact=False).click()
    idle(visitor)
    visitor.get_by_role("button", name="Run", exact=True).click()
    progress = visitor.get_by_test_id("stProgress")
    expect(progress).to_contain_text("answered in", timeout=120_000)  # an exchange and its latency
    assert marked(MARKER), "a Flower run should have its own processes"
    expect(visitor.get_by_text("Results", exact=True)).to_be_visible(timeout=240_000)
    idle(visitor)
    assert wait_until(lambda: not marked(MARKER), 15), "the deployment's processes outlived the run"
    visitor.get_by_test_id("stSidebarNav").get_by_text("Ring inspector").click()
    idle(visitor)
    carried = visitor.get_by_test_id("stAlertContainer").filter(has_text="What the relay carried:")
    expect(carried).to_contain_text("sealed bytes")
    expect(visitor.get_by_text("This run's parties were separate processes on Flower")).to_be_visible()
    visitor.get_by_text("separate processes (Flower, ring)").click()
    parties = visitor.get_by_test_id("stDataFrame").filter(has_text="key holder")
    expect(parties).to_be_visible()
    no_exception(visitor)
    visitor.screenshot(path=str(ARTIFACTS / "8-flower-ring.png"), full_page=True)
    # The privacy lab after a Flower run: the key stayed in the key holder's node, so the default
    # coalition (server + hospital 2) cannot be decrypted here. It used to crash (IndexError).
    visitor.get_by_test_id("stSidebarNav").get_by_text("Privacy", exact=True).click()
    idle(visitor)
    expect(visitor.get_by_text("key holder's own process", exact=False)).to_be_visible()
    expect(visitor.get_by_text("Summary", exact=True)).to_be_visible()  # the page is drawn to its end
    expect(visitor.get_by_text("Exposed in every round: ****")).to_have_count(0)
    no_exception(visitor)
    visitor.screenshot(path=str(ARTIFACTS / "8-flower-privacy.png"), full_page=True)
    visitor.context.close()


def test_links_are_named_in_words_not_icon_names(page: Page) -> None:
    """A link's accessible name is its words: no material icon's name (snake_case) in it."""
    import re

    for where in ("Training", "Privacy", "Walkthrough", "Glossary"):
        page.get_by_test_id("stSidebarNav").get_by_text(where, exact=True).click()
        idle(page)
        names = page.get_by_role("link").all_inner_texts()
        assert names, where
        assert not [n for n in names if re.search(r"\b[a-z]+_[a-z_]+\b", n)], (where, names)
    page.get_by_test_id("stSidebarNav").get_by_text("Training", exact=True).click()
    idle(page)


def test_the_compare_page_measures_the_protections_side_by_side(browser: Browser, server: str) -> None:
    """Issue 20 in the browser: the same task under every protection but SecAgg+ (its own test
    deploys Flower), the table, the verdict, the error chart."""
    visitor = visit(browser, server)
    idle(visitor)
    choose_select(visitor, "Key length", "1024 bits")
    set_text(visitor, "Rounds", "5")
    visitor.get_by_test_id("stSidebarNav").get_by_text("Compare", exact=True).click()
    idle(visitor)
    visitor.get_by_role("button", name="Compare", exact=True).click()
    table = visitor.get_by_test_id("stTable").filter(has_text="fedviz ring")
    expect(table).to_contain_text("CKKS (TenSEAL)", timeout=120_000)
    expect(table).to_contain_text("phe per value (the post)")
    idle(visitor)
    expect(visitor.get_by_text("Fastest per round here:", exact=False)).to_be_visible()
    expect(visitor.get_by_text("CKKS (TenSEAL) changed the aggregate by up to", exact=False)).to_be_visible()
    charts = visitor.get_by_test_id("stPlotlyChart")
    expect(charts.filter(has_text="How far each round's aggregate is from the plaintext one")).to_have_count(
        1
    )
    no_exception(visitor)
    visitor.screenshot(path=str(ARTIFACTS / "13-compare.png"), full_page=True)
    visitor.context.close()
