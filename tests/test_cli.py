"""The CLI contract: exit codes, one-line errors, warnings on stderr, the JSON last line."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import default_sigint, sigint_ignored

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
        (["--hospitals", "1"], "error: hospitals = '1' is not allowed: a whole number from 2 to 78"),
        (["--hospitals", "three"], "error: hospitals = 'three' is not a number: use a whole number from 2"),
        (["--hospitals", ""], "error: hospitals is empty: enter a whole number from 2 to 78"),
        (
            ["--key-length", "1000"],
            "error: key_length = '1000' is not allowed: one of 1024, 2048, 3072, 4096",
        ),
        (["--learning-rate", "-1"], "error: learning_rate = '-1' is not allowed: a finite number greater"),
        (["--learning-rate", "inf"], "error: learning_rate = 'inf' is not a finite number: use a finite"),
        (["--learning-rate", "1e-400"], "error: learning_rate = '1e-400' is too small to represent"),
        (["--rounds", "0"], "error: rounds = '0' is not allowed: a whole number from 1 to 1000"),
        (["--rounds", "3.5"], "error: rounds = '3.5' is not a whole number: use a whole number from 1"),
        (["--seed", "1e3"], "error: seed = '1e3' must be written as a whole number: write 1000"),
        (["--seed", "-3"], "error: seed = '-3' is not allowed"),
        (["--gradient", "median"], "error: gradient = 'median' is not allowed: one of sum, mean"),
        (["--encoding", "zip"], "error: encoding = 'zip' is not allowed"),
        (["--workers", "many"], "error: workers = 'many' is not allowed: auto or 0"),
        (["--engine", "warp"], "error: engine = 'warp' is not allowed: inprocess or flower"),
        (
            ["--engine", "flower", "--topology", "mesh"],
            "error: topology = 'mesh' is not allowed: ring or star",
        ),
        (["--topology", "star"], "error: topology = 'star' is not allowed: ring with the in-process engine"),
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
        "error: hospitals = '0' is not allowed: a whole number from 2 to 78 (each hospital needs at "
        "least 5 of the 392 training patients)"
    ]


def strict_json(line: str) -> dict:
    """json.loads that refuses NaN and Infinity (not JSON, though Python writes them)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(line, parse_constant=refuse)


def test_divergence_is_one_line_and_exit_1():
    done = cli("--key-length", "1024", "--learning-rate", "5", "--json")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training diverged in federated round 1:")
    assert lines[-1].endswith("try a smaller learning rate than 5, at most 0.016")
    assert "Traceback" not in done.stderr
    partial = strict_json(done.stdout.strip().splitlines()[-1])
    assert partial["rounds_completed"] == {"local": 50, "federated": 0}
    assert partial["status"] == "failed" and partial["error"] == lines[-1].removeprefix("error: ")


def test_a_run_that_overflows_prints_valid_json_and_no_traceback():
    """The issue's command: local training overflows to inf in round 38."""
    done = cli("--key-length", "1024", "--learning-rate", "1e6", "--rounds", "50", "--json")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training diverged in local round 38:")
    assert lines[-1].endswith(", at most 0.016")
    assert len(lines) == 2 and lines[0].startswith("warning: 1024-bit keys")
    summary = strict_json(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed"
    assert summary["error"].startswith("training diverged in local round 38")
    assert summary["rounds_completed"] == {"local": 37, "federated": 0}
    assert summary["local_mse"] == [None, None, None]  # inf on the last completed round
    assert summary["optimum_mse"] == pytest.approx(4181.20, abs=0.01)


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch):
    import fedviz.engines.inprocess

    def broken(config, pool=None, server=None):
        yield from ()
        raise TypeError("unsupported operand\ntype(s)")

    monkeypatch.setattr(fedviz.engines.inprocess, "run", broken)
    code, out, err = in_process("--workers", "0", "--json")
    assert code == 1
    assert err == "error: unexpected failure (TypeError: unsupported operand type(s))\n"
    summary = strict_json(out.splitlines()[-1])
    assert summary["status"] == "failed" and summary["error"].startswith("unexpected failure (TypeError")

    code, out, err = in_process("--workers", "0")  # without --json: the line and nothing else
    assert (code, out) == (1, "") and err.count("\n") == 1


def test_an_error_outside_the_run_is_one_line_too(monkeypatch):
    import fedviz.cli

    def broken(args):
        raise RuntimeError("oops")

    monkeypatch.setattr(fedviz.cli, "config_from", broken)
    assert in_process("--workers", "0") == (1, "", "error: unexpected failure (RuntimeError: oops)\n")


def test_an_interrupted_run_says_so_in_one_line_with_json(monkeypatch):
    import fedviz.engines.inprocess

    real = fedviz.engines.inprocess.run

    def interrupted(config, pool=None, server=None):
        for event in real(config, pool=None, server=server):
            yield event
            if type(event).__name__ == "FederatedRound":
                raise KeyboardInterrupt

    monkeypatch.setattr(fedviz.engines.inprocess, "run", interrupted)
    code, out, err = in_process("--key-length", "1024", "--rounds", "5", "--workers", "0", "--json")
    assert code == 1
    assert err.splitlines()[-1] == "error: interrupted"
    summary = strict_json(out.splitlines()[-1])
    assert summary["status"] == "interrupted" and "error" not in summary
    assert summary["rounds_completed"] == {"local": 5, "federated": 1}


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_in_a_real_process_is_one_line_even_with_worker_processes():
    """Ctrl-C reaches the whole process group, the pool's workers included: none of them may
    print a traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--hospitals", "20", "--rounds", "1000", "--key-length", "3072", "--json"]
    with sigint_ignored():  # as when .ci/run is a background job of a non-interactive shell
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedviz", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            preexec_fn=default_sigint,
        )
    try:
        deadline = time.monotonic() + 60
        while not any(_children(c) for c in _children(proc.pid)):  # fork server and its workers
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # well into the run
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines() == ["error: interrupted"]
    summary = strict_json(out.strip().splitlines()[-1])
    assert summary["status"] == "interrupted"
    assert summary["rounds_completed"]["federated"] < 1000


def test_a_reader_that_closes_stdout_early_gets_no_traceback():
    """`python -m fedviz | head -c 10`: here the reader closes before anything is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedviz",
                "--key-length",
                "2048",
                "--rounds",
                "3",
                "--workers",
                "0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
        assert err == "" and proc.returncode == 1


def test_a_shell_pipe_into_head_is_clean():
    done = subprocess.run(
        f"'{sys.executable}' -m fedviz --key-length 2048 --rounds 3 --workers 0 | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.stdout == "3 hospital" and done.stderr == ""


def test_two_hospitals_warn_on_stderr():
    code, out, err = in_process("--hospitals", "2", "--key-length", "1024", "--rounds", "3", "--json")
    assert code == 0
    assert "warning: 2 hospitals are not private" in err
    assert json.loads(out.splitlines()[-1])["config"]["hospitals"] == 2


def test_help_exits_0():
    done = cli("--help")
    assert done.returncode == 0 and "--key-length" in done.stdout and "--encoding" in done.stdout


def test_events_are_json_lines_of_the_same_stream():
    from fedviz.eventlog import from_line
    from fedviz.events import FederatedRound, RunFinished, RunStarted

    code, out, _ = in_process("--key-length", "1024", "--rounds", "3", "--events", "--workers", "0", "--json")
    assert code == 0
    lines = out.strip().splitlines()
    events = [from_line(line) for line in lines[:-1]]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert [e.round for e in events if isinstance(e, FederatedRound)] == [1, 2, 3]
    assert all(json.loads(line)["event"] == type(e).__name__ for line, e in zip(lines, events, strict=False))
    summary = json.loads(lines[-1])
    assert summary["engine"] == "in-process" and summary["parties"] == []
    assert summary["federated_mse"] == list(events[-1].federated_mse)
