import math

import pytest

from fedviz.config import MAX_HOSPITALS, Config, parse_number
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
    assert parse_number("learning_rate", "1e-3", float) == 0.001
    with pytest.raises(ConfigError, match="rounds = 'ten' is not allowed: a whole number"):
        parse_number("rounds", "ten", int)
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_number("learning_rate", "fast", float)
