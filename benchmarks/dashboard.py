"""Benchmark: the dashboard before and after, in one run, in a real Chromium.

    .venv/bin/python -m benchmarks.dashboard                 # before = the commit given, after = this tree
    .venv/bin/python -m benchmarks.dashboard --before 6f2b939 --quick

For each app (a git worktree of `--before`, and this working tree) it starts `streamlit run`
on loopback and measures:
(a) live-chart overhead: one visitor runs a configuration at full speed on the Training
    page; the time from the Run click to the results table, divided by the same run's time
    in the engine alone (no UI, in this process);
(b) page load under load: four visitors press Run together (the defaults: 2048 bits, the
    post's 50 rounds at the watchable pace; then 1000 rounds at full speed); 0.3 s later a
    newcomer opens the app; the time from navigation until the page is drawn (sidebar and
    both chart frames there, script idle), against the same with nobody training.
It prints a table with before, after and their ratio. Wall-clock on a shared 2-core machine:
compare ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LIVE_CASES = (  # (label, key bits, hospitals, rounds)
    ("1024 bits, 78 hospitals, 200 rounds", 1024, 78, 200),
    ("2048 bits, 3 hospitals, 1000 rounds", 2048, 3, 1000),
)
QUICK_CASES = (("1024 bits, 20 hospitals, 100 rounds", 1024, 20, 100),)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app_dir: Path) -> Iterator[str]:
    """`streamlit run app.py` in `app_dir`; stopped (with its children) on exit."""
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
        cwd=app_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(app_dir)},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit in {app_dir} did not start")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def idle(page: Page, timeout: float = 600_000) -> None:
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout
    )


def visitor(browser: Browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.goto(url)
    idle(page)
    return page


def set_value(page: Page, label: str, value: str) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    box = sidebar.get_by_label(label, exact=True)
    if not box.is_visible():
        sidebar.get_by_text("Advanced").click()
    box.fill(value)
    box.press("Enter")
    idle(page)


def configure(page: Page, bits: int, hospitals: int, rounds: int) -> None:
    page.get_by_test_id("stSidebar").get_by_role("combobox", name="Key length").click()
    page.get_by_role("option", name=f"{bits} bits").first.click()
    idle(page)
    set_value(page, "Hospitals", str(hospitals))
    set_value(page, "Rounds", str(rounds))
    page.get_by_test_id("stButtonGroup").get_by_text("full speed", exact=True).click()
    idle(page)
    confirm = page.get_by_text("Yes, run for about", exact=False)
    if confirm.count():
        confirm.click()
        idle(page)


def live_seconds(browser: Browser, url: str, bits: int, hospitals: int, rounds: int) -> float:
    page = visitor(browser, url)
    configure(page, bits, hospitals, rounds)
    start = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("Results", exact=True)).to_be_visible(timeout=1_200_000)
    seconds = time.perf_counter() - start
    page.context.close()
    return seconds


def engine_seconds(bits: int, hospitals: int, rounds: int) -> float:
    """The same run with no UI: the engine in a background job of this process."""
    from fedviz.config import Config
    from fedviz.engines.background import Job

    job = Job(Config(key_length=bits, hospitals=hospitals, rounds=rounds)).start()
    job.join()
    assert job.status == "finished", job.error
    return job.elapsed


def load_seconds(browser: Browser, url: str, newcomers: int) -> list[float]:
    out = []
    for _ in range(newcomers):
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        start = time.perf_counter()
        page.goto(url)
        expect(page.get_by_test_id("stSidebar").get_by_text("Learning rate")).to_be_visible(timeout=120_000)
        expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2, timeout=120_000)
        idle(page)
        out.append(time.perf_counter() - start)
        page.context.close()
    return out


def under_load(browser: Browser, url: str, newcomers: int, rounds: str, pace: str) -> list[float]:
    """Four visitors press Run together; 0.3 s later a newcomer opens the app (once per
    newcomer, each time with four fresh runs). Returns the newcomers' load times."""
    busy = [visitor(browser, url) for _ in range(4)]
    for page in busy:
        set_value(page, "Rounds", rounds)
        page.get_by_test_id("stButtonGroup").get_by_text(pace, exact=True).click()
        idle(page)
    seconds = []
    for _ in range(newcomers):
        for page in busy:
            page.get_by_role("button", name="Run", exact=True).click()
        time.sleep(0.3)
        seconds += load_seconds(browser, url, 1)
        for page in busy:
            expect(page.get_by_text("Results", exact=True)).to_be_visible(timeout=1_200_000)
            expect(page.get_by_test_id("stProgress")).to_have_count(0, timeout=1_200_000)
            idle(page)
    for page in busy:
        page.context.close()
    return seconds


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="fedviz-before-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), rev], cwd=ROOT, check=True, capture_output=True
    )
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def measure(
    browser: Browser, app_dir: Path, cases: tuple[tuple[str, int, int, int], ...], newcomers: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    with served(app_dir) as url:
        visitor(browser, url).context.close()  # first load warms the server's imports
        for label, bits, hospitals, rounds in cases:
            out[f"live: {label}"] = live_seconds(browser, url, bits, hospitals, rounds)
        out["page load, idle"] = statistics.median(load_seconds(browser, url, newcomers))
        out["page load, 4 sessions running the default"] = statistics.median(
            under_load(browser, url, newcomers, "50", "watchable")
        )
        out["page load, 4 sessions running 1000 rounds at full speed"] = statistics.median(
            under_load(browser, url, newcomers, "1000", "full speed")
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="6f2b939", help="git revision of the 'before' app")
    parser.add_argument("--quick", action="store_true", help="one small live case, one newcomer")
    args = parser.parse_args()
    cases = QUICK_CASES if args.quick else LIVE_CASES
    newcomers = 1 if args.quick else 3
    engine = {f"live: {label}": engine_seconds(bits, n, r) for label, bits, n, r in cases}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            with worktree(args.before) as old:
                before = measure(browser, old, cases, newcomers)
            after = measure(browser, ROOT, cases, newcomers)
        finally:
            browser.close()
    print("| measure | engine alone s | before s | after s | before/after |")
    print("|---|---:|---:|---:|---:|")
    for name in after:
        alone = f"{engine[name]:.2f}" if name in engine else ""
        print(
            f"| {name} | {alone} | {before[name]:.2f} | {after[name]:.2f} | {before[name] / after[name]:.1f}× |"
        )
    for name in engine:
        print(
            f"live overhead, {name[6:]}: before {before[name] / engine[name]:.2f}×, after {after[name] / engine[name]:.2f}× the engine alone"
        )


if __name__ == "__main__":
    main()
