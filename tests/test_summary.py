import json
import math

import pytest
from conftest import of_type

from fedviz.config import Config
from fedviz.events import RunFinished
from fedviz.report.summary import RunRecord, json_safe


def test_record_keeps_histories_table_and_json(events):
    evs = events(rounds=20)
    record = RunRecord()
    for e in evs:
        record.add(e)
    assert len(record.local) == len(record.federated) == 20
    table = record.table()
    done = of_type(evs, RunFinished)[0]
    assert [r["federated_mse"] for r in table] == list(done.federated_mse)
    assert [r["improvement"] for r in table] == pytest.approx(
        [a - b for a, b in zip(done.local_mse, done.federated_mse)]
    )
    rows = record.history_rows()
    assert len(rows) == 2 * 20 * 3 + 20
    assert {r["phase"] for r in rows} == {"local", "federated", "reference"}
    data = json.loads(record.to_json())
    assert data["federated_mse"] == list(done.federated_mse)
    assert data["rounds_completed"] == {"local": 20, "federated": 20}
    assert data["status"] == "finished" and "error" not in data
    assert "private" not in record.to_json().lower()


def test_an_empty_record_still_summarises():
    record = RunRecord()
    assert record.table() == [] and record.summary()["local_mse"] == []


def refuse_constants(constant: str) -> None:
    raise ValueError(f"non-standard JSON constant {constant}")


def test_non_finite_values_become_null_and_the_status_says_it_failed():
    record = RunRecord(
        config=Config(learning_rate=1e6),
        patients=(130, 130, 130),
        local=[(1.0, 2.0, 3.0), (math.inf, math.nan, -math.inf)],
        centralized=(5.0, math.inf),
        optimum=math.nan,
    )
    record.fail("training diverged in local round 2: Hospital 1's weights are no longer finite")
    data = json.loads(record.to_json(), parse_constant=refuse_constants)
    assert data["status"] == "failed"
    assert data["error"].startswith("training diverged in local round 2")
    assert data["local_mse"] == [None, None, None]
    assert data["centralized_mse"] is None and data["optimum_mse"] is None
    assert data["rounds_completed"] == {"local": 2, "federated": 0}
    assert data["config"]["learning_rate"] == 1e6
    assert record.table()[0]["local_mse"] == math.inf  # only the JSON form maps to null


def test_json_safe_is_recursive():
    value = {"a": [1.0, math.nan, (math.inf, {"b": -math.inf})], "c": "inf", "d": 3, "e": None}
    assert json_safe(value) == {"a": [1.0, None, [None, {"b": None}]], "c": "inf", "d": 3, "e": None}
    import numpy as np

    assert json_safe([np.float64("nan"), np.float32(1.5), np.int64(2)]) == [None, 1.5, 2]


def test_status_of_an_interrupted_and_of_a_running_record():
    record = RunRecord()
    assert record.status == "running" and record.summary()["status"] == "running"
    record.interrupt()
    assert record.status == "interrupted" and "error" not in record.summary()
