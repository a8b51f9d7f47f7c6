"""The run store: a stored run redraws what the live run drew; writers never lose or break a
run; no key and no uploaded row is ever stored; bad input is one sentence and exit 2."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from functools import cache
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fedviz.config import Config
from fedviz.engines.inprocess import run
from fedviz.eventlog import to_line
from fedviz.events import EncryptionProgress, Event, FederatedRound, RingHop, RunFinished
from fedviz.privacy.attacks import Observations
from fedviz.protocol import Server
from fedviz.report.headline import headline
from fedviz.report.summary import RunRecord
from fedviz.report.transcript import Transcript
from fedviz.store import Recorder, RunStore, StoreError, Timing, UnknownRun, db
from fedviz.store import cli as store_cli
from fedviz.store.handout import handout, write_handout
from fedviz.store.recorder import scrub
from fedviz.story import visibility
from fedviz.story import walkthrough as walk

ROOT = Path(__file__).resolve().parents[1]
SMALL = Config(key_length=1024, rounds=3)


@cache
def events_of(config: Config) -> tuple[Event, ...]:
    return tuple(run(config, pool=None))


def fold(
    events: tuple[Event, ...] | list[Event], budget: int | None = None
) -> tuple[RunRecord, Transcript, Observations]:
    record, transcript, observations = RunRecord(), Transcript(), Observations()
    if budget is not None:
        transcript.budget_bytes = budget
    for event in events:
        record.add(event)
        transcript.add(event)
        observations.add(event)
    return record, transcript, observations


def steps(record: RunRecord, transcript: Transcript, observations: Observations, round_: int) -> list[str]:
    view = walk.round_view(record, transcript, observations, round_)
    return [walk.step(view, stage).text for stage in walk.outline(view)]


def runs_cli(folder: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = store_cli.main(list(argv), out, err, folder=folder)
    except SystemExit as exc:  # a usage error, as argparse ends it
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def one_sentence(err: str, words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert words in err, err
    assert "Traceback" not in err


def everything_stored(folder: Path) -> str:
    """Every value of every table, blobs decompressed, as one text (what a reader of the file
    could get out of it)."""
    parts = []
    with sqlite3.connect(folder / db.DB_NAME) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(zlib.decompress(value).decode())
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def raw_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


# --------------------------------------------------------------------------- round trip


def test_a_stored_run_folds_back_into_what_the_live_run_drew(tmp_path: Path) -> None:
    events = events_of(SMALL)
    live = fold(events)
    recorder = Recorder()
    for event in events:  # as a session's job feeds its consumers
        recorder.add(event)
    store = RunStore(tmp_path)
    run_id = store.save(recorder, "finished", label="round trip", timing=Timing(1.5, 0.25, 0.5))

    stored = store.load(run_id)
    record, transcript, observations = stored.fold()
    assert record.summary() == live[0].summary()
    assert record.to_json() == live[0].to_json()
    assert (transcript.n, transcript.keys, transcript.latest) == (live[1].n, live[1].keys, live[1].latest)
    assert transcript.rounds == live[1].rounds and transcript.dropped == live[1].dropped == 0
    assert observations.hospitals == live[2].hospitals and observations.orders == live[2].orders
    for name in ("gradients", "sent", "averages"):
        assert np.array_equal(np.array(getattr(observations, name)), np.array(getattr(live[2], name)))
    for round_ in walk.kept_rounds(live[1]):  # every page draws from these three
        assert steps(record, transcript, observations, round_) == steps(*live, round_)

    info = stored.info
    assert (
        re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id)
        and info.id == run_id
        and info.status == "finished"
        and info.label == "round trip"
    )
    assert info.timing == Timing(1.5, 0.25, 0.5) and info.error is None and not info.pinned
    assert info.config == SMALL and info.sources == ()
    finished = live[0].finished
    assert finished is not None
    assert info.mean_federated == pytest.approx(float(np.mean(finished.federated_mse)))
    assert [r.id for r in store.list()] == [run_id]
    assert info.meta["events"] == len([e for e in events if not isinstance(e, EncryptionProgress)])


def test_ring_hops_are_kept_as_the_transcript_keeps_them(tmp_path: Path) -> None:
    events = events_of(Config(key_length=1024, rounds=6))
    per_round = sum(e.nbytes for e in events if isinstance(e, RingHop) and e.round == 1)
    budget = 2 * per_round  # the first two rounds fit, then only the latest is kept
    live = fold(events, budget)
    assert live[1].dropped == 4

    kept = Recorder.of(events, budget)
    assert sorted({e.round for e in kept if isinstance(e, RingHop)}) == [1, 2, 6]
    assert kept.dropped == 4
    assert [e for e in kept if not isinstance(e, RingHop)] == [
        e for e in events if not isinstance(e, RingHop)
    ]

    store = RunStore(tmp_path)
    stored = store.load(store.save(kept, "finished"))
    record, transcript, observations = stored.fold()
    assert stored.info.meta["hop_rounds"] == 3 and stored.info.meta["dropped_rounds"] == 4
    assert transcript.rounds == live[1].rounds and transcript.latest == live[1].latest
    assert transcript.dropped == live[1].dropped
    assert walk.kept_rounds(transcript) == walk.kept_rounds(live[1]) == [1, 2, 6]
    for round_ in (1, 2, 6):
        assert steps(record, transcript, observations, round_) == steps(*live, round_)


def test_stopped_and_failed_runs_are_stored_as_they_ended(tmp_path: Path) -> None:
    events = list(events_of(SMALL))
    second = next(i for i, e in enumerate(events) if isinstance(e, FederatedRound) and e.round == 2)
    cut = [*events[: second + 1], next(e for e in events if isinstance(e, RingHop) and e.round == 3)]
    cut.insert(3, EncryptionProgress(1, 1, 3, 0.5))  # a live note: never stored
    store = RunStore(tmp_path)

    stopped = store.load(store.save(cut, "interrupted"))
    record, transcript, _ = stopped.fold()
    assert record.status == "interrupted" and stopped.info.status == "interrupted"
    assert record.summary()["rounds_completed"] == {"local": 3, "federated": 2}
    assert transcript.last_round == 2  # round 3's first hop was in flight: not kept
    assert not any(isinstance(e, EncryptionProgress) for e in stopped.events)

    failed = store.load(store.save(cut, "failed", "the learning rate diverged"))
    assert failed.fold().record.status == "failed" and failed.info.error == "the learning rate diverged"
    assert failed.info.summary["error"] == "the learning rate diverged"

    with pytest.raises(ValueError, match="not finished"):
        store.save(cut, "finished")
    with pytest.raises(ValueError, match="never started"):
        store.save(events[1:], "failed", "no data")
    with pytest.raises(ValueError, match="status"):
        store.save(events, "running")  # type: ignore[arg-type]
    assert len(store.list()) == 2


def test_labels_pins_prefixes_and_deletion(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first = store.save(events_of(SMALL), "finished")
    second = store.save(events_of(SMALL), "finished")
    assert [r.id for r in store.list()] == [second, first]  # newest first
    store.set_label(first, "the post's settings")
    store.set_pinned(first, True)
    info = store.info(first)
    assert info.label == "the post's settings" and info.pinned
    assert store.resolve(first) == first and store.resolve(first[:-2]) == first
    with pytest.raises(UnknownRun, match="more than one"):
        store.resolve(first[:8])
    store.delete(first)
    assert [r.id for r in store.list()] == [second]
    with pytest.raises(UnknownRun, match=second):  # names the newest
        store.load(first)


def test_the_file_says_what_it_is_and_which_schema(tmp_path: Path) -> None:
    RunStore(tmp_path).save(events_of(SMALL), "finished")
    with sqlite3.connect(tmp_path / db.DB_NAME) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == db.APPLICATION_ID
        assert (
            connection.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION == len(db.MIGRATIONS)
        )
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDVIZ_HOME", str(tmp_path / "here"))
    assert db.home() == tmp_path / "here" and RunStore().path == tmp_path / "here" / "runs.sqlite3"
    monkeypatch.delenv("FEDVIZ_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert db.home() == tmp_path / "xdg" / "fedviz"
    monkeypatch.delenv("XDG_DATA_HOME")
    if sys.platform.startswith("linux"):
        assert db.home() == Path.home() / ".local" / "share" / "fedviz"


# --------------------------------------------------------------------------- writers


def _lines_file(tmp_path: Path, config: Config) -> Path:
    path = tmp_path / f"events-{config.key_length}-{config.rounds}.jsonl"
    path.write_text("\n".join(to_line(e) for e in events_of(config)))
    return path


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


SAVER = """
import sys, time
from pathlib import Path
from fedviz.eventlog import from_line
from fedviz.store import RunStore
folder, lines, name, go, count = sys.argv[1:6]
events = [from_line(line) for line in Path(lines).read_text().splitlines()]
store = RunStore(folder)
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.002)
for i in range(int(count)):
    store.save(events, "finished", label=f"{name}-{i}")
    if i == 0:
        print("saving", flush=True)
"""


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    lines, go, folder = _lines_file(tmp_path, SMALL), tmp_path / "go", tmp_path / "store"
    children = [_child(SAVER, str(folder), str(lines), name, str(go), "50") for name in ("a", "b")]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    go.touch()  # both start together, on a store neither has created yet
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err

    store = RunStore(folder)
    listed = store.list()
    assert len(listed) == 100 and len({r.id for r in listed}) == 100
    assert sorted(r.label for r in listed) == sorted(f"{n}-{i}" for n in "ab" for i in range(50))
    expected = RunRecord()
    for event in events_of(SMALL):
        expected.add(event)
    for info in listed:
        assert store.load(info.id).fold().record.summary() == expected.summary()


DIES_IN_THE_TRANSACTION = """
import contextlib, os, signal, sys
from pathlib import Path
from fedviz.eventlog import from_line
from fedviz.store import RunStore, db
original = db.write

@contextlib.contextmanager
def dying(connection, path):
    with original(connection, path) as open_transaction:
        yield open_transaction
        os.kill(os.getpid(), signal.SIGKILL)  # the row is inserted, the commit never comes

db.write = dying
folder, lines = sys.argv[1:3]
RunStore(folder).save([from_line(l) for l in Path(lines).read_text().splitlines()], "finished", label="half")
"""


def test_a_process_killed_mid_save_leaves_no_broken_run(tmp_path: Path) -> None:
    big = Config()  # the defaults: 2048-bit keys, 50 rounds (~120 kB a run)
    lines, go, folder = _lines_file(tmp_path, big), tmp_path / "go", tmp_path / "store"
    go.touch()
    store = RunStore(folder)
    store.save(events_of(big), "finished", label="before")

    child = _child(DIES_IN_THE_TRANSACTION, str(folder), str(lines))
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL

    rng = random.Random()
    for attempt in range(2):  # saving in a loop, killed at a random moment
        child = _child(SAVER, str(folder), str(lines), f"loop{attempt}", str(go), "1000000")
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert child.stdout.readline() == "saving\n"
        child.stdout.close()
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.stderr is not None and child.stderr.read() == ""
        child.stderr.close()

    listed = store.list()
    assert "half" not in {r.label for r in listed}
    assert len(listed) >= 3
    for info in listed:
        assert store.load(info.id).fold().record.finished is not None
    with sqlite3.connect(folder / db.DB_NAME) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.save(events_of(SMALL), "finished")  # still writable


# --------------------------------------------------------------------------- never stored


def test_no_private_key_is_ever_stored(tmp_path: Path) -> None:
    holder: list[Server] = []

    def make() -> Server:
        holder.append(Server(1024, "djn"))
        return holder[0]

    events = list(run(Config(key_length=1024, rounds=2), pool=None, server=make))
    secret = holder[0].export_for_own_node()
    p, q = (int.from_bytes(secret[k], "big") for k in ("p", "q"))
    assert p * q == holder[0].public.n
    store = RunStore(tmp_path)
    store.save(events, "finished")
    text, raw = everything_stored(tmp_path), raw_bytes(tmp_path)
    assert str(p * q) in text  # the public modulus is there: the search does find big numbers
    for prime in (p, q):
        for form in (str(prime), f"{prime:x}", f"{prime:X}", str(prime)[:40]):
            assert form not in text and form.encode() not in raw
        assert secret["p" if prime == p else "q"] not in raw


def test_an_uploaded_csvs_rows_are_not_stored(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = [
        ",".join(f"{rng.uniform(10, 99):.10f}" for _ in range(3)) + f",{rng.uniform(100, 300):.10f}"
        for _ in range(90)
    ]
    upload = tmp_path / "upload-0a1b" / "patients.csv"
    upload.parent.mkdir()
    upload.write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
    config = Config(dataset="csv", data_path=str(upload), target="y", key_length=1024, rounds=2)
    events = events_of(config)
    folder = tmp_path / "store"
    store = RunStore(folder)
    stored = store.load(store.save(events, "finished"))

    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    [source] = stored.info.sources
    assert (source.role, source.name, source.bytes, source.sha256) == (
        "data",
        "patients.csv",
        upload.stat().st_size,
        digest,
    )
    assert (
        stored.config.data_path
        == f"not stored: patients.csv ({upload.stat().st_size:,} bytes, sha256 {digest})"
    )
    live = fold(events)[0].summary()
    redrawn = stored.fold().record.summary()
    assert redrawn["federated_mse"] == live["federated_mse"] and redrawn["config"]["data_path"] != str(upload)

    text, raw = everything_stored(folder), raw_bytes(folder)
    assert str(upload.parent) not in text
    for row in rows:
        assert row not in text
        for value in row.split(","):
            assert value not in text and value.encode() not in raw


def test_each_sites_file_is_replaced_by_its_name_size_and_hash(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"site{i + 1}.csv"
        path.write_text(f"a,y\n{i},1\n")
        paths.append(str(path))
    config = Config(dataset="sites", site_paths=(*paths,), target="y", hospitals=3)
    stored, sources = scrub(config)
    assert [s.role for s in sources] == ["site 1", "site 2", "site 3"]
    assert [s.name for s in sources] == ["site1.csv", "site2.csv", "site3.csv"]
    assert all(str(tmp_path) not in p and p.startswith("not stored: site") for p in stored.site_paths)
    assert sources[0].sha256 == hashlib.sha256(Path(paths[0]).read_bytes()).hexdigest()
    assert scrub(stored) == (stored, ())  # a stored config is never described twice
    gone = scrub(Config(dataset="csv", data_path=str(tmp_path / "deleted.csv"), target="y"))[0]
    assert gone.data_path == "not stored: deleted.csv (size unknown)"


# --------------------------------------------------------------------------- handout


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [
            (tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "action", "data")
        ]


def test_the_handout_opens_offline_and_says_what_the_pages_say(tmp_path: Path) -> None:
    events = events_of(SMALL)
    store = RunStore(tmp_path / "store")
    run_id = store.save(events, "finished", label="for the class")
    code, out, err = runs_cli(tmp_path / "store", "export", run_id[:-3], str(tmp_path / "run.html"))
    assert code == 0 and err == "" and "opens offline" in out
    page = (tmp_path / "run.html").read_text()

    links = _Links()
    links.feed(page)
    assert [link for link in links.links if "http" in link[2] or link[2].startswith("//")] == []
    assert "link" not in links.tags and "iframe" not in links.tags and "img" not in links.tags
    assert "plotly.js v" in page and page.count("plotly.js v") == 1  # inlined, once
    assert page.count('class="plotly-graph-div"') == 2

    record, transcript, observations = fold(events)
    finished = record.finished
    assert finished is not None
    said = headline(finished.local_mse, finished.federated_mse, 2, observations.averages, SMALL.learning_rate)
    assert (
        f'Federated test MSE, mean of 3 hospitals</div><div class="v">{said.mean_federated:.{said.digits}f}'
        in page
    )
    assert "for the class" in page and "Learning rate" in page
    for column in visibility.COLUMNS:
        assert f"<th>{column.replace(chr(39), '&#x27;')}</th>" in page
    for row in visibility.table(3):
        assert f"<td>{row.party}</td>" in page
    view = walk.round_view(record, transcript, observations, 1)
    stages = walk.outline(view)
    assert len(stages) == 6
    for stage in stages:
        assert escape(walk.step(view, stage).title) in page
    assert "Measured on this run: Hospital 1 computes 3·ā − g₁" in page


def test_the_handout_carries_the_remedies_lab_when_measured(tmp_path: Path) -> None:
    from fedviz.privacy import remedies
    from fedviz.privacy.table import measured_table

    base = Config(key_length=1024, rounds=2, hospitals=3)
    table = measured_table(remedies.measure(base), run_mean=3716.5)
    assert [r[""] for r in table[:4]] == list(remedies.THREATS)
    assert list(table[0]) == ["", "none", "masks", "DP ε=1", "masks + DP ε=1"]
    store = RunStore(tmp_path)
    run_id = store.save(events_of(SMALL), "finished")
    store.set_remedies(run_id, table)
    stored = store.load(run_id)
    assert stored.info.has_remedies and stored.remedies == tuple(table)
    page = handout(stored)
    assert "Threats × remedies" in page and "<th>masks + DP ε=1</th>" in page


def test_a_stopped_run_still_makes_a_handout(tmp_path: Path) -> None:
    events = list(events_of(SMALL))
    cut = events[: next(i for i, e in enumerate(events) if isinstance(e, RunFinished))]
    store = RunStore(tmp_path)
    stored = store.load(store.save(cut, "interrupted"))
    size = write_handout(stored, tmp_path / "stopped.html")
    page = (tmp_path / "stopped.html").read_text()
    assert size == len(page.encode()) and "Stopped after 3 federated rounds" in page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fedviz-handout")] == []
    code, out, _ = runs_cli(tmp_path, "show", stored.id)
    assert code == 0 and "stopped before it finished (rounds completed: 3 local, 3 federated)" in out


# --------------------------------------------------------------------------- the command line


def test_runs_list_show_delete(tmp_path: Path) -> None:
    code, out, err = runs_cli(tmp_path, "list")
    assert code == 0 and "No runs stored" in out and not (tmp_path / db.DB_NAME).exists()
    assert runs_cli(tmp_path, "list", "--json")[1] == "[]\n"
    store = RunStore(tmp_path)
    run_id = store.save(events_of(SMALL), "finished", label="first")

    code, out, err = runs_cli(tmp_path, "list")
    assert code == 0 and err == "" and run_id in out and "first" in out and "finished" in out
    [listed] = json.loads(runs_cli(tmp_path, "list", "--json")[1])
    assert listed["id"] == run_id and listed["config"]["rounds"] == 3 and listed["status"] == "finished"

    code, out, err = runs_cli(tmp_path, "show", run_id)
    assert code == 0 and f"run {run_id} · finished" in out and "Test MSE" in out and "Ring traffic" in out
    shown = json.loads(runs_cli(tmp_path, "show", run_id, "--json")[1])
    assert shown["id"] == run_id and shown["summary"] == fold(events_of(SMALL))[0].summary()

    code, out, err = runs_cli(tmp_path, "delete", run_id)
    assert code == 0 and out == f"deleted run {run_id}\n"
    assert store.list() == []


def test_save_flag_stores_the_run_it_watched(tmp_path: Path) -> None:
    err = io.StringIO()
    saving = store_cli.Saving.open(True, err, folder=tmp_path)
    record = RunRecord()
    for event in events_of(SMALL):  # fedviz.cli's loop
        record.add(event)
        saving.add(event)
    assert saving.finish(record)
    [info] = RunStore(tmp_path).list()
    assert err.getvalue() == f"saved as run {info.id} (python -m fedviz runs show {info.id})\n"
    assert info.timing.seconds > 0

    off = store_cli.Saving.open(False, err, folder=tmp_path / "never")
    off.add(events_of(SMALL)[0])
    assert off.finish(record) and not (tmp_path / "never").exists()


def test_bad_input_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    # an unknown run id
    store = RunStore(tmp_path / "ok")
    known = store.save(events_of(SMALL), "finished")
    code, _, err = runs_cli(tmp_path / "ok", "show", "20200101-000000-abcdef")
    assert code == 2
    one_sentence(err, f"no run '20200101-000000-abcdef' in {store.path}; the newest stored: {known}")
    code, _, err = runs_cli(tmp_path / "empty", "delete", "nope")
    assert code == 2
    one_sentence(err, "no runs are stored in")

    # a damaged file, and another program's database
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / db.DB_NAME).write_bytes(b"this is not a database at all " * 200)
    for argv in (("list",), ("show", known)):
        code, _, err = runs_cli(corrupt, *argv)
        assert code == 2
        one_sentence(err, "is not a fedviz run store (or is damaged): file is not a database; move it away")
    with pytest.raises(StoreError, match="not a fedviz run store"):
        RunStore(corrupt).save(events_of(SMALL), "finished")
    assert (corrupt / db.DB_NAME).read_bytes().startswith(b"this is not a database")  # untouched
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / db.DB_NAME) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    code, _, err = runs_cli(other, "list")
    assert code == 2
    one_sentence(err, "it belongs to another program")

    # a newer schema
    with sqlite3.connect(store.path) as connection:
        connection.execute("PRAGMA user_version = 99")
    code, _, err = runs_cli(tmp_path / "ok", "list")
    assert code == 2
    one_sentence(err, f"was written by a newer fedviz (schema 99, this one reads up to {db.SCHEMA_VERSION})")

    # an unwritable folder (under a file: refused even for root)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err_stream = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        store_cli.Saving.open(True, err_stream, folder=blocker / "fedviz")
    assert exited.value.code == 2
    one_sentence(
        err_stream.getvalue(), f"cannot write the run store in {blocker / 'fedviz'} (not a directory)"
    )
    with pytest.raises(StoreError, match="set FEDVIZ_HOME to a folder you can write"):
        RunStore(blocker / "fedviz").save(events_of(SMALL), "finished")

    # a handout that cannot be written, and a usage error
    good = RunStore(tmp_path / "good")
    run_id = good.save(events_of(SMALL), "finished")
    code, _, err = runs_cli(tmp_path / "good", "export", run_id, str(blocker / "run.html"))
    assert code == 2
    one_sentence(err, f"cannot write {blocker / 'run.html'} (not a directory)")
    code, _, err = runs_cli(tmp_path / "good", "frobnicate")
    assert code == 2
    one_sentence(err, "invalid choice")


def test_a_damaged_run_is_an_error_not_a_wrong_picture(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.save(events_of(SMALL), "finished")
    with sqlite3.connect(store.path) as connection:
        blob = connection.execute("SELECT events FROM runs").fetchone()[0]
        lines = zlib.decompress(blob).replace(b'"round":1', b'"round":7', 1)
        connection.execute("UPDATE runs SET events = ?", (zlib.compress(lines),))
    code, _, err = runs_cli(tmp_path, "show", run_id)
    assert code == 2
    one_sentence(err, f"run {run_id} in {store.path} is damaged (its events do not match their checksum)")


def test_the_cli_saves_a_run_and_lists_it(tmp_path, monkeypatch) -> None:
    import io

    from fedviz.cli import main
    from fedviz.store.cli import main as runs

    monkeypatch.setenv("FEDVIZ_HOME", str(tmp_path / "home"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["--key-length", "1024", "--rounds", "2", "--save", "--json"], out, err) == 0
    assert "saved as run " in err.getvalue()
    listed = io.StringIO()
    assert runs(["list", "--json"], listed, io.StringIO()) == 0
    (stored,) = json.loads(listed.getvalue())
    assert stored["status"] == "finished"
    assert stored["id"] in err.getvalue()
    # what the key holder read from the kept hops is kept for the lab: the same partial sums
    run = RunStore(tmp_path / "home").load(stored["id"])
    assert run.openings is not None and run.openings.rounds == [1, 2]
    record, transcript, observations = run.fold()
    hop = transcript.hops(1)[0]  # hospital 1 -> hospital 2: hospital 1's own gradient
    from fedviz.crypto.encoding import make_codec

    codec = make_codec(run.config.encoding, transcript.n, len(record.features), run.config.hospitals)
    opened = codec.decode_sum(run.openings.open_hop(hop), hop.contributions)
    assert np.allclose(opened, observations.sent[0][0], rtol=0, atol=1e-9)
