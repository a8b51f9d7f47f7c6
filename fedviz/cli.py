"""`python -m fedviz`: run the experiment from a terminal.

Contract (other tools depend on it): bad input prints one line `error: ...` on stderr and
exits 2; a run that fails (divergence, with the largest learning rate predicted to work, or
any unexpected error) or is interrupted prints one line `error: ...` and exits 1; warnings
go to stderr; with `--json` the last line of stdout is one JSON object
(`RunRecord.summary()`: valid JSON, non-finite numbers as null, `status` finished / failed /
interrupted, `error`, `rounds_completed`), printed for failed and interrupted runs too.
Never a traceback, whatever happens (a reader that closes stdout early ends the run quietly).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from fedviz.commandline import EXIT_BAD_INPUT, EXIT_FAILED
from fedviz.commandline import Parser as _Parser
from fedviz.commandline import say as _say
from fedviz.config import ENCODINGS, GRADIENT_MODES, KEY_LENGTHS, MASKS, OBFUSCATORS, Config, parse_number
from fedviz.errors import EMPTY, ConfigError, DataError, FedvizError, TrainingDiverged

if TYPE_CHECKING:
    from fedviz.events import Event
    from fedviz.protocol import Server


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    p = _Parser(
        prog="python -m fedviz",
        description="Federated linear regression on the diabetes data with a Paillier-encrypted "
        "ring of hospitals (the python-paillier post's protocol).",
    )
    p.add_argument(
        "--hospitals",
        default=str(defaults.hospitals),
        metavar="N",
        help=f"number of hospitals (default {defaults.hospitals})",
    )
    p.add_argument(
        "--key-length",
        default=str(defaults.key_length),
        metavar="BITS",
        help="Paillier modulus bits: "
        + ", ".join(map(str, KEY_LENGTHS))
        + f" (default {defaults.key_length})",
    )
    p.add_argument(
        "--learning-rate",
        default=str(defaults.learning_rate),
        metavar="ETA",
        help=f"gradient-descent step size (default {defaults.learning_rate})",
    )
    p.add_argument(
        "--rounds",
        default=str(defaults.rounds),
        metavar="R",
        help=f"rounds of local and of federated training (default {defaults.rounds})",
    )
    p.add_argument(
        "--seed",
        default=str(defaults.seed),
        metavar="S",
        help=f"seed of the shuffle and the test split (default {defaults.seed})",
    )
    p.add_argument(
        "--gradient",
        default=defaults.gradient,
        metavar="|".join(GRADIENT_MODES),
        help="sum (the post: delta.dot(X)) or mean (divided by the hospital's patients)",
    )
    p.add_argument(
        "--encoding",
        default=defaults.encoding,
        metavar="|".join(ENCODINGS),
        help="packed: many values per ciphertext (fast); per-value: one ciphertext per "
        "value (the post's way)",
    )
    p.add_argument(
        "--obfuscator",
        default=defaults.obfuscator,
        metavar="|".join(OBFUSCATORS),
        help="djn: short-exponent randomness (fast); standard: r**n for uniform r",
    )
    p.add_argument(
        "--cold-start",
        action="store_true",
        help="start federated training from zero instead of each hospital's local model",
    )
    p.add_argument(
        "--dataset",
        default=defaults.dataset,
        metavar="diabetes|breast-cancer",
        help="a data set that ships with scikit-learn: diabetes (the post's regression) or "
        "breast-cancer (569 tumours, benign or malignant: use --model logistic)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="FILE.csv",
        help="your own data instead: a CSV with a header row and numbers only (at most 20 MB); "
        "needs --target",
    )
    p.add_argument(
        "--site-data",
        default=None,
        nargs="+",
        metavar="FILE.csv",
        help="one CSV per hospital, in ring order (each hospital trains on its own file and holds out "
        "its own test rows, as on a pilot's sites); needs --target; sets the number of hospitals",
    )
    p.add_argument(
        "--test-fraction",
        default="0.2",
        metavar="F",
        help="with --site-data: the share of each site's rows held out as its own test rows (default 0.2)",
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="COLUMN",
        help="the CSV's column to predict: numeric (regression) or two-valued (classification)",
    )
    p.add_argument(
        "--split",
        default=defaults.split,
        metavar="contiguous|iid|by-feature COLUMN|label-skew",
        nargs="+",
        help="how rows are dealt to hospitals: contiguous (the post's blocks), iid (a fresh random "
        "deal), by-feature COLUMN (sorted by that feature: e.g. young and old hospitals), "
        "label-skew (each class spread in Dirichlet(alpha) shares; see --split-alpha)",
    )
    p.add_argument(
        "--split-alpha",
        default=f"{defaults.split_alpha:g}",
        metavar="A",
        help=f"the label-skew split's Dirichlet alpha, > 0; smaller is more skewed (default {defaults.split_alpha:g})",
    )
    p.add_argument(
        "--model",
        default=defaults.model,
        metavar="linear|logistic",
        help="linear regression on the squared error (the post) or logistic regression on the "
        "log-loss (two-valued targets); the ring carries either gradient",
    )
    p.add_argument(
        "--dp-epsilon",
        default=None,
        metavar="EPS",
        help="differential privacy for the federated phase: each hospital clips every patient's "
        "gradient and adds its share of Gaussian noise inside the encrypted sum, calibrated by an RDP "
        "accountant to (EPS, delta) over all federated rounds; implies --cold-start",
    )
    p.add_argument(
        "--dp-delta",
        default=f"{defaults.dp_delta:g}",
        metavar="D",
        help=f"delta of the DP guarantee, between 0 and 1 (default {defaults.dp_delta:g})",
    )
    p.add_argument(
        "--dp-clip",
        default=f"{defaults.dp_clip:g}",
        metavar="C",
        help=f"each patient's gradient is clipped to this L2 norm under DP (default {defaults.dp_clip:g})",
    )
    p.add_argument(
        "--masks",
        default=defaults.masks,
        metavar="|".join(MASKS),
        help="pairwise: every pair of hospitals agrees a seed (X25519) and adds cancelling masks "
        "before encrypting, so a prefix of the ring decrypts to noise",
    )
    p.add_argument(
        "--shuffle-ring",
        action="store_true",
        help="a public random ring order each round (spreads the ring's weak spot across hospitals)",
    )
    p.add_argument(
        "--workers",
        default="auto",
        metavar="K",
        help="processes drawing encryption randomness: auto (one per core) or 0 (inline)",
    )
    p.add_argument(
        "--engine",
        default="inprocess",
        metavar="inprocess|flower",
        help="inprocess: every party in this process (fast, the default); flower: each party "
        "its own process on a loopback Flower deployment (SuperLink, one SuperNode per hospital "
        "and one for the key holder)",
    )
    p.add_argument(
        "--topology",
        default="ring",
        metavar="ring|star",
        help="with --engine flower: ring (the post's protocol, sealed hops) or star "
        "(hospitals in parallel, the relay multiplies)",
    )
    p.add_argument(
        "--flower-short-waits",
        action="store_true",
        help="with --engine flower: shorten three of Flower 1.42's hard-coded waits in fedviz's own "
        "processes (off by default; see the README's Speed on Flower)",
    )
    p.add_argument(
        "--events",
        action="store_true",
        help="print every event as one JSON line on stdout as it happens",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the run summary as one JSON object on the last line of stdout",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="keep the run in the run store (see python -m fedviz runs list)",
    )
    return p


def config_from(args: argparse.Namespace) -> Config:
    """Turn the parsed strings into a validated Config (raises ConfigError)."""
    split = args.split if isinstance(args.split, list) else [args.split]
    if split[0] == "by-feature" and len(split) != 2:
        raise ConfigError(
            "split", " ".join(split), "by-feature followed by one feature name, e.g. by-feature age"
        )
    if split[0] != "by-feature" and len(split) != 1:
        raise ConfigError("split", " ".join(split), "one of contiguous, iid, by-feature COLUMN, label-skew")
    sites = tuple(args.site_data or ())
    if sites and args.data is not None:
        raise ConfigError(
            "data", args.data, "either --data (one file dealt out) or --site-data (a file per hospital)"
        )
    if (args.data is not None or sites) and args.target is None:
        raise ConfigError("target", "", "the CSV's column to predict (--target COLUMN)", EMPTY)
    if args.target is not None and args.data is None and not sites:
        raise ConfigError("data", "", "a CSV file (--data FILE.csv) for --target", EMPTY)
    hospitals = int(parse_number("hospitals", args.hospitals, int))
    if sites:
        if args.hospitals != str(Config().hospitals) and hospitals != len(sites):
            raise ConfigError("hospitals", args.hospitals, f"{len(sites)}, one per --site-data file")
        hospitals = len(sites)
        if len(sites) < 2:
            raise ConfigError("site_data", sites[0], "at least two files, one per hospital")
    return Config(
        hospitals=hospitals,
        **training_settings(args),
        shuffle_ring=args.shuffle_ring,
        dataset="sites" if sites else "csv" if args.data is not None else args.dataset,
        site_paths=sites,
        test_fraction=float(parse_number("test_fraction", args.test_fraction, float)) if sites else 0.2,
        data_path=args.data,
        target=args.target,
        split=split[0],
        split_feature=split[1] if len(split) == 2 else None,
        split_alpha=float(parse_number("split_alpha", args.split_alpha, float)),
    )


def training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the key and the descent, parsed from the flags' text as typed: shared
    by `python -m fedviz` and `pilot run`."""
    dp = args.dp_epsilon is not None
    return {
        "key_length": int(parse_number("key_length", args.key_length, int)),
        "learning_rate": float(parse_number("learning_rate", args.learning_rate, float)),
        "rounds": int(parse_number("rounds", args.rounds, int)),
        "seed": int(parse_number("seed", args.seed, int)),
        "gradient": args.gradient,
        "warm_start": not (args.cold_start or dp),
        "encoding": args.encoding,
        "obfuscator": args.obfuscator,
        "dp_epsilon": float(parse_number("dp_epsilon", args.dp_epsilon, float)) if dp else None,
        "dp_delta": float(parse_number("dp_delta", args.dp_delta, float)),
        "dp_clip": float(parse_number("dp_clip", args.dp_clip, float)),
        "masks": args.masks,
        "model": args.model,
    }


def compare_main(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """`python -m fedviz compare [the experiment's flags] [--protections LIST] [--sweep] [--json]`."""
    from fedviz.protections import compare

    parser = build_parser()
    assert isinstance(parser, _Parser)
    parser.prog = "python -m fedviz compare"
    parser.err = err
    parser.add_argument(
        "--protections",
        default="all",
        metavar="LIST",
        help="comma-separated: " + ", ".join(compare.PROTECTIONS) + " (default all)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help=f"also seconds per round at {', '.join(map(str, compare.SWEEP_HOSPITALS))} hospitals ({compare.SWEEP_ROUNDS} rounds each)",
    )
    args = parser.parse_args(list(argv))
    try:
        config = config_from(args)
        names = compare.parse_names(args.protections)
        _check_data(config)
    except (ConfigError, DataError) as exc:
        _say(err, f"error: {exc}")
        return EXIT_BAD_INPUT
    rows = []
    for row in compare.compare(config, names):
        rows.append(row)
        _say(
            err,
            f"{row.protection}: "
            + (f"cannot run here: {row.error}" if row.error else f"{row.round_s * 1000:.1f} ms a round"),
        )
    points = []
    if args.sweep:
        for point in compare.sweep(config, names):
            points.append(point)
            _say(
                err,
                f"sweep: {point.protection} at {point.hospitals} hospitals: {point.round_s * 1000:.1f} ms a round",
            )
    if args.json:
        import json

        out.write(json.dumps(compare.as_json(rows, points), allow_nan=False) + "\n")
    else:
        out.write(format_comparison(rows, compare.verdict(rows, points)) + "\n")
    out.flush()
    return 0


def format_comparison(rows: Sequence[object], said: Sequence[str]) -> str:
    """The comparison as a text table and the verdict."""
    from fedviz.protections.base import Measured

    lines = [
        f"{'protection':<26}{'mean score':>12}{'max error':>11}{'ms/round':>10}{'crypto ms':>11}{'bytes/hosp':>12}",
    ]
    for row in rows:
        assert isinstance(row, Measured)
        if row.error is not None:
            lines.append(f"{row.protection:<26}  cannot run here: {row.error}")
            continue
        mean = sum(row.scores) / len(row.scores) if row.scores else float("nan")
        lines.append(
            f"{row.protection:<26}{mean:>12.4g}{row.max_error:>11.2g}{row.round_s * 1000:>10.2f}"
            f"{row.crypto_s * 1000:>11.2f}{row.bytes_per_hospital:>12,}"
        )
    return "\n".join([*lines, "", *said])


def _engine(args: argparse.Namespace) -> tuple[str, str]:
    if args.engine not in ("inprocess", "flower"):
        raise ConfigError("engine", args.engine, "inprocess or flower")
    if args.topology not in ("ring", "star"):
        raise ConfigError("topology", args.topology, "ring or star")
    if args.engine == "inprocess" and args.flower_short_waits:
        raise ConfigError("flower_short_waits", True, "only with --engine flower")
    if args.engine == "inprocess" and args.topology != "ring":
        raise ConfigError(
            "topology", args.topology, "ring with the in-process engine (star needs --engine flower)"
        )
    return args.engine, args.topology


def _check_data(config: Config) -> None:
    """Read and deal the data now, so a bad file or split is bad input (exit 2), not a failed run."""
    if config.is_the_posts_data:
        return
    from fedviz.data import split_for

    split_for(config)


def _use_pool(text: str) -> bool:
    if text == "auto":
        return True
    if text.strip() == "0":
        return False
    raise ConfigError("workers", text, "auto or 0")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (never raises but SystemExit)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a `kill` ends the run like Ctrl-C: cleanly
    try:
        return _main(argv, out, err)
    except KeyboardInterrupt:
        _say(err, "error: interrupted")
        return EXIT_FAILED
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to tell it
        _discard_stdout()
        return EXIT_FAILED
    except Exception as exc:  # never a traceback, even for a bug
        _say(err, f"error: {_unexpected(exc)}")
        return EXIT_FAILED


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    parser = build_parser()
    assert isinstance(parser, _Parser)
    parser.err = err
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
        use_pool = _use_pool(args.workers)
        engine, topology = _engine(args)
        if engine == "flower":
            from fedviz.engines.flower.scope import refusal

            why = refusal(config)
            if why is not None:
                raise ConfigError("engine", "flower", why, advice=f"{why}: use --engine inprocess")
        _check_data(config)
    except (ConfigError, DataError) as exc:
        _say(err, f"error: {exc}")
        return EXIT_BAD_INPUT
    for warning in config.warnings():
        _say(err, f"warning: {warning}")
    from fedviz.store.cli import Saving

    saving = Saving.open(args.save, err)  # one line and exit 2 if the store cannot be written

    from fedviz.eventlog import to_line
    from fedviz.report.summary import RunRecord  # the heavy imports wait until input is valid

    record = RunRecord()
    holder: list[Server] = []  # the in-process run's key holder, for what --save keeps for the lab
    try:
        for event in _events(config, engine, topology, use_pool, args.flower_short_waits, holder):
            record.add(event)
            saving.add(event)
            if args.events:
                out.write(to_line(event) + "\n")
                out.flush()
    except TrainingDiverged as exc:
        record.fail(f"{exc}{_at_most(config)}")
    except FedvizError as exc:
        record.fail(str(exc))
    except KeyboardInterrupt:
        record.interrupt()
    except Exception as exc:
        record.fail(_unexpected(exc))
    if record.error is not None:
        _say(err, f"error: {record.error}")
    elif record.interrupted:
        _say(err, "error: interrupted")
    saved = saving.finish(record, holder[0] if holder else None)
    if args.json:
        out.write(record.to_json() + "\n")
    elif record.finished is not None:
        from fedviz.report.text import format_report

        out.write(format_report(record) + "\n")
    out.flush()
    return 0 if record.finished is not None and saved else EXIT_FAILED


def _events(
    config: Config,
    engine: str,
    topology: str,
    use_pool: bool,
    short_waits: bool = False,
    holder: list[Server] | None = None,
) -> Iterator[Event]:
    """The run's events; an in-process run's key holder is appended to `holder`."""
    if engine == "flower":
        from fedviz.engines.flower.engine import run as run_flower

        return run_flower(config, topology, short_waits=short_waits)  # type: ignore[arg-type]
    from fedviz.engines.inprocess import run
    from fedviz.protocol import Server

    def make() -> Server:
        server = Server(config.key_length, config.obfuscator)
        if holder is not None:
            holder.append(server)
        return server

    if use_pool:
        _start_pool_quietly()
    return run(config, pool="shared" if use_pool else None, server=make)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _at_most(config: Config) -> str:
    """The end of a divergence's error line: ", at most 0.016", the largest learning rate
    predicted to work; "" if that is not smaller than the configured one (or the search
    itself fails or is interrupted)."""
    from fedviz.advice import format_rate, largest_stable_learning_rate

    try:
        best = largest_stable_learning_rate(config)
    except (Exception, KeyboardInterrupt):
        return ""
    return f", at most {format_rate(best)}" if 0 < best < config.learning_rate else ""


def _unexpected(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (
        f"unexpected failure ({type(exc).__name__}: {text})"
        if text
        else f"unexpected failure ({type(exc).__name__})"
    )


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is still buffered
    does not fail again (Python's documented way to handle EPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _start_pool_quietly() -> None:
    """Start the shared pool's workers with Ctrl-C ignored. The fork server and every worker
    it forks keep that disposition, so Ctrl-C interrupts only this process, which says so in
    one line, instead of each idle worker printing a KeyboardInterrupt traceback. (A Ctrl-C
    within this moment is ignored.)"""
    from fedviz.crypto.pool import shared_pool, warm

    if threading.current_thread() is not threading.main_thread():
        warm(shared_pool())
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        warm(shared_pool())
    finally:
        signal.signal(signal.SIGINT, previous)
