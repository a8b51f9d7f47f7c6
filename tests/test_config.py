import math

import pytest

from fedviz.config import FIELD_LABELS, MAX_HOSPITALS, Config, allowed, check, label, parse_number
from fedviz.errors import ConfigError


def test_defaults_are_the_seed_post():
    c = Config()
    assert (c.hospitals, c.key_length, c.learning_rate, c.rounds, c.seed, c.gradient, c.warm_start) == (
        3,
        2048,
        0.01,
        50,
        42,
        "sum",
        True,
    )
    assert c.warnings() == ()
    assert MAX_HOSPITALS == 78 and Config(hospitals=78).patients_per_hospital == 5


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("hospitals", 1, "from 2 to 78"),
        ("hospitals", 79, "from 2 to 78"),
        ("hospitals", 3.0, "whole number"),
        ("hospitals", True, "whole number"),
        ("key_length", 512, "1024, 2048, 3072, 4096"),
        ("key_length", 2000, "1024, 2048, 3072, 4096"),
        ("learning_rate", 0.0, "greater than 0"),
        ("learning_rate", -0.1, "greater than 0"),
        ("learning_rate", math.inf, "finite"),
        ("learning_rate", math.nan, "finite"),
        ("learning_rate", "0.1", "finite"),
        ("learning_rate", 10**400, "finite"),
        ("rounds", 0, "from 1 to 1000"),
        ("rounds", 1001, "from 1 to 1000"),
        ("seed", -1, "from 0"),
        ("seed", 1.5, "whole number"),
        ("gradient", "avg", "sum, mean"),
        ("warm_start", "yes", "true or false"),
        ("encoding", "zip", "packed, per-value"),
        ("obfuscator", "fast", "djn, standard"),
    ],
)
def test_every_bad_value_names_field_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as info:
        Config(**{field: value})
    message = str(info.value)
    assert message.startswith(f"{field} = {value!r} is not allowed")
    assert allowed in message
    assert info.value.field == field


def test_weak_choices_warn_but_are_allowed():
    two, short = Config(hospitals=2), Config(key_length=1024)
    assert "not private" in two.warnings()[0]
    assert "80-bit" in short.warnings()[0]
    assert len(Config(hospitals=2, key_length=1024).warnings()) == 2


def test_from_dict_round_trips_and_rejects_unknown_keys():
    c = Config(hospitals=5, learning_rate=0.02, gradient="mean")
    assert Config.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="colour"):
        Config.from_dict({"colour": "red"})


def test_parse_number():
    assert parse_number("rounds", " 1_000 ", int) == 1000
    assert parse_number("rounds", "1000") == 1000 and isinstance(parse_number("seed", "7"), int)
    assert parse_number("learning_rate", "1e-3", float) == 0.001
    assert parse_number("learning_rate", "2") == 2.0 and isinstance(parse_number("learning_rate", "2"), float)
    assert parse_number("learning_rate", "1e-310") == 1e-310  # subnormal but not zero: allowed
    assert parse_number("seed", "+0") == 0 and parse_number("hospitals", "078") == 78
    with pytest.raises(ConfigError, match="rounds = 'ten' is not a number: use a whole number"):
        parse_number("rounds", "ten", int)
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_number("learning_rate", "fast", float)


HOSPITALS = "a whole number from 2 to 78 (each hospital needs at least 5 of the 392 training patients)"


@pytest.mark.parametrize(
    ("field", "text", "plain"),
    [
        ("hospitals", "", f"Hospitals is empty: enter {HOSPITALS}."),
        ("hospitals", "   ", f"Hospitals is empty: enter {HOSPITALS}."),
        ("hospitals", "79", f"Hospitals: '79' is not allowed — use {HOSPITALS}."),
        ("hospitals", "three", f"Hospitals: 'three' is not a number — use {HOSPITALS}."),
        ("hospitals", "3.5", f"Hospitals: '3.5' is not a whole number — use {HOSPITALS}."),
        ("seed", "1e3", "Seed: '1e3' must be written as a whole number — write 1000."),
        ("rounds", "10.0", "Rounds: '10.0' must be written as a whole number — write 10."),
        ("rounds", "1e4", "Rounds: '1e4' is not allowed — use a whole number from 1 to 1000."),
        (
            "seed",
            "1e999999999",
            "Seed: '1e999999999' is too large — use a whole number from 0 to 4294967295.",
        ),
        ("seed", "", "Seed is empty: enter a whole number from 0 to 4294967295."),
        ("key_length", "2000", "Key length: '2000' is not allowed — use one of 1024, 2048, 3072, 4096 bits."),
        (
            "learning_rate",
            "1e-400",
            "Learning rate: '1e-400' is too small to represent (it would become 0) — use a finite "
            "number greater than 0.",
        ),
        (
            "learning_rate",
            "1e400",
            "Learning rate: '1e400' is too large to represent — use a finite number greater than 0.",
        ),
        (
            "learning_rate",
            "abc",
            "Learning rate: 'abc' is not a number — use a finite number greater than 0.",
        ),
        (
            "learning_rate",
            "nan",
            "Learning rate: 'nan' is not a finite number — use a finite number greater than 0.",
        ),
        (
            "learning_rate",
            "-inf",
            "Learning rate: '-inf' is not a finite number — use a finite number greater than 0.",
        ),
        (
            "learning_rate",
            "-1e0",
            "Learning rate: '-1e0' is not allowed — use a finite number greater than 0.",
        ),
        ("learning_rate", "0", "Learning rate: '0' is not allowed — use a finite number greater than 0."),
    ],
)
def test_parse_number_refuses_in_words_quoting_the_users_text(field, text, plain):
    with pytest.raises(ConfigError) as info:
        parse_number(field, text)
    assert info.value.plain == plain
    assert info.value.field == field and info.value.value == text
    terse = str(info.value)
    assert terse.startswith(field) and "\n" not in terse
    assert (repr(text) in terse) or not text.strip()
    assert allowed(field) in terse or "write " in terse


def test_terse_messages_for_the_command_line():
    def message(field: str, text: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_number(field, text)
        return str(info.value)

    assert message("hospitals", "") == f"hospitals is empty: enter {HOSPITALS}"
    assert message("hospitals", "79") == f"hospitals = '79' is not allowed: {HOSPITALS}"
    assert message("seed", "1e3") == "seed = '1e3' must be written as a whole number: write 1000"
    assert message("learning_rate", "1e-400") == (
        "learning_rate = '1e-400' is too small to represent (it would become 0): use a finite number greater than 0"
    )


def test_labels_allowed_text_and_check_agree_with_config():
    assert [label(f) for f in ("learning_rate", "hospitals", "rounds", "seed", "key_length")] == [
        "Learning rate",
        "Hospitals",
        "Rounds",
        "Seed",
        "Key length",
    ]
    assert set(FIELD_LABELS) == set(Config.__dataclass_fields__)
    assert label("workers") == "Workers"
    assert allowed("hospitals") == HOSPITALS
    for field in Config.__dataclass_fields__:
        check(field, getattr(Config(), field))  # the defaults pass
        assert allowed(field)
    with pytest.raises(ConfigError) as info:
        Config(hospitals=79)
    assert info.value.allowed == allowed("hospitals")
    assert info.value.plain == f"Hospitals: 79 is not allowed — use {HOSPITALS}."
