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

    .venv/bin/python -m benchmarks.dashboard --server-side [--before REV] [--newcomers 5] [--live-runs 3]

measures this tree's server alone, with no browser: every visitor is a websocket client of
`/_stcore/stream` that does what the browser's app does (send `rerun_script` with widget
states, answer `auto_rerun` with fragment reruns at its interval, drop them on a full run) but
draws nothing. It prints a newcomer's page load (connect until `script_finished`; also until
the first delta) idle and while four sessions run 2048 bits x 1000 rounds at full speed
(pressing Run again whenever a run ends), the server's CPU per second over that busy period
split by thread, and the live overhead (Run to the results table, over the engine alone).
"""

from __future__ import annotations

import argparse
import asyncio
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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

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
def served(app_dir: Path, pids: list[int] | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` in `app_dir`; stopped (with its children) on exit. Its pid is
    appended to `pids` if given; `env` adds to its environment."""
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
        env={**os.environ, "PYTHONPATH": str(app_dir), **(env or {})},
        start_new_session=True,
    )
    if pids is not None:
        pids.append(proc.pid)
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


# --------------------------------------------------------------------------- server side, no browser

NAME_THREADS = """# harness only (--server-side): each Python thread's name becomes its OS name (15 bytes),
# so that /proc/PID/task/*/comm tells the script runner threads from the engine's run thread.
import ctypes
import threading

_prctl = ctypes.CDLL(None).prctl
_run = threading.Thread.run


def _named_run(self):
    _prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME: the calling thread
    _run(self)


threading.Thread.run = _named_run
"""
BUSY_SESSIONS = 4
BUSY_ROUNDS = "1000"
LIVE_CASE = ("1024 bits, 20 hospitals, 100 rounds", 1024, 20, 100)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


async def quiet(below: float = 1.5, patience: float = 180.0) -> float:
    """Wait (at most `patience` s) for the 1-minute load average to drop below `below`;
    the machine is shared. Returns the load average when done."""
    deadline = time.monotonic() + patience
    while load1() >= below and time.monotonic() < deadline:
        await asyncio.sleep(5)
    return load1()


class Visitor:
    """One browser tab as a websocket client of Streamlit's `/_stcore/stream`, drawing nothing.

    Like the browser's app it sends `rerun_script` with the widget values it has set (and a
    button's trigger for one run), answers each `auto_rerun` with a fragment rerun at that
    interval until a full run starts or `stop_auto_rerun` says otherwise, and sends the
    current page's hash. Unlike it, it keeps no ForwardMsg cache (so the server never sends
    a reference instead of a message) and sends only the widget values it changed."""

    def __init__(self, url: str) -> None:
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        self._state_type = WidgetState
        self.ws_url = "ws" + url.removeprefix("http") + "/_stcore/stream"
        self.page = ""
        self.widgets: dict[str, Any] = {}  # label -> widget proto, of the last full run
        self.values: dict[str, Any] = {}  # widget id -> the WidgetState we set
        self.timers: dict[str, asyncio.Task[None]] = {}  # fragment id -> its auto-rerun
        self.fragment_run = False  # the run in progress reruns fragments only
        self.live = False  # the last full run registered an auto-rerun fragment
        self.full_runs = self.fragment_runs = 0  # runs finished successfully
        self.cut_short = 0  # runs that finished early for a rerun
        self.bytes = {"full": 0, "fragment": 0}
        self.first_delta: float | None = None
        self.finished: float | None = None
        self.results: float | None = None  # when the results table arrived
        self._news = asyncio.Event()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self._ws = await connect(self.ws_url, subprotocols=["streamlit"], max_size=None)  # type: ignore[list-item]
        self._reader = asyncio.create_task(self._read())
        await self.rerun()

    async def close(self) -> None:
        for task in self.timers.values():
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def rerun(self, fragment_id: str = "", auto: bool = False, trigger: str = "") -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        client = msg.rerun_script
        client.page_script_hash = self.page
        client.fragment_id = fragment_id
        client.is_auto_rerun = auto
        client.context_info.timezone = "UTC"
        client.context_info.locale = "en-US"
        client.widget_states.widgets.extend(self.values.values())
        if trigger:
            client.widget_states.widgets.add(id=trigger, trigger_value=True)
        await self._ws.send(msg.SerializeToString())

    async def until(self, done: Any, timeout: float = 600.0) -> None:
        """Wait until `done()` holds (checked on each message received)."""
        async with asyncio.timeout(timeout):
            while not done():
                if self._reader is not None and self._reader.done():
                    self._reader.result()  # raises what stopped the reader
                    raise ConnectionError("the server closed the websocket")
                self._news.clear()
                await self._news.wait()

    async def run(self, trigger: str = "") -> None:
        """One full script run (with a button's trigger if given), until it finished."""
        runs = self.full_runs
        await self.rerun(trigger=trigger)
        await self.until(lambda: self.full_runs > runs)

    async def set(self, values: dict[str, Any]) -> None:
        """Set widgets by label (str for text and select boxes, list for segmented controls,
        bool for checkboxes) in one run, as if typed; select boxes take an option's prefix."""
        for label, value in values.items():
            widget = self.widgets[label]
            state = self._state_type(id=widget.id)
            if isinstance(value, bool):
                state.bool_value = value
            elif isinstance(value, list):
                state.string_array_value.data.extend(value)
            elif hasattr(widget, "options") and not hasattr(widget, "max_chars"):
                state.string_value = next(o for o in widget.options if o.startswith(value))
            else:
                state.string_value = value
            self.values[widget.id] = state
        await self.run()

    async def configure(self, settings: dict[str, Any]) -> None:
        """Set the sidebar and pace, and tick a long run's confirmation if one is asked."""
        await self.set(settings)
        confirm = [label for label in self.widgets if label.startswith("Yes, run for about")]
        if confirm:
            await self.set({confirm[0]: True})

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.rerun(fragment_id, auto=True)

    def _stop_timers(self, fragment_ids: Any = None) -> None:
        for fragment_id in list(self.timers if fragment_ids is None else fragment_ids):
            task = self.timers.pop(fragment_id, None)
            if task is not None:
                task.cancel()

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                now = time.perf_counter()
                msg = ForwardMsg.FromString(raw)
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    self.fragment_run = bool(msg.metadata.run.fragment_ids)
                    if not self.fragment_run:
                        self._stop_timers()  # the browser drops auto-reruns on a full run
                        self.page = msg.new_session.page_script_hash
                        self.widgets, self.live = {}, False
                elif kind == "delta":
                    self.first_delta = self.first_delta or now
                    self._element(msg.delta, now)
                elif kind == "auto_rerun":
                    fragment_id = msg.auto_rerun.fragment_id
                    self._stop_timers([fragment_id])
                    self.timers[fragment_id] = asyncio.create_task(
                        self._auto_rerun(fragment_id, msg.auto_rerun.interval)
                    )
                    self.live = True
                elif kind == "stop_auto_rerun":
                    self._stop_timers(msg.stop_auto_rerun.fragment_ids)
                elif kind == "script_finished":
                    if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                        self.full_runs += 1
                        self.finished = now
                    elif msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                        self.fragment_runs += 1
                    elif msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        self.cut_short += 1
                self.bytes["fragment" if self.fragment_run else "full"] += len(raw)
                self._news.set()
        except ConnectionClosed:
            pass
        finally:
            self._news.set()

    def _element(self, delta: Any, now: float) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        body = getattr(element, kind)
        widget_id = getattr(body, "id", "")
        if kind == "dataframe":  # the Training page's one table: the results
            self.results = now
        elif widget_id:
            self.widgets[getattr(body, "label", "") or widget_id] = body


async def newcomer(url: str) -> tuple[float, float]:
    """A new visitor's page load: (to the first delta, to `script_finished`), from connecting."""
    visitor = Visitor(url)
    start = time.perf_counter()
    await visitor.open()
    await visitor.until(lambda: visitor.full_runs > 0, 300)
    await visitor.close()
    assert visitor.first_delta is not None and visitor.finished is not None
    return visitor.first_delta - start, visitor.finished - start


async def keep_busy(visitor: Visitor, stop: asyncio.Event) -> int:
    """Press Run, and again each time the run ends, until `stop`; then press Stop and wait
    for the run to end. Returns the runs started."""
    runs = 0
    while not stop.is_set():
        # a run's end redraws the whole app: wait until that redraw has drawn Run again
        await visitor.until(lambda: "Run" in visitor.widgets or stop.is_set(), 120)
        if stop.is_set():
            break
        runs += 1
        await visitor.run(trigger=visitor.widgets["Run"].id)
        await visitor.until(lambda: not visitor.live or stop.is_set(), 1200)
    if visitor.live:
        finished = visitor.full_runs
        # Stop lives in the progress banner's fragment; a page may run other live fragments
        for fragment in list(visitor.timers) or [""]:
            await visitor.rerun(fragment, trigger=visitor.widgets["Stop"].id)
        await visitor.until(lambda: visitor.full_runs > finished and not visitor.live, 120)
    return runs


class CpuSampler:
    """CPU seconds per second of a server process, split by thread name (threads named by
    NAME_THREADS; the main thread runs the event loop), plus its descendant processes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.samples: list[dict[str, float]] = []

    def _cpu(self, stat_path: Path) -> tuple[str, float]:
        stat = stat_path.read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / self.tick

    def _snapshot(self) -> tuple[float, dict[int, tuple[str, float]], float]:
        total = self._cpu(Path(f"/proc/{self.pid}/stat"))[1]
        threads = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with suppress(OSError, ValueError):  # the thread ended
                threads[int(task.name)] = self._cpu(task / "stat")
        parents: dict[int, int] = {}
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    stat = (proc / "stat").read_text()
                except OSError:
                    continue
                parents[int(proc.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        children, family = 0.0, {self.pid}
        for _ in range(4):  # server -> forkserver -> pool workers
            family |= {p for p, parent in parents.items() if parent in family}
        for p in family - {self.pid}:
            with suppress(OSError):
                children += self._cpu(Path(f"/proc/{p}/stat"))[1]
        return total, threads, children

    async def sample(self, stop: asyncio.Event) -> None:
        total, threads, children = self._snapshot()
        while not stop.is_set():
            await asyncio.sleep(1.0)
            now_total, now_threads, now_children = self._snapshot()
            split: dict[str, float] = {}
            for tid, (name, cpu) in now_threads.items():
                label = "main (event loop)" if tid == self.pid else name
                split[label] = split.get(label, 0.0) + cpu - threads.get(tid, (name, 0.0))[1]
            split["threads ended since"] = now_total - total - sum(split.values())
            split["pool workers (processes)"] = now_children - children
            self.samples.append(split)
            total, threads, children = now_total, now_threads, now_children


def engine_run_seconds(bits: int, hospitals: int, rounds: int) -> float:
    """`fedviz.engines.inprocess.run` on this config, no UI, in this process."""
    from fedviz.config import Config
    from fedviz.engines.inprocess import run

    start = time.perf_counter()
    for _ in run(Config(key_length=bits, hospitals=hospitals, rounds=rounds)):
        pass
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


async def server_side(newcomers: int, live_runs: int, patience: float, before: str | None = None) -> None:
    """This tree's server; with `before`, first that revision's (a git worktree), same run."""
    if before is not None:
        with worktree(before) as old:
            print(f"== before: {before}")
            await serve_and_measure(old, newcomers, live_runs, patience)
        print("== after: this tree")
    await serve_and_measure(ROOT, newcomers, live_runs, patience)


async def serve_and_measure(app: Path, newcomers: int, live_runs: int, patience: float) -> None:
    hook = Path(tempfile.mkdtemp(prefix="fedviz-bench-"))
    (hook / "sitecustomize.py").write_text(NAME_THREADS)
    pids: list[int] = []
    try:
        with served(app, pids, {"PYTHONPATH": f"{hook}{os.pathsep}{app}"}) as url:
            await measure_server(url, pids[0], newcomers, live_runs, patience)
    finally:
        shutil.rmtree(hook, ignore_errors=True)


async def measure_server(url: str, pid: int, newcomers: int, live_runs: int, patience: float) -> None:
    await newcomer(url)  # the first load warms the server's imports and the pool
    load = await quiet(patience=patience)
    idle = [await newcomer(url) for _ in range(newcomers)]
    print(f"newcomer, idle (load {load:.2f} -> {load1():.2f}):")
    print(
        f"  to first delta {spread([d for d, _ in idle])}, to script_finished {spread([f for _, f in idle])}"
    )

    busy = [Visitor(url) for _ in range(BUSY_SESSIONS)]
    for visitor in busy:
        await visitor.open()
        await visitor.until(lambda v=visitor: v.full_runs > 0)
        await visitor.configure({"Rounds": BUSY_ROUNDS, "Pace": ["full speed"]})
    load = await quiet(patience=patience)
    stop, sampled = asyncio.Event(), asyncio.Event()
    sampler = CpuSampler(pid)
    sampling = asyncio.create_task(sampler.sample(sampled))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pressing = [asyncio.create_task(keep_busy(v, stop)) for v in busy]
    await asyncio.sleep(1.0)  # the runs are under way (keys made, charts redrawing)
    loaded = []
    for _ in range(newcomers):
        loaded.append(await newcomer(url))
        await asyncio.sleep(0.5)
    stop.set()
    sampled.set()
    wall, harness_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await sampling
    runs = await asyncio.gather(*pressing)
    load_after = load1()
    ratio = statistics.median([f for _, f in loaded]) / statistics.median([f for _, f in idle])
    print(
        f"newcomer, {BUSY_SESSIONS} sessions running 2048 bits x {BUSY_ROUNDS} rounds at full speed "
        f"(load {load:.2f} -> {load_after:.2f}):"
    )
    print(
        f"  to first delta {spread([d for d, _ in loaded])}, to script_finished {spread([f for _, f in loaded])}"
    )
    print(f"  busy/idle (median to script_finished): {ratio:.1f}x")
    report_busy(busy, runs, sampler, wall, harness_cpu)
    for visitor in busy:
        await visitor.close()

    await live_overhead(url, live_runs, patience)


def report_busy(
    busy: list[Visitor], runs: list[int], sampler: CpuSampler, wall: float, harness_cpu: float
) -> None:
    fragments = sum(v.fragment_runs for v in busy)
    fragment_bytes = sum(v.bytes["fragment"] for v in busy)
    print(
        f"  busy period {wall:.1f} s: {sum(runs)} runs started, {fragments} fragment reruns "
        f"({fragments / wall:.1f}/s, {fragment_bytes / max(fragments, 1) / 1e3:.0f} kB each), "
        f"{sum(v.cut_short for v in busy)} runs cut short for a rerun; "
        f"this harness used {harness_cpu:.1f} s CPU"
    )
    names = sorted(
        {name for s in sampler.samples for name in s},
        key=lambda n: -sum(s.get(n, 0) for s in sampler.samples),
    )
    print("  server CPU s per second: " + " | ".join(names))
    for second, split in enumerate(sampler.samples, 1):
        print(f"    {second:3d}: " + " | ".join(f"{split.get(n, 0.0):.2f}" for n in names))
    totals = {n: sum(s.get(n, 0.0) for s in sampler.samples) for n in names}
    print("    sum: " + " | ".join(f"{totals[n]:.1f}" for n in names))


async def live_overhead(url: str, live_runs: int, patience: float) -> None:
    """Both the short case (fixed latencies dominate: the Run click's page run, noticing the
    end, drawing the results) and a long one (the drawing during the run dominates)."""
    for case in (LIVE_CASE, LIVE_CASES[1]):
        await live_overhead_of(url, case, live_runs, patience)


async def live_overhead_of(
    url: str, case: tuple[str, int, int, int], live_runs: int, patience: float
) -> None:
    label, bits, hospitals, rounds = case
    visitor = Visitor(url)
    await visitor.open()
    await visitor.until(lambda: visitor.full_runs > 0)
    await visitor.configure(
        {
            "Key length": f"{bits} bits",
            "Hospitals": str(hospitals),
            "Rounds": str(rounds),
            "Pace": ["full speed"],
        }
    )
    engine_run_seconds(bits, hospitals, rounds)  # warms this process's pool
    load = await quiet(patience=patience)
    engine, live = [], []
    for _ in range(live_runs):
        engine.append(engine_run_seconds(bits, hospitals, rounds))
        visitor.results = None
        start = time.perf_counter()
        await visitor.run(trigger=visitor.widgets["Run"].id)
        await visitor.until(lambda: visitor.results is not None, 1200)
        assert visitor.results is not None
        live.append(visitor.results - start)
        await visitor.until(lambda: not visitor.live)
    await visitor.close()
    print(f"live overhead, {label}, full speed (load {load:.2f} -> {load1():.2f}):")
    print(f"  engine alone {spread(engine)}; Run to results table {spread(live)}")
    print(f"  live / engine (medians): {statistics.median(live) / statistics.median(engine):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="6f2b939", help="git revision of the 'before' app")
    parser.add_argument("--quick", action="store_true", help="one small live case, one newcomer")
    parser.add_argument(
        "--server-side", action="store_true", help="this tree's server alone, websocket clients"
    )
    parser.add_argument("--newcomers", type=int, default=5, help="--server-side: page loads per condition")
    parser.add_argument("--live-runs", type=int, default=3, help="--server-side: live runs (and engine runs)")
    parser.add_argument(
        "--patience",
        type=float,
        default=180.0,
        help="--server-side: most seconds to wait for a 1-min load < 1.5",
    )
    args = parser.parse_args()
    if args.server_side:
        before = args.before if args.before != parser.get_default("before") else None
        asyncio.run(server_side(args.newcomers, args.live_runs, args.patience, before))
        return
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
