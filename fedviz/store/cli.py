"""`python -m fedviz runs list|show|delete|export` and the `--save` of `python -m fedviz`.

Contract (as `fedviz.cli`'s): bad input — an unknown run id, a store that is damaged, of a
newer schema or in a folder that cannot be written, a handout file that cannot be written,
a usage error — prints one line `error: ...` on stderr and exits 2; `--json` prints one
JSON object (or list) on stdout; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fedviz.commandline import EXIT_BAD_INPUT, EXIT_FAILED
from fedviz.commandline import Parser as _Parser
from fedviz.commandline import say as _say
from fedviz.events import Event
from fedviz.protocol import Server
from fedviz.report.summary import RunRecord
from fedviz.store.db import StoreError
from fedviz.store.keeping import Keeper
from fedviz.store.runs import RunInfo, RunStore, StoredRun, Timing


def build_parser(err: TextIO) -> _Parser:
    parser = _Parser(
        prog="python -m fedviz runs",
        description="The runs kept in the run store (FEDVIZ_HOME, default ~/.local/share/fedviz): "
        "`python -m fedviz ... --save` and the dashboard store them.",
    )
    parser.err = err
    commands = parser.add_subparsers(dest="command", required=True, metavar="list|show|delete|export")
    listing = commands.add_parser("list", help="the stored runs, newest first")
    listing.add_argument("--json", action="store_true", help="print them as one JSON list")
    show = commands.add_parser("show", help="one run's results")
    show.add_argument("id", help="the run's id (or the start of it)")
    show.add_argument("--json", action="store_true", help="print it as one JSON object")
    delete = commands.add_parser("delete", help="delete one run")
    delete.add_argument("id", help="the run's id (or the start of it)")
    export = commands.add_parser("export", help="write one run as a self-contained HTML handout")
    export.add_argument("id", help="the run's id (or the start of it)")
    export.add_argument("file", metavar="FILE.html", help="where to write it")
    for sub in (listing, show, delete, export):
        assert isinstance(sub, _Parser)
        sub.err = err
    return parser


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    folder: Path | str | None = None,
) -> int:
    """Run `python -m fedviz runs ...`; returns the exit status (never raises but SystemExit)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser(err).parse_args(list(sys.argv[2:] if argv is None else argv))
    store = RunStore(folder)
    try:
        return _command(store, args, out, err)
    except StoreError as exc:
        _say(err, f"error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say(err, "error: interrupted")
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as exc:  # never a traceback, even for a bug
        text = " ".join(str(exc).split())
        _say(err, f"error: unexpected failure ({type(exc).__name__}{': ' + text if text else ''})")
        return EXIT_FAILED


def _command(store: RunStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.command == "list":
        runs = store.list()
        if args.json:
            out.write(json.dumps([r.as_json() for r in runs], allow_nan=False) + "\n")
        else:
            out.write(format_list(runs, store) + "\n")
        return 0
    run_id = store.resolve(args.id)
    if args.command == "show":
        run = store.load(run_id)
        if args.json:
            out.write(json.dumps(show_json(run), allow_nan=False) + "\n")
        else:
            out.write(format_run(run) + "\n")
        return 0
    if args.command == "delete":
        store.delete(run_id)
        out.write(f"deleted run {run_id}\n")
        return 0
    from fedviz.store.handout import write_handout

    run = store.load(run_id)
    try:
        size = write_handout(run, args.file)
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        _say(err, f"error: cannot write {args.file} ({why}); choose a file in a folder you can write")
        return EXIT_BAD_INPUT
    out.write(f"wrote {args.file} ({size:,} bytes): run {run_id} as one HTML file that opens offline\n")
    return 0


# --------------------------------------------------------------------------- text


def _number(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if metric == "MSE" else f"{value:.4f}"


def format_list(runs: Sequence[RunInfo], store: RunStore) -> str:
    """One line per run: id, when, status, the settings, the final mean federated score."""
    if not runs:
        return f"No runs stored in {store.folder} yet (`python -m fedviz ... --save` stores one)."
    lines = [
        f"{'id':<23}{'stored':<18}{'status':<13}{'hosp.':>6}{'rounds':>7}{'key':>6}  {'mean federated':<18}label"
    ]
    for r in runs:
        c = r.config
        score = f"{_number(r.mean_federated, r.metric)} {r.metric}" if r.mean_federated is not None else "—"
        lines.append(
            f"{r.id:<23}{r.created.astimezone():%Y-%m-%d %H:%M}  {r.status:<13}{c.hospitals:>6}{c.rounds:>7}"
            f"{c.key_length:>6}  {score:<18}{('[pinned] ' if r.pinned else '') + r.label}"
        )
    return "\n".join(lines)


def _header(info: RunInfo) -> list[str]:
    lines = [
        f"run {info.id} · {info.status} · stored {info.created.astimezone():%Y-%m-%d %H:%M:%S}"
        + (f" · {info.label!r}" if info.label else "")
        + (" · pinned" if info.pinned else "")
    ]
    for s in info.sources:
        size = f"{s.bytes:,} bytes" if s.bytes is not None else "size unknown"
        lines.append(
            f"data file ({s.role}): {s.name}, {size}, sha256 {s.sha256 or 'unknown'} (its rows are not stored)"
        )
    meta = info.meta
    lines.append(
        f"stored: {meta.get('stored_bytes', 0):,} bytes ({meta.get('events', 0)} events; ring messages of "
        f"{meta.get('hop_rounds', 0)} rounds"
        + (
            f", {meta['dropped_rounds']} beyond the transcript's budget not kept"
            if meta.get("dropped_rounds")
            else ""
        )
        + ")"
    )
    return lines


def format_run(run: StoredRun) -> str:
    """The run's header, then the same report `python -m fedviz` prints (or how it ended)."""
    from fedviz.report.text import format_report

    record = run.fold().record
    lines = _header(run.info)
    if record.finished is not None:
        lines += ["", format_report(record)]
    else:
        done = record.summary()["rounds_completed"]
        lines.append(
            (
                "failed: " + (run.info.error or "")
                if run.info.status == "failed"
                else "stopped before it finished"
            )
            + f" (rounds completed: {done['local']} local, {done['federated']} federated)"
        )
    return "\n".join(lines)


def show_json(run: StoredRun) -> dict[str, object]:
    """The run as one JSON object: how it is stored, and `RunRecord.summary()`."""
    info = run.info.as_json()
    return {
        **{
            k: info[k]
            for k in ("id", "created", "status", "label", "pinned", "sources", "timing", "stored_bytes")
        },
        "summary": run.info.summary,
    }


# --------------------------------------------------------------------------- --save


class Saving:
    """`python -m fedviz ... --save`: watches the run's events (`add`) and stores the run when
    it has ended (`finish`). Without --save every call does nothing."""

    def __init__(self, store: RunStore | None, err: TextIO) -> None:
        self.keeper = Keeper(store) if store is not None else None
        self.err = err
        self.started = time.perf_counter()

    @classmethod
    def open(cls, enabled: bool, err: TextIO, folder: Path | str | None = None) -> Saving:
        """Check now, before the run, that the store can be written: if not, one line on `err`
        and `SystemExit(2)` (bad input, as for any other setting)."""
        if not enabled:
            return cls(None, err)
        store = RunStore(folder)
        try:
            store.check_writable()
        except StoreError as exc:
            _say(err, f"error: {exc}")
            raise SystemExit(EXIT_BAD_INPUT) from None
        return cls(store, err)

    def add(self, event: Event) -> None:
        if self.keeper is not None:
            self.keeper.add(event)

    def finish(self, record: RunRecord, server: Server | None = None) -> bool:
        """Store the ended run (its status and error from `record`, and what `server`, its key
        holder when it ran in this process, reads from the kept hops); False, with one line
        on `err`, if it could not be stored."""
        if self.keeper is None:
            return True
        status = "interrupted" if record.status == "running" else record.status
        timing = Timing(seconds=time.perf_counter() - self.started)
        masked = record.config is not None and record.config.masks == "pairwise"
        try:
            run_id = self.keeper.save(status, record.error, timing, server, masked)
        except (StoreError, ValueError) as exc:
            _say(self.err, f"error: the run was not saved: {exc}")
            return False
        _say(self.err, f"saved as run {run_id} (python -m fedviz runs show {run_id})")
        return True
