"""What every page shares: the sidebar controls, the session's last run, and running the
engine with a live view. Drawing only; every number comes from the `fedviz` engine.

Session state (per browser session, never `st.cache_resource`):
- `settings`: the controls' values, kept across page switches.
- `config`: the validated `Config` of the current controls, or None while one is invalid.
- `last_run`: a `RunState` of the last finished run (its `Server`, holding the private key,
  stays in this session only and is never rendered).
- `active`: progress of a run in flight; found at the start of a script run, it means the
  previous run was stopped or interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

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
from fedviz.engines.inprocess import preflight, run
from fedviz.errors import ConfigError, FedvizError, TrainingDiverged
from fedviz.events import Event, FederatedRound, KeysGenerated, LocalRound, PhaseStarted, RunFinished
from fedviz.privacy.attacks import Observations
from fedviz.protocol import Server
from fedviz.report.summary import RunRecord
from fedviz.report.transcript import Transcript

PAGES = Path(__file__).resolve().parent
TRAINING_PAGE, RING_PAGE, PRIVACY_PAGE = (
    str(PAGES / f"{name}.py") for name in ("training", "ring", "privacy")
)
"""Absolute page paths, so the app also runs from an entry script elsewhere (tests)."""

PACES = {"full speed": 0.0, "watchable": 0.02, "slow": 0.15}
"""Presentation pauses after each training round (seconds): the UI's, never the engine's;
reported timings exclude them."""
DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in Config().to_dict().items() if k != "learning_rate"},
    "learning_rate": str(Config().learning_rate),
    "pace": "watchable",
}
ENCODING_LABELS = {
    "packed": "packed (11 values per ciphertext, fast)",
    "per-value": "per value (one ciphertext each, as in the post)",
}
OBFUSCATOR_LABELS = {"djn": "DJN short exponent (fast)", "standard": "standard r^n (phe's own)"}
PHASE_LABELS = {"local": "Local training", "keygen": "Key generation", "federated": "Federated training"}


@dataclass
class RunState:
    """The last finished run of this session, as the pages read it."""

    config: Config
    record: RunRecord = field(default_factory=RunRecord)
    transcript: Transcript = field(default_factory=Transcript)
    observations: Observations = field(default_factory=Observations)
    server: Server | None = None
    seconds: float = 0.0
    first_point_s: float | None = None

    def add(self, event: Event) -> None:
        self.record.add(event)
        self.transcript.add(event)
        self.observations.add(event)

    def __repr__(self) -> str:  # never render the server's internals
        return f"RunState({self.config})"


# --------------------------------------------------------------------------- controls


def widget(name: str) -> str:
    """The widget key of a setting, seeded from the kept settings (survives page switches)."""
    settings = st.session_state.setdefault("settings", dict(DEFAULTS))
    key = f"w_{name}"
    if key not in st.session_state:
        st.session_state[key] = settings[name]
    return key


def _keep_settings() -> None:
    """Copy every control's current value into the kept settings (a control not drawn on
    this page keeps its last value there)."""
    settings = st.session_state.setdefault("settings", dict(DEFAULTS))
    for name in DEFAULTS:
        if f"w_{name}" in st.session_state:
            settings[name] = st.session_state[f"w_{name}"]


@st.cache_data(show_spinner=False, max_entries=64)
def _preflight_message(config: Config) -> str | None:
    """Why the learning rate is refused, if the plaintext protocol predicts divergence
    (public data only, so the cache may be shared)."""
    problem = preflight(config)
    return None if problem is None else f"With these settings training would diverge: {problem}."


def sidebar() -> Config | None:
    """Draw the shared controls; store and return the validated config (None if invalid)."""
    sb = st.sidebar
    sb.header("Experiment")
    errors: dict[str, str] = {}

    key_length = sb.selectbox(
        "Key length",
        KEY_LENGTHS,
        key=widget("key_length"),
        format_func=lambda b: f"{b} bits · ≈{SECURITY_BITS[b]}-bit security" + (" ⚠" if b == 1024 else ""),
        help="Length of the Paillier modulus n. 2048 bits is today's minimum for new systems (NIST).",
    )
    if key_length == 1024:
        sb.warning(WARN_1024_BITS, icon=":material/warning:")

    hospitals = sb.number_input(
        "Hospitals",
        min_value=2,
        max_value=MAX_HOSPITALS,
        step=1,
        key=widget("hospitals"),
        help=f"2 to {MAX_HOSPITALS}: each keeps at least 5 of the 392 training patients.",
    )
    if hospitals == 2:
        sb.warning(WARN_TWO_HOSPITALS, icon=":material/warning:")
        sb.page_link(PRIVACY_PAGE, label="Why at least 3 hospitals?", icon=":material/shield_lock:")

    lr_text = sb.text_input(
        "Learning rate", key=widget("learning_rate"), help="Gradient-descent step size η, e.g. 0.01 or 1e-3."
    )
    lr_slot = sb.empty()

    with sb.expander("Advanced"):
        rounds = st.number_input(
            "Rounds",
            min_value=1,
            max_value=MAX_ROUNDS,
            step=1,
            key=widget("rounds"),
            help="Rounds of local training, then as many federated rounds.",
        )
        seed = st.number_input(
            "Seed",
            min_value=0,
            max_value=2**32 - 1,
            step=1,
            key=widget("seed"),
            help="Seed of the shuffle and the test split (42 is the post's).",
        )
        gradient = st.radio(
            "Gradient",
            GRADIENT_MODES,
            key=widget("gradient"),
            horizontal=True,
            help="sum: the post's delta·X. mean: divided by the hospital's patients.",
        )
        warm_start = st.toggle(
            "Warm start",
            key=widget("warm_start"),
            help="Federated rounds continue from each hospital's local model (the post). "
            "Off: start from zero, which equals pooled gradient descent.",
        )
        encoding = st.selectbox(
            "Encoding", ENCODINGS, key=widget("encoding"), format_func=ENCODING_LABELS.__getitem__
        )
        obfuscator = st.selectbox(
            "Encryption randomness",
            OBFUSCATORS,
            key=widget("obfuscator"),
            format_func=OBFUSCATOR_LABELS.__getitem__,
            help="DJN adds a short-exponent assumption (see the README); "
            "standard relies on Paillier's assumption alone.",
        )
        if st.button("Reset to the post's defaults", width="stretch"):
            st.session_state["settings"] = dict(DEFAULTS)
            for name in DEFAULTS:
                st.session_state.pop(f"w_{name}", None)
            st.rerun()

    config: Config | None = None
    try:
        lr = parse_number("learning_rate", lr_text, float)
        config = Config(
            hospitals=int(hospitals),
            key_length=int(key_length),
            learning_rate=float(lr),
            rounds=int(rounds),
            seed=int(seed),
            gradient=gradient,
            warm_start=bool(warm_start),
            encoding=encoding,
            obfuscator=obfuscator,
        )
    except ConfigError as exc:
        errors[exc.field] = _plain(exc)
    if config is not None:
        problem = _preflight_message(config)
        if problem is not None:
            errors["learning_rate"] = problem
            config = None
    if "learning_rate" in errors:
        lr_slot.error(errors.pop("learning_rate"), icon=":material/block:")
    for message in errors.values():
        sb.error(message, icon=":material/block:")
    st.session_state["config"] = config
    _keep_settings()
    if is_stale():
        sb.caption("The settings differ from the last run's; results shown are from that run.")
    return config


def _plain(exc: ConfigError) -> str:
    names = {
        "learning_rate": "Learning rate",
        "key_length": "Key length",
        "hospitals": "Hospitals",
        "rounds": "Rounds",
        "seed": "Seed",
    }
    return f"{names.get(exc.field, exc.field)}: {exc.value!r} is not allowed — use {exc.allowed}."


def is_stale() -> bool:
    """True when valid settings differ from those of the results on show."""
    last, config = last_run(), current_config()
    return last is not None and config is not None and last.config != config


# --------------------------------------------------------------------------- state


def current_config() -> Config | None:
    config = st.session_state.get("config")
    return config if isinstance(config, Config) else None


def last_run() -> RunState | None:
    state = st.session_state.get("last_run")
    return state if isinstance(state, RunState) else None


def describe(config: Config) -> str:
    return (
        f"{config.hospitals} hospitals · {config.key_length}-bit keys · η {config.learning_rate:g} · "
        f"{config.rounds} rounds · seed {config.seed} · {config.gradient} gradient · "
        f"{'warm' if config.warm_start else 'cold'} start · {config.encoding}"
    )


def stale_notice() -> None:
    """Say so when the shown results were made with other settings (they are kept, not erased)."""
    last = last_run()
    if last is not None and is_stale():
        st.info(
            f"Settings changed since this run. Showing the last run ({describe(last.config)}). "
            "Press **Run** on the Training page to refresh.",
            icon=":material/history:",
        )


def interrupted_notice() -> None:
    """A run in flight when this script run started was stopped (Stop, or a control changed)."""
    active = st.session_state.pop("active", None)
    if active:
        kept = " The previous results are kept." if last_run() else ""
        st.warning(
            f"The run was stopped during {active['where']} after {active['elapsed']:.1f} s.{kept}",
            icon=":material/stop_circle:",
        )
    error = st.session_state.pop("run_error", None)
    if error:
        st.error(error, icon=":material/block:")


# --------------------------------------------------------------------------- running


Listener = Callable[[Event, RunState, float], None]


def execute(config: Config, listener: Listener | None = None, keep: bool = True) -> RunState | None:
    """Run the engine for this session; on success (and `keep`) the result replaces `last_run`.

    A failure is recorded in words (`run_error`) and the previous results stay. A Stop (a
    rerun) interrupts at the listener's next `st.*` call; the `active` marker then tells the
    next script run what happened.
    """
    state = RunState(config)
    started = time.perf_counter()
    st.session_state["active"] = {"where": "key generation", "elapsed": 0.0}
    stream = None
    try:
        state.server = Server(config.key_length, config.obfuscator)
        stream = run(config, server=state.server)
        for event in stream:
            state.add(event)
            elapsed = time.perf_counter() - started
            if isinstance(event, FederatedRound) and state.first_point_s is None:
                state.first_point_s = elapsed
            st.session_state["active"] = {"where": where(event, config), "elapsed": elapsed}
            if listener is not None:
                listener(event, state, elapsed)
    except TrainingDiverged as exc:
        st.session_state["run_error"] = f"The run stopped: {exc}. The previous results are kept."
        return None
    except FedvizError as exc:
        st.session_state["run_error"] = f"The run failed: {exc}. The previous results are kept."
        return None
    except Exception as exc:  # never a traceback on the page
        st.session_state["run_error"] = (
            f"The run failed unexpectedly ({type(exc).__name__}: {exc}). The previous results are kept."
        )
        return None
    finally:
        if stream is not None:
            stream.close()
        if "run_error" in st.session_state:
            st.session_state.pop("active", None)
    state.seconds = time.perf_counter() - started
    st.session_state.pop("active", None)
    if keep:
        st.session_state["last_run"] = state
    return state


def where(event: Event, config: Config) -> str:
    """Where a run stands after `event`, in words."""
    if isinstance(event, LocalRound):
        return f"local training (round {event.round} of {config.rounds})"
    if isinstance(event, FederatedRound):
        return f"federated training (round {event.round} of {config.rounds})"
    if isinstance(event, KeysGenerated):
        return "federated training (round 0)"
    if isinstance(event, PhaseStarted):
        return PHASE_LABELS[event.phase].lower()
    if isinstance(event, RunFinished):
        return "the end of the run"
    return "setup"


def progress(event: Event, config: Config) -> float:
    """Fraction of the run done after `event` (local rounds ~ 10 %, federated ~ 90 %)."""
    if isinstance(event, LocalRound):
        return 0.1 * event.round / config.rounds
    if isinstance(event, KeysGenerated):
        return 0.12
    if isinstance(event, FederatedRound):
        return 0.12 + 0.88 * event.round / config.rounds
    if isinstance(event, RunFinished):
        return 1.0
    return 0.0


def require_run(why: str) -> RunState:
    """The last run, or (before any) the page's empty state with an offer to run; stops there."""
    state = last_run()
    if state is None:
        offer_run(why)
        st.stop()
    assert state is not None
    stale_notice()
    return state


def number_table(frame: Any, key: str, fmt: str = "%.6g") -> None:
    """A full-height table of numbers (first column the labels)."""
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key=key,
        height=36 * (len(frame) + 1) + 3,
        column_config={c: st.column_config.NumberColumn(format=fmt) for c in frame.columns[1:]},
    )


def round_slider(label: str, first: int, last: int, key: str, value: int | None = None, **kwargs: Any) -> int:
    """A slider over rounds first..last, or just `first` when there is nothing to choose."""
    if last <= first:
        st.caption(f"{label}: {first}")
        return first
    return int(st.slider(label, first, last, first if value is None else value, key=key, **kwargs))


def offer_run(where_: str) -> None:
    """The empty state of a page that needs a run: say so, and offer to run here."""
    config = current_config()
    st.info(f"No run yet in this session. {where_}", icon=":material/info:")
    if config is None:
        st.caption("Fix the settings in the sidebar first.")
        return
    if st.button(f"Run now ({describe(config)})", type="primary", key="offer-run"):
        with st.spinner("Running…"):
            execute(config)
        st.rerun()
