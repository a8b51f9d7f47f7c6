"""`python -m fedviz`: run the experiment from a terminal.

Contract (other tools depend on it): bad input prints one line `error: ...` on stderr and
exits 2; a failed run (divergence) prints one line `error: ...` and exits 1; warnings go to
stderr; with `--json` the last line of stdout is one JSON object (`RunRecord.summary()`).
Never a traceback for anything the user can cause.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from fedviz.config import ENCODINGS, GRADIENT_MODES, KEY_LENGTHS, OBFUSCATORS, Config, parse_number
from fedviz.errors import ConfigError, FedvizError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    err: TextIO | None = None

    def error(self, message: str) -> NoReturn:
        (self.err or sys.stderr).write(f"error: {message} (see --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


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
        "--workers",
        default="auto",
        metavar="K",
        help="processes drawing encryption randomness: auto (one per core) or 0 (inline)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the run summary as one JSON object on the last line of stdout",
    )
    return p


def config_from(args: argparse.Namespace) -> Config:
    """Turn the parsed strings into a validated Config (raises ConfigError)."""
    return Config(
        hospitals=int(parse_number("hospitals", args.hospitals, int)),
        key_length=int(parse_number("key_length", args.key_length, int)),
        learning_rate=float(parse_number("learning_rate", args.learning_rate, float)),
        rounds=int(parse_number("rounds", args.rounds, int)),
        seed=int(parse_number("seed", args.seed, int)),
        gradient=args.gradient,
        warm_start=not args.cold_start,
        encoding=args.encoding,
        obfuscator=args.obfuscator,
    )


def _use_pool(text: str) -> bool:
    if text == "auto":
        return True
    if text.strip() == "0":
        return False
    raise ConfigError("workers", text, "auto or 0")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    assert isinstance(parser, _Parser)
    parser.err = err
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
        use_pool = _use_pool(args.workers)
    except ConfigError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    for warning in config.warnings():
        err.write(f"warning: {warning}\n")

    from fedviz.engines.inprocess import run
    from fedviz.report.summary import RunRecord  # the heavy imports wait until input is valid

    record = RunRecord()
    try:
        for event in run(config, pool="shared" if use_pool else None):
            record.add(event)
    except FedvizError as exc:
        err.write(f"error: {exc}\n")
        if args.json:
            out.write(record.to_json() + "\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return EXIT_FAILED
    if args.json:
        out.write(record.to_json() + "\n")
    else:
        out.write(format_report(record) + "\n")
    return 0


def format_report(record: object) -> str:
    """The seed post's table, with the plaintext yardsticks and timings beside it."""
    from fedviz.report.summary import RunRecord

    assert isinstance(record, RunRecord) and record.config is not None and record.finished is not None
    c, f = record.config, record.finished
    lines = [
        f"{c.hospitals} hospitals, {c.key_length}-bit Paillier keys ({c.encoding}, {c.obfuscator} "
        f"randomness), eta {c.learning_rate:g}, {c.rounds} rounds, seed {c.seed}, {c.gradient} gradient, "
        f"{'warm' if c.warm_start else 'cold'} start",
        "",
        "Test MSE (50 held-out patients)",
        f"{'hospital':<12}{'patients':>9}{'local only':>13}{'federated':>12}{'improvement':>13}",
    ]
    for row in record.table():
        lines.append(
            f"{row['hospital']:<12}{row['patients']:>9}{row['local_mse']:>13.2f}"
            f"{row['federated_mse']:>12.2f}{row['improvement']:>13.2f}"
        )
    t = f.timings
    lines += [
        "",
        "Plaintext yardsticks (no privacy, what pooling all data would give):",
        f"  gradient descent on the pooled data, same eta and rounds: {f.centralized_mse:.2f}",
        f"  least-squares optimum on the pooled data:                 {f.optimum_mse:.2f}",
        "",
        f"Ring traffic: {f.bytes_per_round:,} bytes of ciphertext per round",
        f"Time: keygen {t.keygen:.3f} s, federated {t.federated:.3f} s (encrypt {t.encrypt:.3f}, "
        f"add {t.add:.3f}, decrypt {t.decrypt:.3f}), total {t.total:.3f} s",
    ]
    return "\n".join(lines)
