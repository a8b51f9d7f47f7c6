"""Runs as background jobs: same numbers as the generator, cancellation that frees the CPU,
failures in words, and nothing left running."""

from __future__ import annotations

import gc
import os
import time

import pytest
from conftest import alive, of_type, wait_until

from fedviz.config import Config
from fedviz.crypto.pool import run_pool, terminate, worker_pids
from fedviz.engines.background import Job, Progress, progress_after
from fedviz.events import EncryptionProgress, FederatedRound, LocalRound, RunFinished
from fedviz.report.summary import RunRecord

HEAVY = Config(key_length=4096, hospitals=40, encoding="per-value", obfuscator="standard", rounds=3)
"""Minutes of obfuscator work: long enough that a test can cancel it mid-round."""


def test_a_job_gives_the_generators_numbers(events) -> None:
    config = Config(key_length=1024)
    record = RunRecord()
    job = Job(config, [record.add]).start()
    assert job.join(60)
    assert job.status == "finished" and job.error is None
    expected = of_type(events(), RunFinished)[0]
    assert record.finished is not None
    assert record.finished.local_mse == expected.local_mse
    assert record.finished.federated_mse == expected.federated_mse
    assert job.progress.fraction == 1.0
    assert job.server is not None and job.server.public.n.bit_length() == 1024
    assert job.first_point_s is not None and 0 < job.first_point_s <= job.elapsed
    assert job.worker_pids() == []  # its pool ended with it


def test_cancel_kills_the_running_work_at_once() -> None:
    record = RunRecord()
    job = Job(HEAVY, [record.add]).start()
    assert wait_until(lambda: len(job.worker_pids()) >= 1 and job.progress.where.startswith("federated"), 60)
    pids = job.worker_pids()
    started = time.monotonic()
    job.cancel("Stop was pressed")
    assert job.join(10)
    assert time.monotonic() - started < 5
    assert job.status == "cancelled" and job.reason == "Stop was pressed" and job.error is None
    assert not [pid for pid in pids if alive(pid)], "workers still running after cancel"
    assert record.finished is None and record.federated == []
    job.cancel("again")  # harmless once ended
    assert job.reason == "Stop was pressed"


def test_a_slow_round_reports_progress_inside_the_round() -> None:
    seen: list[EncryptionProgress] = []
    job = Job(HEAVY, [lambda e: seen.append(e) if isinstance(e, EncryptionProgress) else None])
    job.start()
    assert wait_until(lambda: len(seen) >= 2, 60)
    assert "encryption randomness ready for" in job.progress.detail
    job.cancel("test over")
    assert job.join(10)
    assert all(e.round == 1 and e.hospitals == HEAVY.hospitals and 0 <= e.ready <= 40 for e in seen)
    assert seen[-1].waited_s > seen[0].waited_s


def test_a_diverging_run_fails_in_words_and_keeps_its_events() -> None:
    record = RunRecord()
    job = Job(Config(key_length=1024, learning_rate=5.0), [record.add]).start()
    assert job.join(60)
    assert job.status == "failed"
    assert job.error is not None and job.error.startswith("training diverged in federated round 1")
    assert len(record.local) == 50  # the local phase stands
    assert job.worker_pids() == []


def test_a_consumer_that_raises_fails_the_job_not_the_caller() -> None:
    def broken(event: object) -> None:
        if isinstance(event, LocalRound) and event.round == 3:
            raise RuntimeError("a drawing bug")

    job = Job(Config(key_length=1024), [broken]).start()
    assert job.join(60)
    assert job.status == "failed" and job.error == "unexpected failure (RuntimeError: a drawing bug)"


def test_pause_is_presentation_only() -> None:
    record = RunRecord()
    job = Job(Config(key_length=1024, rounds=5), [record.add], pause=0.2).start()
    assert job.join(60) and job.status == "finished"
    assert record.finished is not None
    assert job.elapsed >= 5 * 0.2
    assert record.finished.timings.federated < 5 * 0.2  # the engine's own clock excludes it


def test_the_job_is_cancelled_when_its_owner_goes() -> None:
    class Owner:
        pass

    owner = Owner()
    job = Job(HEAVY).start()
    job.cancel_with(owner)
    assert wait_until(lambda: job.worker_pids() != [], 60)
    del owner
    gc.collect()
    assert job.join(10) and job.status == "cancelled" and job.reason == "its session ended"


def test_terminate_ends_a_pool_mid_task() -> None:
    from fedviz.crypto import obfuscators

    pool = run_pool(2)
    n = (1 << 4095) | 1
    futures = [pool.submit(obfuscators.draw, n, None, 0, 50) for _ in range(4)]
    assert wait_until(lambda: len(worker_pids(pool)) == 2)
    pids = worker_pids(pool)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert wait_until(lambda: all(os.getpriority(os.PRIO_PROCESS, pid) > ours for pid in pids))
    terminate(pool)
    assert not [pid for pid in pids if alive(pid)]
    assert wait_until(lambda: all(f.done() for f in futures))  # failed or cancelled, none pending


@pytest.mark.parametrize(
    ("event", "fraction", "where"),
    [
        (LocalRound(25, (1.0,)), 0.05, "local training (round 25 of 50)"),
        (FederatedRound(50, (1.0,), (0.0,), 0, 0, 0), 1.0, "federated training (round 50 of 50)"),
    ],
)
def test_progress_words(event, fraction, where) -> None:
    p = progress_after(event, Config(), Progress(0.0, "setup"))
    assert p.fraction == pytest.approx(fraction) and p.where == where


def test_only_runs_with_costly_randomness_get_worker_processes() -> None:
    from fedviz.engines.background import pool_pays_off

    assert not pool_pays_off(Config(key_length=1024))  # the demo: inline, nothing to start
    assert pool_pays_off(HEAVY)
    assert Job(Config(key_length=1024))._use_pool is False
    assert Job(Config(key_length=1024), use_pool=True)._use_pool is True


def test_terminate_leaves_no_worker_even_when_a_submit_races_it():
    """Workers start on demand at submit. One started while `terminate` runs must die too:
    a survivor blocks forever on the task queue's lock if a killed sibling held it, and the
    interpreter's exit then waits for it (a CI run hung so)."""
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from fedviz.crypto import obfuscators

    for _ in range(8):
        pool = run_pool(2)
        table = pool._processes  # the pool's own table of its workers
        go = threading.Event()

        def submit_until_refused(pool: ProcessPoolExecutor, go: threading.Event) -> None:
            go.wait()
            for _ in range(200):
                try:
                    pool.submit(obfuscators.warm_up)
                except RuntimeError:  # the pool was shut down
                    return

        submitter = threading.Thread(target=submit_until_refused, args=(pool, go))
        submitter.start()
        go.set()
        time.sleep(0.01)
        terminate(pool)
        submitter.join(10)
        assert table and not [p.pid for p in table.values() if p.is_alive()]


def test_the_bar_moves_inside_a_round_whose_randomness_comes_in_big_batches() -> None:
    """Per-value encoding at 4096 bits: 78 hospitals' randomness arrives in two batches a minute
    apart. After one round the bar moves with time against that round's length (issue 18)."""
    config = Config(hospitals=78, rounds=10)
    after_round = progress_after(
        FederatedRound(1, (1.0,), (0.0,), 80.0, 0.5, 0.5), config, Progress(0.0, "setup")
    )
    assert after_round.round_s == pytest.approx(81.0)
    early = progress_after(EncryptionProgress(2, 0, 78, 10.0), config, after_round)
    later = progress_after(EncryptionProgress(2, 0, 78, 40.0), config, early)
    assert after_round.fraction < early.fraction < later.fraction < after_round.fraction + 0.088
    assert "this round 40 s of about 81 s" in later.detail
    assert (
        progress_after(EncryptionProgress(2, 0, 78, 500.0), config, later).fraction
        < after_round.fraction + 0.088
    )
