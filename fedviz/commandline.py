"""What every `python -m fedviz` command shares: its exit statuses, an argparse that says a
usage error in one line, and writing one line to a stream that may be closed.

Invariants: bad input exits with `EXIT_BAD_INPUT` after one line on stderr (never a usage
dump or a traceback); a run that failed exits with `EXIT_FAILED`.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, TextIO

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on `err` (stderr by default) and exit status 2.
    Subcommands' parsers are of this class too (argparse's default)."""

    err: TextIO | None = None

    def error(self, message: str) -> NoReturn:
        (self.err or sys.stderr).write(f"error: {message} (see --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def say(stream: TextIO, line: str) -> None:
    """One line on `stream`, at once; a closed stream is not worth a traceback."""
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "Parser", "say"]
