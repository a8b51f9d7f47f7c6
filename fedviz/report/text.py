"""A run in words for people: the settings in one line (`describe`) and the seed post's table
with its yardsticks (`format_report`), shared by the command line, the dashboard, the run
store and its handout, so they always say the same."""

from __future__ import annotations

from fedviz.config import Config, label
from fedviz.report.summary import RunRecord

VALUE_WORDS: dict[str, dict[object, str]] = {
    "gradient": {"sum": "sum over patients", "mean": "mean over patients"},
    "encoding": {"packed": "packed (several values per ciphertext)", "per-value": "one value per ciphertext"},
    "obfuscator": {"djn": "DJN (fast)", "standard": "standard rⁿ (phe)"},
    "masks": {"pairwise": "on", "none": "off"},
    "dataset": {
        "diabetes": "diabetes (scikit-learn)",
        "breast-cancer": "breast cancer (scikit-learn)",
        "csv": "your own CSV file",
        "sites": "each site's own file",
    },
    "split": {
        "contiguous": "in order (the post)",
        "iid": "at random",
        "by-feature": "sorted by a feature",
        "label-skew": "label skew",
    },
    "model": {"linear": "linear regression", "logistic": "logistic regression"},
}
"""Setting values in words (a value not listed is written as it is)."""


def _value(name: str, value: object) -> str:
    words = VALUE_WORDS.get(name, {})
    if value in words:
        return words[value]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ", ".join(map(str, value))
    return str(value)


def setting_rows(config: Config) -> list[tuple[str, str]]:
    """The settings that shaped this run, in words (δ and the clip norm only with DP, the
    skew only for a label-skew split, the file and target only for one's own data), as the
    Runs page and the handout list them."""
    shown = {
        "hospitals": config.hospitals,
        "key_length": f"{config.key_length} bits",
        "learning_rate": config.learning_rate,
        "rounds": config.rounds,
        "seed": config.seed,
        "gradient": config.gradient,
        "warm_start": config.warm_start,
        "encoding": config.encoding,
        "obfuscator": config.obfuscator,
        "dp_epsilon": config.dp_epsilon if config.dp_epsilon is not None else "off",
        "masks": config.masks,
        "shuffle_ring": config.shuffle_ring,
        "dataset": config.dataset,
        "split": config.split,
        "model": config.model,
    }
    if config.dp_epsilon is not None:
        shown["dp_delta"], shown["dp_clip"] = config.dp_delta, config.dp_clip
    if config.split == "by-feature":
        shown["split_feature"] = config.split_feature
    if config.split == "label-skew":
        shown["split_alpha"] = config.split_alpha
    if config.dataset in ("csv", "sites"):
        shown["target"] = config.target
    if config.dataset == "sites":
        shown["test_fraction"] = config.test_fraction
    return [(label(name), _value(name, value)) for name, value in shown.items() if value is not None]


def describe(config: Config) -> str:
    """The settings of a run in one line, as every page and the handout write them."""
    return (
        f"{config.hospitals} hospitals · {config.key_length}-bit keys · η {config.learning_rate:g} · "
        f"{config.rounds} rounds · seed {config.seed} · {config.gradient} gradient · "
        f"{'warm' if config.warm_start else 'cold'} start · {config.encoding}"
        + (
            ""
            if config.is_the_posts_data
            else f" · {config.dataset} data, {config.split} split"
            + (f" by {config.split_feature}" if config.split == "by-feature" else "")
        )
        + ("" if config.model == "linear" else f" · {config.model} regression")
        + "".join(f" · {r}" for r in config.remedies)
    )


def format_report(record: RunRecord) -> str:
    """The seed post's table, with the plaintext yardsticks and timings beside it."""
    assert record.config is not None and record.finished is not None
    c, f = record.config, record.finished
    logistic = c.model == "logistic"
    digits = 4 if logistic else 2
    data = (
        ""
        if c.is_the_posts_data and c.dataset == "diabetes"
        else ", each hospital's own file"
        if c.per_site
        else f", {c.dataset} data split {c.split}"
    )
    held = (
        "each hospital on its own held-out rows: " + " / ".join(map(str, record.own_test_rows))
        if record.own_test_rows
        else f"{record.test_rows} held-out rows"
    )
    lines = [
        f"{c.hospitals} hospitals, {c.key_length}-bit Paillier keys ({c.encoding}, {c.obfuscator} "
        f"randomness), eta {c.learning_rate:g}, {c.rounds} rounds, seed {c.seed}, {c.gradient} gradient, "
        f"{'warm' if c.warm_start else 'cold'} start{data}, {c.model} model"
        + "".join(f", {r}" for r in c.remedies),
        "",
        f"Test {c.metric} ({held}; lower is better)",
        f"{'hospital':<12}{'patients':>9}{'local only':>13}{'federated':>12}{'improvement':>13}"
        + (f"{'accuracy local → federated':>30}" if logistic else ""),
    ]
    for i, row in enumerate(record.table()):
        line = (
            f"{row['hospital']:<12}{row['patients']:>9}{row['local_mse']:>13.{digits}f}"
            f"{row['federated_mse']:>12.{digits}f}{row['improvement']:>13.{digits}f}"
        )
        if logistic and f.local_accuracy and f.federated_accuracy:
            line += f"{f.local_accuracy[i]:>20.1%} → {f.federated_accuracy[i]:.1%}"
        lines.append(line)
    t = f.timings
    optimum = "scikit-learn's logistic fit" if logistic else "least-squares optimum"
    lines += [
        "",
        "Plaintext yardsticks (no privacy, what pooling all data would give):",
        f"  gradient descent on the pooled data, same eta and rounds: {f.centralized_mse:.{digits}f}",
    ]
    if record.reference is not None and record.reference.continued_mse:
        lines.append(
            f"  {'the same, as many rounds as local + federated (' + str(2 * c.rounds) + '):':<58}"
            f"{record.reference.continued_mse[-1]:.{digits}f}"
        )
    lines += [
        f"  {optimum + ' on the pooled data:':<58}{f.optimum_mse:.{digits}f}",
        "",
        f"Ring traffic: {f.bytes_per_round:,} bytes of ciphertext per round",
        f"Time: keygen {t.keygen:.3f} s, federated {t.federated:.3f} s (encrypt {t.encrypt:.3f}, "
        f"add {t.add:.3f}, decrypt {t.decrypt:.3f}), total {t.total:.3f} s",
    ]
    return "\n".join(lines)
