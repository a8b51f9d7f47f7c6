"""The CLI contract: exit codes, one-line errors, warnings on stderr, the JSON last line."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedviz.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fedviz", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def in_process(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(args), out, err)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_json_reproduces_the_seed_table():
    done = cli("--key-length", "1024", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert [round(v, 2) for v in summary["local_mse"]] == [3933.78, 4176.48, 3795.95]
    assert summary["federated_mse"] == pytest.approx([3695.77, 3855.14, 3598.63], abs=0.02)
    assert summary["centralized_mse"] == pytest.approx(3946.78, abs=0.01)
    assert summary["optimum_mse"] == pytest.approx(4181.20, abs=0.01)
    assert summary["config"]["key_length"] == 1024 and summary["config"]["hospitals"] == 3
    assert {"keygen", "federated", "total"} <= set(summary["timings_s"])
    assert summary["timings_s"]["federated"] > 0
    assert done.stderr.startswith("warning: 1024-bit keys") and "Traceback" not in done.stderr


def test_readable_table_without_json():
    code, out, err = in_process("--key-length", "1024", "--rounds", "50", "--workers", "0")
    assert code == 0
    assert "Hospital 1        130      3933.78     3695.77" in out
    assert "least-squares optimum" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hospitals", "1"], "error: hospitals = 1 is not allowed: a whole number from 2 to 78"),
        (["--hospitals", "three"], "error: hospitals = 'three' is not allowed: a whole number"),
        (["--key-length", "1000"], "error: key_length = 1000 is not allowed: one of 1024, 2048, 3072, 4096"),
        (["--learning-rate", "-1"], "error: learning_rate = -1.0 is not allowed: a finite number greater"),
        (["--learning-rate", "inf"], "error: learning_rate = inf is not allowed"),
        (["--rounds", "0"], "error: rounds = 0 is not allowed: a whole number from 1 to 1000"),
        (["--seed", "-3"], "error: seed = -3 is not allowed"),
        (["--gradient", "median"], "error: gradient = 'median' is not allowed: one of sum, mean"),
        (["--encoding", "zip"], "error: encoding = 'zip' is not allowed"),
        (["--workers", "many"], "error: workers = 'many' is not allowed: auto or 0"),
        (["--frobnicate"], "error: unrecognized arguments: --frobnicate"),
        (["--rounds"], "error: argument --rounds: expected one argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    code, out, err = in_process(*args)
    assert code == 2
    assert err.startswith(message)
    assert err.count("\n") == 1 and out == ""


def test_bad_input_in_a_real_process_has_no_traceback():
    done = cli("--hospitals", "0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: hospitals = 0 is not allowed: a whole number from 2 to 78 (each hospital needs at "
        "least 5 of the 392 training patients)"
    ]


def test_divergence_is_one_line_and_exit_1():
    done = cli("--key-length", "1024", "--learning-rate", "5", "--json")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training diverged in federated round 1:")
    assert lines[-1].endswith("try a smaller learning rate than 5")
    assert "Traceback" not in done.stderr
    partial = json.loads(done.stdout.strip().splitlines()[-1])
    assert partial["rounds_completed"] == {"local": 50, "federated": 0}


def test_two_hospitals_warn_on_stderr():
    code, out, err = in_process("--hospitals", "2", "--key-length", "1024", "--rounds", "3", "--json")
    assert code == 0
    assert "warning: 2 hospitals are not private" in err
    assert json.loads(out.splitlines()[-1])["config"]["hospitals"] == 2


def test_help_exits_0():
    done = cli("--help")
    assert done.returncode == 0 and "--key-length" in done.stdout and "--encoding" in done.stdout
