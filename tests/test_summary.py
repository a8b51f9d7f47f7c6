import json

import pytest
from conftest import of_type

from fedviz.events import RunFinished
from fedviz.report.summary import RunRecord


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
    assert "private" not in record.to_json().lower()


def test_an_empty_record_still_summarises():
    record = RunRecord()
    assert record.table() == [] and record.summary()["local_mse"] == []
