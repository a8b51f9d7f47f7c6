"""The shared sidebar controls and the session's kept settings.

How a setting is kept (the fix for settings lost under load):
- `settings` (in session state) is the only source of truth. It changes in one way only: a
  widget's `on_change` callback, which Streamlit calls when the user changed that widget.
- Before each widget is drawn, its widget state is set from `settings`, every run. Streamlit
  sends a keyed widget's value to the browser only in a run that set it; the browser forgets
  widget values on a page switch and rebuilds the widget from its default ("" for a text
  box, nothing for a segmented control), and a click can cut short the one run that sent the
  value. The old code then copied that default back as the setting (Learning rate empty, no
  pace). Pushing the value every run makes the browser always show, and report, the setting.
- Every number is typed as text and parsed by the engine's rules: an empty or out-of-range
  value is refused in words next to its control and disables Run; it is never replaced.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from fedviz.advice import refusal
from fedviz.config import (
    ENCODINGS,
    GRADIENT_MODES,
    KEY_LENGTHS,
    MAX_HOSPITALS,
    MAX_ROUNDS,
    OBFUSCATORS,
    SECURITY_BITS,
    WARN_1024_BITS,
    WARN_TWO_HOSPITALS,
    Config,
    parse_number,
)
from fedviz.data import split_for
from fedviz.data.sources import example_csv, feature_names, inspect_csv, read_csv, usable_target
from fedviz.engines.background import Engine
from fedviz.engines.flower.scope import refusal as flower_refusal
from fedviz.engines.inprocess import preflight
from fedviz.errors import ConfigError, DataError
from pages import session

PACES = {"full speed": 0.0, "watchable": 0.02, "slow": 0.15}
"""Presentation pauses after each federated round (seconds): the UI's, never the engine's;
reported timings exclude them."""
TEXT_FIELDS = ("hospitals", "learning_rate", "rounds", "seed")
"""Settings typed as text (parsed, so a bad value is refused in words, never clamped)."""
DP_FIELDS = ("dp_epsilon", "dp_delta", "dp_clip")
"""Differential privacy's settings, typed as text; used only while `dp` is on."""
_defaults = Config()
DEFAULTS: dict[str, Any] = {
    **_defaults.to_dict(),
    **{name: f"{getattr(_defaults, name):g}" for name in TEXT_FIELDS},
    "pace": "watchable",
    "engine": "in-process",
    "dp": False,
    "dp_epsilon": "1",
    "dp_delta": f"{_defaults.dp_delta:g}",
    "dp_clip": f"{_defaults.dp_clip:g}",
    "masks": False,
    "dataset": "diabetes",
    "data_path": None,
    "upload_name": None,
    "upload_id": None,
    "upload_error": None,
    "upload_note": None,
    "csv_columns": (),
    "csv_two_valued": (),
    "target": None,
    "split": "contiguous",
    "split_feature": None,
    "split_alpha": f"{_defaults.split_alpha:g}",
    "model": "linear",
}
DATASET_LABELS = {
    "diabetes": "Diabetes",
    "breast-cancer": "Breast cancer",
    "csv": "Your own CSV file",
}
SPLIT_LABELS = {
    "contiguous": "in order (the post)",
    "iid": "at random",
    "by-feature": "sorted by a feature",
    "label-skew": "label skew (α)",
}
MODEL_LABELS = {"linear": "linear regression", "logistic": "logistic regression"}
ENCODING_LABELS = {"packed": "packed (fast)", "per-value": "per value (the post)"}
OBFUSCATOR_LABELS = {"djn": "DJN (fast)", "standard": "standard r^n (phe)"}
ENGINES: dict[str, tuple[Engine, str]] = {
    "in-process": ("inprocess", "ring"),
    "Flower ring": ("flower", "ring"),
    "Flower star": ("flower", "star"),
}
"""Where a main run's parties live: all in this server's process (fast, the default), or each
its own process on a loopback Flower deployment, ring or star (the same numbers, seconds per
message)."""
ENGINE_LABELS = {
    "in-process": "in-process (fast)",
    "Flower ring": "Flower: separate processes, ring",
    "Flower star": "Flower: separate processes, star",
}
RECORDED_ENGINES = {
    "in-process": "in-process",
    "flower (ring)": "Flower ring",
    "flower (star)": "Flower star",
}
"""A run record's engine ("flower (ring)", ...) -> the sidebar's name for it."""
PRIVACY_PAGE = "pages/privacy.py"


# --------------------------------------------------------------------------- settings


def settings() -> dict[str, Any]:
    """The kept settings of this session (created with the post's defaults)."""
    kept: dict[str, Any] = st.session_state.setdefault("settings", dict(DEFAULTS))
    for name, value in DEFAULTS.items():
        kept.setdefault(name, value)
    return kept


def _store(name: str) -> None:
    """on_change: the user changed this widget; its value becomes the setting."""
    settings()[name] = st.session_state[f"w_{name}"]


def bind(name: str) -> dict[str, Any]:
    """Widget arguments that show setting `name` and keep the user's changes to it.

    The widget state is set from `settings` on every run, even when Streamlit holds the same
    value: only a value set this run goes to the browser with `set_value`. Without it, a
    browser that dropped the widget (a page switch, a rerun cut short by a click) rebuilds it
    from its built-in default ("" or no selection) and reports that back as a change."""
    key = f"w_{name}"
    st.session_state[key] = settings()[name]
    return {"key": key, "on_change": _store, "args": (name,)}


def adopt(kept: dict[str, Any], pause: float) -> None:
    """Show the settings a run was started with (a page reloaded during that run), with the
    pace it has now (the pace may change while a run goes on)."""
    if kept:
        paces = [name for name, seconds in PACES.items() if seconds == pause]
        st.session_state["settings"] = {**DEFAULTS, **kept, **({"pace": paces[0]} if paces else {})}


def _text(value: float) -> str:
    """A number as the sidebar's text box shows it (short, and parsing back to `value`)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def engine_label(recorded: object) -> str:
    """The sidebar's name of the engine a run record names (its own words if none matches)."""
    text = str(recorded or "in-process")
    return RECORDED_ENGINES.get(text, text)


def settings_of(config: Config, engine_label: str = "in-process") -> dict[str, Any] | None:
    """The sidebar settings that make `config` (a stored run opened from the Runs page), or
    None when they cannot: its data was a file the store never keeps (an uploaded CSV, a
    pilot's per-site files)."""
    if config.dataset not in DATASET_LABELS or config.dataset == "csv":
        return None
    dp = config.dp_epsilon is not None
    kept: dict[str, Any] = {
        **DEFAULTS,
        **{name: getattr(config, name) for name in ("key_length", "gradient", "encoding", "obfuscator")},
        **{name: _text(getattr(config, name)) for name in TEXT_FIELDS},
        "warm_start": config.warm_start,
        "shuffle_ring": config.shuffle_ring,
        "dp": dp,
        "masks": config.masks == "pairwise",
        "dataset": config.dataset,
        "split": config.split,
        "split_feature": config.split_feature,
        "split_alpha": _text(config.split_alpha),
        "model": config.model,
        "engine": engine_label if engine_label in ENGINES else "in-process",
    }
    if dp:
        kept.update({name: _text(getattr(config, name)) for name in DP_FIELDS})
    return kept


def reset() -> None:
    st.session_state["settings"] = dict(DEFAULTS)


def pace_seconds() -> float:
    return PACES.get(settings()["pace"], 0.0)


def engine() -> tuple[Engine, str]:
    """(engine, topology) of the session's main runs."""
    return ENGINES.get(settings()["engine"], ENGINES["in-process"])


# --------------------------------------------------------------------------- validation


@session.data_cached
def _data_problem(config: Config) -> str | None:
    """Why the configured data cannot be used (a bad CSV cell, too few rows, an impossible
    split), in words; None if it can."""
    if config.is_the_posts_data:
        return None
    try:
        split_for(config)
    except DataError as exc:
        return exc.plain
    return None


@session.data_cached
def _divergence(config: Config) -> str | None:
    """Why the learning rate is refused, if the plaintext protocol predicts divergence, and
    what would work."""
    problem = preflight(config)
    return None if problem is None else refusal(config, problem)


def validate(values: dict[str, Any]) -> tuple[Config | None, dict[str, str]]:
    """The config the settings describe, or None and a message per refused field."""
    errors: dict[str, str] = {}
    numbers: dict[str, int | float] = {}
    for name in TEXT_FIELDS:
        kind = float if name == "learning_rate" else int
        try:
            numbers[name] = parse_number(name, str(values[name]), kind)
        except ConfigError as exc:
            errors[name] = exc.plain
    dp = bool(values["dp"])
    if dp:
        for name in DP_FIELDS:
            try:
                numbers[name] = parse_number(name, str(values[name]), float)
            except ConfigError as exc:
                errors[name] = exc.plain
    if values["shuffle_ring"] and ENGINES.get(values["engine"], ("inprocess", ""))[0] != "inprocess":
        errors["shuffle_ring"] = (
            "The shuffled ring runs in-process only: choose the in-process engine or untick this."
        )
    if values["split"] == "label-skew":
        try:
            numbers["split_alpha"] = parse_number("split_alpha", str(values["split_alpha"]), float)
        except ConfigError as exc:
            errors["split_alpha"] = exc.plain
    if values["dataset"] == "csv" and not values["data_path"]:
        errors["data"] = "Upload a CSV file (or choose a built-in data set) to run."
    elif values["dataset"] == "csv" and not values["target"]:
        errors["data"] = "Choose the target column: the one the model should predict."
    if values["split"] == "by-feature" and not values["split_feature"]:
        errors["split_feature"] = "Choose the feature the hospitals are sorted by."
    if errors:
        return None, errors
    try:
        config = Config(
            hospitals=int(numbers["hospitals"]),
            key_length=int(values["key_length"]),
            learning_rate=float(numbers["learning_rate"]),
            rounds=int(numbers["rounds"]),
            seed=int(numbers["seed"]),
            gradient=values["gradient"],
            warm_start=bool(values["warm_start"]) and not dp,
            encoding=values["encoding"],
            obfuscator=values["obfuscator"],
            dp_epsilon=float(numbers["dp_epsilon"]) if dp else None,
            dp_delta=float(numbers["dp_delta"]) if dp else _defaults.dp_delta,
            dp_clip=float(numbers["dp_clip"]) if dp else _defaults.dp_clip,
            masks="pairwise" if values["masks"] else "none",
            shuffle_ring=bool(values["shuffle_ring"]),
            dataset=values["dataset"],
            data_path=values["data_path"] if values["dataset"] == "csv" else None,
            target=values["target"] if values["dataset"] == "csv" else None,
            split=values["split"],
            split_feature=values["split_feature"] if values["split"] == "by-feature" else None,
            split_alpha=float(numbers.get("split_alpha", _defaults.split_alpha)),
            model=values["model"],
        )
    except ConfigError as exc:
        field = {"data_path": "data", "target": "data", "model": "model"}.get(exc.field, exc.field)
        return None, {field: exc.plain}
    engine_name, _ = ENGINES.get(values["engine"], ENGINES["in-process"])
    if engine_name == "flower":
        why = flower_refusal(config)
        if why is not None:
            return None, {"engine": why[0].upper() + why[1:] + ": choose the in-process engine."}
    problem = _data_problem(config)
    if problem is not None:
        return None, {"data": problem}
    problem = _divergence(config)
    if problem is not None:
        return None, {"learning_rate": problem}
    return config, {}


# --------------------------------------------------------------------------- the sidebar


def _dataset_chosen(store: bool = True) -> None:
    """on_change of Data: store it, and pick the model its target calls for."""
    if store:
        _store("dataset")
    kept = settings()
    if kept["dataset"] == "diabetes":
        kept["model"] = "linear"
    elif kept["dataset"] == "breast-cancer":
        kept["model"] = "logistic"
    else:
        _target_chosen(store=False)
    if kept["split"] in ("by-feature",):
        kept["split_feature"] = None


def _target_chosen(store: bool = True) -> None:
    if store:
        _store("target")
        settings()["upload_note"] = None  # chosen by hand: nothing to explain
    kept = settings()
    if kept["target"]:
        kept["model"] = "logistic" if kept["target"] in kept["csv_two_valued"] else "linear"


def _uploaded() -> None:
    """on_change of the uploader: check the file's shape and keep it in a file of this session."""
    file = st.session_state.get("w_upload")
    kept = settings()
    if file is None:  # removed from the widget: keep the last good file
        return
    data = file.getvalue()
    try:
        preview = inspect_csv(data, file.name)
        target = usable_target(data, file.name, preview)
    except DataError as exc:
        previous = f" {kept['upload_name']} is still used." if kept["data_path"] else ""
        kept["upload_error"] = exc.plain + previous
        return
    path = session.keep_upload(data, file.name)
    kept.update(
        data_path=path,
        upload_name=file.name,
        upload_error=None,
        upload_note=_why_not_last(data, file.name, preview, target),
        csv_columns=preview.columns,
        csv_two_valued=tuple(sorted(preview.two_valued)),
        target=target,
    )
    _target_chosen(store=False)


def _why_not_last(data: bytes, name: str, preview: Any, target: str) -> str | None:
    """When the file's last column (the usual target) was passed over: why, in words."""
    last = preview.columns[-1]
    if target == last:
        return None
    try:
        read_csv(data, last, name)
    except DataError as exc:
        return (
            f"The last column, {last!r}, cannot be the target: {exc.plain} The target is set to {target!r} "
            "instead: choose the column to predict."
        )
    return None


def data_box(errors: dict[str, str]) -> None:
    """The data and the model: a built-in set or the user's CSV, the split, the model."""
    values = settings()
    fields = {"data", "split_feature", "split_alpha", "model"}
    with st.sidebar.expander("Data and model", expanded=bool(fields & set(errors)), key="data-box"):
        st.selectbox(
            "Data",
            list(DATASET_LABELS),
            format_func=DATASET_LABELS.__getitem__,
            help="Which rows the hospitals hold. Diabetes: 442 patients, the post's regression. Breast cancer: "
            "569 tumours, benign or malignant. Your own CSV: a header row and numbers only; nothing leaves "
            "this server.",
            **bind_with("dataset", _dataset_chosen),
        )
        if values["dataset"] == "csv":
            st.file_uploader(
                "CSV file",
                type=["csv"],
                help="A header row of distinct names, then one row per patient; numbers only, except a two-valued "
                "target (e.g. yes/no). At most 20 MB.",
                key="w_upload",
                on_change=_uploaded,
            )
            if values["upload_error"]:
                st.error(values["upload_error"], icon=":material/block:")
            if values["upload_name"]:
                st.caption(f"Using {values['upload_name']}.")
            if values["upload_note"]:
                st.warning(values["upload_note"], icon=":material/swap_horiz:")
            st.download_button(
                "Example CSV (60 diabetes patients)",
                example_csv(),
                file_name="fedviz-example.csv",
                mime="text/csv",
                icon=":material/download:",
            )
            if values["csv_columns"]:
                st.selectbox(
                    "Target column",
                    list(values["csv_columns"]),
                    help="The column to predict: numeric (regression) or two-valued (classification).",
                    **bind_with("target", _target_chosen),
                )
        _error(st, errors, "data")
        st.selectbox(
            "Split",
            list(SPLIT_LABELS),
            format_func=SPLIT_LABELS.__getitem__,
            help="How rows are dealt to hospitals: the way real sites differ. Contiguous: the post's blocks. "
            "Random: every hospital alike. Sorted by a feature: e.g. young and old hospitals. Label skew: each "
            "hospital sees mostly one class (classification only).",
            **bind("split"),
        )
        if values["split"] == "by-feature":
            st.selectbox("Sort hospitals by", _features(values), **bind("split_feature"))
            _error(st, errors, "split_feature")
        if values["split"] == "label-skew":
            st.text_input(
                "Skew α",
                help="Dirichlet α above 0: 0.1 gives lopsided hospitals, 10 nearly even ones.",
                **bind("split_alpha"),
            )
            _error(st, errors, "split_alpha")
        st.radio(
            "Model",
            list(MODEL_LABELS),
            format_func=MODEL_LABELS.__getitem__,
            horizontal=True,
            help="Linear regression predicts a number (squared error, the post). Logistic regression predicts "
            "one of two labels (log-loss); the ring carries its gradient the same way.",
            **bind("model"),
        )
        _error(st, errors, "model")


def _features(values: dict[str, Any]) -> list[str]:
    if values["dataset"] == "csv":
        return [c for c in values["csv_columns"] if c != values["target"]]
    return list(feature_names(values["dataset"]))


def bind_with(name: str, callback: Any) -> dict[str, Any]:
    """`bind`, with another on_change that also stores the setting."""
    return {**bind(name), "on_change": callback, "args": ()}


def show_stale() -> None:
    """Say in the sidebar when the results on show were made with other settings (again after a
    short run taken in by the Run click itself, which ends after the sidebar was drawn)."""
    slot = st.session_state.get("_stale_slot")
    if slot is None:
        return
    if session.is_stale():
        slot.caption("The settings differ from the last run's; the results shown are from that run.")
    else:
        slot.empty()


def remedies_box(errors: dict[str, str]) -> None:
    """The privacy remedies: differential privacy, pairwise masks, the shuffled ring."""
    values = settings()
    fields = {"dp_epsilon", "dp_delta", "dp_clip", "shuffle_ring"}
    with st.sidebar.expander("Privacy remedies", expanded=bool(fields & set(errors)), key="remedies-box"):
        st.toggle(
            "Differential privacy",
            help="Each hospital limits how much any one patient can move its gradient (clipping) and adds "
            "its share of random noise inside the encrypted sum. An accountant turns the noise into a "
            "guarantee ε: the smaller ε, the less anyone can learn about any one patient, and the noisier "
            "the model. Starts the federated phase from zero.",
            **bind("dp"),
        )
        if values["dp"]:
            st.text_input(
                "Privacy budget ε",
                help="The guarantee over all federated rounds, e.g. 1 (strong) or 10 (weak). Must be above 0.",
                **bind("dp_epsilon"),
            )
            _error(st, errors, "dp_epsilon")
            left, right = st.columns(2)
            left.text_input(
                "δ",
                help="The small chance the guarantee may fail, e.g. 1e-05; between 0 and 1.",
                **bind("dp_delta"),
            )
            right.text_input(
                "Clip norm",
                help="The most one patient's gradient may count (its length is cut to this); above 0.",
                **bind("dp_clip"),
            )
            _error(st, errors, "dp_delta")
            _error(st, errors, "dp_clip")
        st.toggle(
            "Pairwise masks",
            help="Every pair of hospitals agrees a secret and adds random numbers that cancel in the full "
            "sum. A partial sum that a curious server and hospital decrypt together is then noise; the "
            "result is unchanged to the last digit.",
            **bind("masks"),
        )
        st.toggle(
            "Shuffle the ring each round",
            help="A new public ring order every round: the ring's weak spot (the first hospital's message) "
            "moves from hospital to hospital instead of always being Hospital 1. In-process engine only.",
            **bind("shuffle_ring"),
        )
        _error(st, errors, "shuffle_ring")
    on = [
        label
        for name, label in (("dp", "DP"), ("masks", "masks"), ("shuffle_ring", "shuffled ring"))
        if values[name]
    ]
    if on:
        st.sidebar.caption("Remedies on: " + ", ".join(on))


def _error(container: Any, errors: dict[str, str], name: str) -> None:
    if name in errors:
        container.error(errors[name], icon=":material/block:")


def _follow_choices(values: dict[str, Any]) -> None:
    """Settings whose choices depend on others, made to agree before anything is checked: the
    feature to sort by is one of the chosen data's features (the first when none is chosen
    yet), so the box never shows one value while the check sees another."""
    if values["split"] == "by-feature":
        options = _features(values)
        if values["split_feature"] not in options:
            values["split_feature"] = options[0] if options else None


def sidebar() -> Config | None:
    """Draw the shared controls; store and return the validated config (None if refused)."""
    values = settings()
    _follow_choices(values)
    config, errors = validate(values)
    sb = st.sidebar
    sb.header("Experiment")

    key_length = sb.selectbox(
        "Key length",
        KEY_LENGTHS,
        format_func=lambda b: f"{b} bits · ≈{SECURITY_BITS[b]}-bit security" + (" ⚠" if b == 1024 else ""),
        help="How hard the lock is to break (the length of the Paillier modulus n): longer keys protect for "
        "longer but every round is slower. "
        "2048 bits is today's minimum for new systems (NIST). Words: Glossary › key length, security bits.",
        **bind("key_length"),
    )
    if key_length == 1024:
        sb.warning(WARN_1024_BITS, icon=":material/warning:")

    sb.text_input(
        "Hospitals",
        help=f"How many hospitals train together: 2 to {MAX_HOSPITALS} (each keeps at least 5 patients). "
        "With 3 or more no single hospital can work out another's contribution; with 2 it can.",
        **bind("hospitals"),
    )
    _error(sb, errors, "hospitals")
    if config is not None and config.hospitals == 2:
        sb.warning(WARN_TWO_HOSPITALS, icon=":material/warning:")
        sb.page_link(PRIVACY_PAGE, label="Why at least 3 hospitals?")

    sb.text_input(
        "Learning rate",
        help="How big a step every model takes each round (η), e.g. 0.01 or 1e-3: larger learns faster "
        "until it overshoots and breaks; fedviz checks before running and says what works. Words: "
        "Glossary › learning rate, gradient descent.",
        **bind("learning_rate"),
    )
    _error(sb, errors, "learning_rate")

    data_box(errors)
    remedies_box(errors)

    advanced = {"rounds", "seed", "engine"}
    with sb.expander("Advanced", expanded=bool(advanced & set(errors))):
        st.text_input(
            "Rounds",
            help=f"How many times each hospital improves its model alone, then as many times together "
            f"(1 to {MAX_ROUNDS}). More rounds: better models, longer runs.",
            **bind("rounds"),
        )
        _error(st, errors, "rounds")
        st.text_input(
            "Seed",
            help="Which random shuffle deals the patients and picks the test set, 0 to 4294967295; the same "
            "seed gives the same numbers every time (42 is the post's).",
            **bind("seed"),
        )
        _error(st, errors, "seed")
        st.radio(
            "Gradient",
            GRADIENT_MODES,
            horizontal=True,
            help="What each hospital sends: sum adds up every patient's contribution (the post); mean divides "
            "by its number of patients, so big and small hospitals weigh the same. Words: Glossary › gradient.",
            **bind("gradient"),
        )
        warm_help = (
            "On: training together continues from what each hospital learnt alone (the post). Off: "
            "everyone starts from scratch, and the result equals training on all data pooled in one place. "
            "Differential privacy always starts from scratch. Words: Glossary › warm start."
        )
        if values["dp"]:  # shown as it is used; the kept setting returns when DP is switched off
            st.session_state["w_warm_start_dp"] = False
            st.toggle("Warm start", help=warm_help, disabled=True, key="w_warm_start_dp")
            st.caption("Off under differential privacy: a local model depends on every one of its patients.")
        else:
            st.toggle("Warm start", help=warm_help, **bind("warm_start"))
        st.selectbox(
            "Encoding",
            ENCODINGS,
            format_func=ENCODING_LABELS.__getitem__,
            help="How a gradient becomes the numbers that are encrypted: packed puts many values "
            "in each ciphertext (less to send); per value sends one ciphertext each, as the post does. "
            "Same results either way. Words: Glossary › packed slots, encoding.",
            **bind("encoding"),
        )
        st.selectbox(
            "Encryption randomness",
            OBFUSCATORS,
            format_func=OBFUSCATOR_LABELS.__getitem__,
            help="Each encryption mixes in fresh randomness so equal values look different. DJN is faster "
            "and adds a short-exponent assumption (see the README); standard relies on Paillier's "
            "assumption alone. Words: Glossary › obfuscator, DJN.",
            **bind("obfuscator"),
        )
        st.selectbox(
            "Engine",
            list(ENGINES),
            format_func=ENGINE_LABELS.__getitem__,
            help="In-process: every party is an object in this server (fast). Flower: each hospital "
            "and the key holder is its own process on a local Flower deployment (SuperLink, one "
            "SuperNode each); the same numbers, but every message takes seconds. Ring is the post's "
            "protocol with sealed hops; star sends all gradients to the relay at once.",
            **bind("engine"),
        )
        _error(st, errors, "engine")
        st.button("Reset to the post's defaults", width="stretch", on_click=reset)

    st.session_state["config"] = config
    current = session.running()
    if current is not None and current.purpose == "main" and current.job.config != config:
        session.cancel("a setting changed")
    st.session_state["_stale_slot"] = sb.empty()
    show_stale()
    return config
