"""The user's own data, realistic splits, federated standardisation and logistic regression."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import of_type

from fedviz.cli import main
from fedviz.config import Config
from fedviz.data import prepared, split, split_for
from fedviz.data.sources import MAX_CSV_BYTES, example_csv, inspect_csv, read_csv, read_csv_path
from fedviz.data.standardise import local_statistics, pooled
from fedviz.engines.inprocess import run
from fedviz.errors import ConfigError, DataError
from fedviz.events import FederatedRound, LocalRound, ReferenceComputed, RunFinished, RunStarted, Standardised
from fedviz.models import logistic

CANCER = Config(key_length=1024, rounds=20, dataset="breast-cancer", model="logistic")


def csv_bytes(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


# --------------------------------------------------------------------------- reading a CSV


@pytest.mark.parametrize(
    ("data", "target", "words"),
    [
        (b"", "y", "is empty"),
        (b"   \n  \n", "y", "is empty"),
        (b"a,y\n1,2\x00\n", "y", "not a text file"),
        (b"a,y\n\xff\xfe,1\n", "y", "not UTF-8"),
        (csv_bytes(["a,a,y", "1,2,3"]), "y", "appears twice"),
        (csv_bytes(["a,,y", "1,2,3"]), "y", "has no name"),
        (csv_bytes(["y", "1"]), "y", "needs a target and at least one feature"),
        (csv_bytes(["a,y"]), "y", "no data rows"),
        (csv_bytes(["a,y", "1,2", "3"]), "y", "row 3"),
        (csv_bytes(["a,y", "1,2"]), "z", "has no column 'z'"),
        (csv_bytes(["a,y", "1,2"]), "", "choose the target column"),
        (csv_bytes(["a,y", "one,2", "3,4"]), "y", "row 2, column 'a' of t.csv is 'one', not a number"),
        (csv_bytes(["a,y", "nan,2", "3,4"]), "y", "must be finite"),
        (csv_bytes(["a,y", "inf,2", "3,4"]), "y", "must be finite"),
        (csv_bytes(["a,y", "1,red", "2,green", "3,blue"]), "y", "must be numeric, or two-valued"),
    ],
)
def test_a_bad_csv_is_refused_in_one_sentence(data, target, words):
    with pytest.raises(DataError) as info:
        read_csv(data, target, "t.csv")
    message = str(info.value)
    assert words in message and "\n" not in message


def test_size_path_and_folder_limits(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_csv_path(str(tmp_path / "missing.csv"), "y")
    with pytest.raises(DataError, match="is a folder"):
        read_csv_path(str(tmp_path), "y")
    big = tmp_path / "big.csv"
    big.write_bytes(b"a,y\n" + b"1,2\n" * (MAX_CSV_BYTES // 4 + 1))
    with pytest.raises(DataError, match="the limit is 20 MB"):
        read_csv_path(str(big), "y")


def test_targets_numeric_two_valued_and_text():
    numeric = read_csv(csv_bytes(["a,y", "1,2.5", "2,3.5", "3,9"]), "y")
    assert numeric.task == "regression" and list(numeric.y) == [2.5, 3.5, 9.0]
    binary = read_csv(csv_bytes(["a,y", "1,0", "2,1", "3,1"]), "y")
    assert binary.task == "classification" and binary.classes == ("0", "1") and list(binary.y) == [0, 1, 1]
    text = read_csv(csv_bytes(["a,sick", "1,no", "2,yes", "3,no"]), "sick")
    assert text.classes == ("no", "yes") and list(text.y) == [0, 1, 0]
    assert text.features == ("a",) and text.X.shape == (3, 1)


def test_preview_lists_columns_and_two_valued_ones():
    preview = inspect_csv(csv_bytes(["age,sex,y", "50,1,3.2", "60,2,4.1", "70,1,5.0"]))
    assert preview.columns == ("age", "sex", "y") and preview.two_valued == {"sex"} and preview.rows == 3


def test_the_example_csv_reads_back_as_the_diabetes_patients():
    source = read_csv(example_csv().encode(), "progression")
    assert source.rows == 60 and source.features[:3] == ("age", "sex", "bmi") and source.task == "regression"


def test_too_few_rows_for_the_hospitals_says_how_many_fit(tmp_path: Path):
    path = tmp_path / "small.csv"
    path.write_text(example_csv())
    config = Config(dataset="csv", data_path=str(path), target="progression", hospitals=20)
    with pytest.raises(DataError, match="at most 9 hospitals"):
        split_for(config)


def test_cli_refuses_bad_data_in_one_line_with_exit_2(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,x\n")
    for args in (
        ["--data", str(tmp_path / "none.csv"), "--target", "y"],
        ["--data", str(bad), "--target", "z"],
        ["--data", str(bad)],
        ["--target", "y"],
        ["--dataset", "breast-cancer", "--split", "by-feature"],
        ["--dataset", "breast-cancer", "--model", "logistic", "--split", "by-feature", "no such"],
        ["--model", "logistic"],
        ["--dataset", "breast-cancer", "--model", "logistic", "--engine", "flower"],
    ):
        out, err = io.StringIO(), io.StringIO()
        assert main(args, out, err) == 2, args
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)


def refusal(data: bytes, target: str = "y", name: str = "data.csv") -> str:
    """The sentence `read_csv` refuses the bytes with (one line)."""
    with pytest.raises(DataError) as info:
        read_csv(data, target, name)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_constant_target_is_refused_but_a_constant_feature_is_fine(tmp_path: Path):
    rows = [f"{i % 7},{i},5" for i in range(400)]
    message = refusal(csv_bytes(["a,b,y", *rows]), name="constant_target.csv")
    assert message == (
        "the target 'y' of constant_target.csv has the same value (5) in every row: there is nothing to "
        "learn; choose another target"
    )
    assert "('yes')" in refusal(csv_bytes(["a,y", "1,yes", "2,yes", "3, yes"]))  # text: one label
    assert "(2.5)" in refusal(csv_bytes(["a,y", "1,2.5", "2,2.50", "3,25e-1"]))  # one number, three spellings
    constant_feature = example_csv().replace("\n", ",3\n").replace("progression,3", "progression,unit", 1)
    path = tmp_path / "constant_feature.csv"
    path.write_text(constant_feature)
    config = Config(dataset="csv", data_path=str(path), target="unit")
    with pytest.raises(DataError, match="same value"):
        split_for(config)
    data = prepared(dataclasses.replace(config, target="progression"))  # 'unit' is now a feature: fine
    assert all(np.isfinite(X).all() for X in data.hospital_X) and np.isfinite(data.X_test).all()
    column = data.features.index("unit")
    assert all(np.all(X[:, column] == 0) for X in data.hospital_X)  # (3 - 3) / 1: no division by zero


def test_every_problem_of_a_file_is_named_in_one_sentence_grouped_by_column():
    rows = ["sex,site,bmi,y", "M,1,22,1", "1,1,23,2", "1,north,24,3", "F,1,25,4", "1,1,26,5", "1,1,,6"]
    rows += ["1,1,27,7", "X,1,28,8"]
    assert refusal(csv_bytes(rows)) == (
        "3 problems in data.csv: column 'sex' holds text in rows 2, 5 and 9 ('M', 'F', 'X'); column 'site' "
        "holds text in row 4 ('north'); row 7, column 'bmi' is empty"
    )
    assert refusal(csv_bytes(["a,y", "1,2", " ,3"])) == (
        "row 3, column 'a' of data.csv is empty: fill it in or remove the row"
    )  # empty, not "'' is not a number"
    many = csv_bytes(["a,y", *[f"{'x' if i % 2 else i},{i}" for i in range(40)]])
    assert (
        refusal(many)
        == "column 'a' of data.csv holds text in rows 3, 5, 7, 9, 11 and 15 more ('x'), not numbers"
    )
    wide = csv_bytes(["a,b,c,d,e,f,g,h,y", *[f"1,2,3,4,5,6,7,8,{i}" for i in range(5)], "q,q,q,q,q,q,q,q,9"])
    message = refusal(wide)
    assert message.startswith("8 problems in data.csv: column 'a' holds text in row 7 ('q'); column 'b'")
    assert message.endswith("column 'f' holds text in row 7 ('q'); and 2 more problems")
    ragged = csv_bytes(["a,y", "1,2", "3", "4,5,6", "x,7", "8,"])
    assert refusal(ragged) == (
        "3 problems in data.csv: rows 3 and 4 have 1 and 3 cells, not the header's 2; column 'a' holds text "
        "in row 5 ('x'); row 6, column 'y' is empty"
    )
    with pytest.raises(DataError) as info:
        inspect_csv(ragged, "t.csv")
    assert str(info.value) == "rows 3 and 4 of t.csv have 1 and 3 cells; the header has 2"


def test_semicolon_and_tab_files_read_as_their_comma_version():
    comma = read_csv(csv_bytes(["age,bmi,sick", "50,22.5,yes", "60,30,no", "70,-1e3,no"]), "sick")
    for delimiter in (";", "\t", "|"):
        text = csv_bytes(["age,bmi,sick", "50,22.5,yes", "60,30,no", "70,-1e3,no"]).replace(
            b",", delimiter.encode()
        )
        other = read_csv(text, "sick")
        assert np.array_equal(other.X, comma.X) and np.array_equal(other.y, comma.y)
        assert (other.features, other.classes) == (comma.features, comma.classes)
    quoted = read_csv(csv_bytes(['"a;b",y', "1,2", "3,4"]), "y")  # a ';' inside a comma file's name
    assert quoted.features == ("a;b",)
    uneven = csv_bytes(["a;b;y", "1;2;3", "4;5"])
    assert refusal(uneven) == "row 3 of data.csv (read as semicolon-separated) has 2 cells; the header has 3"
    assert refusal(csv_bytes(["a;b\tc", "1;2\t3"])) == (
        "data.csv has 1 column when read as comma-separated; its header contains ';' and a tab, so it looks "
        "semicolon- or tab-delimited but not clearly which: save it as comma-separated CSV"
    )


def test_decimal_commas_are_refused_naming_the_cell():
    assert refusal(csv_bytes(["a;b;y", "1,5;2;3", "2;3;4"])) == (
        "row 2, column 'a' of data.csv is '1,5', with a decimal comma: write 1.5 "
        "(numbers need a decimal point)"
    )
    assert refusal(csv_bytes(["a;b;y", "1,5;2,25;3", "2;3;4"])) == (
        "data.csv uses decimal commas in columns 'a' and 'b' (row 2, column 'a' is '1,5'): numbers need a "
        "decimal point; save the file with '.' as the decimal separator"
    )
    assert "decimal comma" in refusal(csv_bytes(["a,y", '"0,5",1', "2,3"]))  # quoted in a comma file


def test_spreadsheets_and_other_files_renamed_csv_are_named():
    xlsx = io.BytesIO()
    with zipfile.ZipFile(xlsx, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    assert refusal(xlsx.getvalue()) == (
        "data.csv is a spreadsheet (Excel .xlsx), not CSV text: save it as CSV (comma-separated) first"
    )
    xls = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100) + "Workbook".encode("utf-16-le")
    assert "is a spreadsheet (Excel .xls), not CSV text" in refusal(xls)
    assert "is a PDF document" in refusal(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    assert "is gzip-compressed" in refusal(gzip.compress(b"a,y\n1,2\n"))
    assert "is a zip archive" in refusal(b"PK\x03\x04" + bytes(40))
    assert "is UTF-16 text" in refusal("a,y\n1,2\n".encode("utf-16"))


def test_too_few_rows_for_even_two_hospitals_says_how_many_are_needed(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_bytes(csv_bytes(["a,y", "1,2", "2,3", "3,4", "4,5", "5,6"]))
    with pytest.raises(DataError) as info:
        split_for(Config(dataset="csv", data_path=str(path), target="y", hospitals=3))
    assert str(info.value) == (
        "data.csv has 5 rows: 4 for training after 1 test row; 3 hospitals need at least 15 training rows "
        "(5 each), so at least 19 rows in all"
    )
    path.write_text(example_csv())
    with pytest.raises(DataError) as info:
        split_for(Config(dataset="csv", data_path=str(path), target="progression", hospitals=20))
    assert str(info.value).endswith(
        "20 hospitals need at least 100 training rows (5 each), so at least 125 rows in all; these 60 rows "
        "are enough for at most 9 hospitals"
    )


def test_logistic_regression_is_refused_when_the_training_rows_hold_one_value(tmp_path: Path):
    path = tmp_path / "rare.csv"
    path.write_bytes(csv_bytes(["a,y", *[f"{i},{int(i == 0)}" for i in range(60)]]))
    refused = 0
    for seed in range(12):
        config = Config(dataset="csv", data_path=str(path), target="y", model="logistic", seed=seed)
        try:
            data = split_for(config)
        except DataError as exc:
            refused += 1
            assert "all 48 training rows of rare.csv have the target 'y' = '0'" in str(exc)
            assert "logistic regression needs both values" in str(exc)
        else:
            assert 1.0 in np.concatenate(data.hospital_y)
    assert 0 < refused < 12  # the one '1' row is among the 12 test rows for some seeds only


def test_plain_keeps_the_users_file_name_as_spelled():
    with pytest.raises(DataError) as info:
        read_csv(b"", "y", "constant_target.csv")
    assert info.value.plain == "constant_target.csv is empty."
    assert pickle.loads(pickle.dumps(info.value)).plain == "constant_target.csv is empty."
    with pytest.raises(DataError) as info:
        read_csv(b"", "y")
    assert info.value.plain == "The CSV file is empty."
    with pytest.raises(DataError) as info:
        read_csv(csv_bytes(["a,y", "one,2", "3,4"]), "y", "data.csv")
    assert info.value.plain == "Row 2, column 'a' of data.csv is 'one', not a number."


# --------------------------------------------------------------------------- splits


def test_the_posts_split_is_unchanged():
    ours, theirs = split_for(Config()), split(3, 42)
    assert all(np.array_equal(a, b) for a, b in zip(ours.hospital_X, theirs.hospital_X, strict=True))


def test_iid_and_by_feature_splits():
    base = Config(dataset="breast-cancer", model="logistic", hospitals=4)
    iid = split_for(dataclasses.replace(base, split="iid"))
    assert len(set(iid.patients)) == 1 and iid.patients[0] == (569 - 114) // 4
    again = split_for(dataclasses.replace(base, split="iid"))
    assert np.array_equal(iid.hospital_X[2], again.hospital_X[2])
    feature = "mean radius"
    by = split_for(dataclasses.replace(base, split="by-feature", split_feature=feature))
    column = by.features.index(feature)
    for low, high in zip(by.hospital_X, by.hospital_X[1:], strict=False):
        assert low[:, column].max() <= high[:, column].min()  # young and old hospitals
    assert np.array_equal(by.X_test, iid.X_test)  # the test set does not depend on the split


def test_label_skew_gives_lopsided_hospitals_that_all_have_rows():
    base = Config(dataset="breast-cancer", model="logistic", hospitals=5, split="label-skew")
    skewed = split_for(dataclasses.replace(base, split_alpha=0.1))
    even = split_for(dataclasses.replace(base, split_alpha=100.0))
    shares = lambda d: [float(np.mean(y)) for y in d.hospital_y]  # noqa: E731
    assert min(skewed.patients) >= 5 and sum(skewed.patients) == 569 - 114
    assert np.ptp(shares(skewed)) > 0.5 > np.ptp(shares(even))
    with pytest.raises(DataError, match="needs a two-valued target"):
        split_for(Config(split="label-skew"))


# --------------------------------------------------------------------------- standardisation


def test_standardisation_through_the_ring_equals_the_plaintext_one():
    events = list(run(CANCER, pool=None))
    (done,) = of_type(events, Standardised)
    plain = prepared(CANCER)
    total = np.sum([local_statistics(X) for X in split_for(CANCER).hospital_X], axis=0)
    means, stds = pooled(total)
    assert np.allclose(done.means, means, rtol=1e-12) and np.allclose(done.stds, stds, rtol=1e-12)
    assert done.rows == sum(plain.patients) and done.ciphertexts == 2 * 30 + 1
    pooled_rows = plain.X_pooled[:, :-1]
    assert np.allclose(pooled_rows.mean(axis=0), 0, atol=1e-9) and np.allclose(pooled_rows.std(axis=0), 1)
    names = [type(e).__name__ for e in events[:6]]
    assert names[:4] == ["RunStarted", "PhaseStarted", "KeysGenerated", "Standardised"]


# --------------------------------------------------------------------------- logistic regression


def test_the_logistic_gradient_is_the_log_loss_derivative():
    data = prepared(CANCER)
    X, y = data.hospital_X[0], data.hospital_y[0]
    w = np.random.default_rng(1).normal(0, 0.3, X.shape[1])
    g = logistic.gradient(w, X, y, "sum")
    total = lambda v: logistic.score(v, X, y) * len(y)  # noqa: E731
    numeric = [(total(w + e) - total(w - e)) / 2e-6 for e in np.eye(len(w)) * 1e-6]
    assert np.allclose(g, numeric, rtol=1e-5, atol=1e-5)
    assert np.allclose(logistic.row_gradients(w, X, y).sum(axis=0), g)


def test_logistic_on_the_ring_equals_the_plaintext_protocol_and_learns():
    events = list(run(CANCER, pool=None))
    started = of_type(events, RunStarted)[0]
    assert started.classes == ("malignant", "benign") and len(started.features) == 31
    data = prepared(CANCER)
    weights = [np.zeros(31) for _ in range(3)]
    for _ in range(CANCER.rounds):
        weights = [
            w - 0.01 * logistic.gradient(w, X, y, "sum")
            for w, X, y in zip(weights, data.hospital_X, data.hospital_y, strict=True)
        ]
    local = [logistic.score(w, data.X_test, data.y_test) for w in weights]
    assert np.allclose(of_type(events, LocalRound)[-1].mse, local, rtol=1e-9)
    for _ in range(CANCER.rounds):
        average = np.mean(
            [
                logistic.gradient(w, X, y, "sum")
                for w, X, y in zip(weights, data.hospital_X, data.hospital_y, strict=True)
            ],
            axis=0,
        )
        weights = [w - 0.01 * average for w in weights]
    federated = [logistic.score(w, data.X_test, data.y_test) for w in weights]
    final = of_type(events, RunFinished)[0]
    assert np.allclose(final.federated_mse, federated, rtol=1e-6)
    assert min(final.federated_accuracy) > 0.9 and len(of_type(events, FederatedRound)[-1].accuracy) == 3
    ref = of_type(events, ReferenceComputed)[0]
    assert ref.optimum_accuracy is not None and ref.optimum_accuracy > 0.9


def test_logistic_needs_a_two_valued_target():
    with pytest.raises(ConfigError, match="linear for the diabetes data"):
        Config(model="logistic")


def test_json_names_the_metric_and_the_scores():
    out, err = io.StringIO(), io.StringIO()
    args = [
        "--key-length",
        "1024",
        "--rounds",
        "5",
        "--dataset",
        "breast-cancer",
        "--model",
        "logistic",
        "--json",
    ]
    assert main(args, out, err) == 0, err.getvalue()
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["metric"] == "log-loss" and summary["classes"] == ["malignant", "benign"]
    assert summary["local_score"] == summary["local_mse"] and len(summary["federated_accuracy"]) == 3
    assert summary["standardisation"]["through"] == "the encrypted ring"
    out = io.StringIO()
    assert main(["--key-length", "1024", "--rounds", "2", "--json"], out, io.StringIO()) == 0
    plain = json.loads(out.getvalue().splitlines()[-1])
    assert plain["metric"] == "MSE" and plain["federated_score"] == plain["federated_mse"]
    assert "standardisation" not in plain and "classes" not in plain


def test_a_csv_run_reports_mse_in_the_targets_units(tmp_path: Path):
    path = tmp_path / "patients.csv"
    path.write_text(example_csv())
    config = Config(
        key_length=1024, rounds=30, dataset="csv", data_path=str(path), target="progression", warm_start=False
    )
    events = list(run(config, pool=None))
    data = prepared(config)
    w = np.zeros(11)
    for _ in range(config.rounds):
        w = w - 0.01 * np.mean(
            [(X @ w - y) @ X for X, y in zip(data.hospital_X, data.hospital_y, strict=True)], axis=0
        )
    expected = float(np.mean((data.y_test - data.X_test @ w) ** 2))
    assert of_type(events, RunFinished)[0].federated_mse[0] == pytest.approx(expected, rel=1e-6)
    assert of_type(events, RunStarted)[0].target == "progression"


def test_the_offered_target_is_one_the_file_reads_with():
    from fedviz.data.sources import usable_target

    plain = csv_bytes(["age,bmi,y", "50,22,151", "60,30,75"])
    assert usable_target(plain, "t.csv", inspect_csv(plain)) == "y"
    labelled = csv_bytes(["sick,age,note", "yes,50,1", "no,60,x"])  # no column works as the target
    with pytest.raises(DataError) as info:
        usable_target(labelled, "t.csv", inspect_csv(labelled))
    assert str(info.value).startswith(
        "column 'sick' of t.csv holds text in rows 2 and 3"
    )  # the last column's
    text_label = csv_bytes(["age,bmi,sick", "50,22,yes", "60,30,no"])
    assert usable_target(text_label, "t.csv", inspect_csv(text_label)) == "sick"
    label_first = csv_bytes(["sick,age,bmi", "yes,50,22", "no,60,30"])  # bmi fails: 'sick' is text
    assert usable_target(label_first, "t.csv", inspect_csv(label_first)) == "sick"
