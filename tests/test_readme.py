"""The README's command lines, run exactly as written (the pilot's are run across hosts by
tests/test_pilot_network.py; the two quick-start scripts are what CI runs; the benchmarks'
are measurements, not run here)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def commands() -> list[str]:
    """Every `.venv/bin/python -m fedviz …` line of the README's bash blocks outside "Run a pilot"."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Run a pilot")
    text = text[:start] + text[text.index("\n## ", start + 5) :]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(".venv/bin/python -m fedviz"):
                lines.append(line)
    return lines


def test_the_readme_documents_these_commands() -> None:
    assert commands() == [
        ".venv/bin/python -m fedviz",
        ".venv/bin/python -m fedviz --key-length 1024 --json",
        ".venv/bin/python -m fedviz --key-length 1024 --rounds 3 --save",
        ".venv/bin/python -m fedviz runs list",
        ".venv/bin/python -m fedviz --engine flower --key-length 1024 --rounds 1 --events",
        ".venv/bin/python -m fedviz --engine flower --topology star --key-length 1024 --rounds 1 --json",
    ]


def test_every_command_runs_as_written(tmp_path: Path) -> None:
    env = {**os.environ, "FEDVIZ_HOME": str(tmp_path / "store")}
    for command in commands():
        done = subprocess.run(
            shlex.split(command),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, command
        if command.endswith("runs list"):
            assert "finished" in done.stdout  # the run the command before saved
