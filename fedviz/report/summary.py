"""A consumer of the event stream that keeps what a report needs: MSE histories, the
final table and timings. The CLI and the dashboard's downloads both build on it, so they
always agree.

It keeps O(rounds x hospitals) floats and no ciphertexts. Its JSON is always valid JSON:
non-finite floats (a diverging run's MSE) become null, and `status` says whether the run
finished, failed (with `error`) or was interrupted, `rounds_completed` how far it got.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from fedviz.config import Config
from fedviz.events import (
    Event,
    FederatedRound,
    KeysGenerated,
    LocalRound,
    MasksAgreed,
    PartiesStarted,
    Party,
    PrivacyBudget,
    ReferenceComputed,
    RunFinished,
    RunStarted,
    Standardised,
)
from fedviz.protocol import hospital_name

Status = Literal["finished", "failed", "interrupted", "running"]


@dataclass
class RunRecord:
    """What a finished (or interrupted) run produced, in plain data."""

    config: Config | None = None
    patients: tuple[int, ...] = ()
    local: list[tuple[float, ...]] = field(default_factory=list)
    federated: list[tuple[float, ...]] = field(default_factory=list)
    centralized: tuple[float, ...] = ()
    optimum: float | None = None
    keys: KeysGenerated | None = None
    finished: RunFinished | None = None
    error: str | None = None
    """Why the run failed, in words (set by whoever ran it); None if it did not fail."""
    interrupted: bool = False
    """True if the run was stopped before it finished (Ctrl-C, a Stop button)."""
    engine: str = "in-process"
    parties: tuple[Party, ...] = ()
    """A distributed run's parties (name, role, pid, node id); none in-process."""
    budget: PrivacyBudget | None = None
    masks: MasksAgreed | None = None
    features: tuple[str, ...] = ()
    target: str = ""
    classes: tuple[str, ...] = ()
    test_rows: int = 0
    own_test_rows: tuple[int, ...] = ()
    standardised: Standardised | None = None
    reference: ReferenceComputed | None = None
    local_accuracy: tuple[float, ...] = ()
    federated_accuracy: tuple[float, ...] = ()

    @classmethod
    def of(cls, events: Iterable[Event]) -> RunRecord:
        """The record of these events, folded in order."""
        record = cls()
        for event in events:
            record.add(event)
        return record

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.config, self.patients = event.config, event.patients
            self.features, self.target, self.classes = event.features, event.target, event.classes
            self.test_rows = event.test_patients
            self.own_test_rows = event.own_test_rows
        elif isinstance(event, ReferenceComputed):
            self.centralized, self.optimum = event.centralized_mse, event.optimum_mse
            self.reference = event
        elif isinstance(event, Standardised):
            self.standardised = event
        elif isinstance(event, LocalRound):
            self.local.append(event.mse)
            self.local_accuracy = event.accuracy
        elif isinstance(event, KeysGenerated):
            self.keys = event
        elif isinstance(event, FederatedRound):
            self.federated.append(event.mse)
            self.federated_accuracy = event.accuracy
        elif isinstance(event, RunFinished):
            self.finished = event
        elif isinstance(event, PartiesStarted):
            self.engine, self.parties = f"{event.engine} ({event.topology})", event.parties
        elif isinstance(event, PrivacyBudget):
            self.budget = event
        elif isinstance(event, MasksAgreed):
            self.masks = event

    def fail(self, message: str) -> None:
        """Record that the run failed, and why."""
        self.error = message

    def interrupt(self) -> None:
        """Record that the run was stopped before it finished."""
        self.interrupted = True

    @property
    def status(self) -> Status:
        """ "finished", "failed", "interrupted", or "running" while none of these happened."""
        if self.finished is not None:
            return "finished"
        if self.error is not None:
            return "failed"
        return "interrupted" if self.interrupted else "running"

    @property
    def names(self) -> list[str]:
        return [hospital_name(i) for i in range(len(self.patients))]

    def table(self) -> list[dict[str, Any]]:
        """One row per hospital: patients, final local and federated test MSE, improvement."""
        rows = []
        for i, name in enumerate(self.names):
            local = self.local[-1][i] if self.local else None
            fed = self.federated[-1][i] if self.federated else None
            rows.append(
                {
                    "hospital": name,
                    "patients": self.patients[i],
                    "local_mse": local,
                    "federated_mse": fed,
                    "improvement": (local - fed) if local is not None and fed is not None else None,
                }
            )
        return rows

    @property
    def pooled_comparable(self) -> tuple[float, ...]:
        """The pooled descent to set beside the federated phase: rounds R+1 .. 2R after a warm
        start (the same total rounds), rounds 1 .. R after a cold one (the same start)."""
        if self.reference is not None and self.reference.continued_mse:
            return self.reference.continued_mse
        return self.centralized

    def history_rows(self) -> list[dict[str, Any]]:
        """Long-format MSE history: phase, round, series, mse (for CSV)."""
        rows: list[dict[str, Any]] = []
        for phase, history in (("local", self.local), ("federated", self.federated)):
            for r, values in enumerate(history, start=1):
                for name, value in zip(self.names, values, strict=True):
                    rows.append({"phase": phase, "round": r, "series": name, "mse": value})
        for r, value in enumerate(self.centralized, start=1):
            rows.append({"phase": "reference", "round": r, "series": "pooled data (plaintext)", "mse": value})
        return rows

    def summary(self) -> dict[str, Any]:
        """The run as JSON-ready data (the CLI's --json object); non-finite floats are None."""
        out: dict[str, Any] = {
            "status": self.status,
            "engine": self.engine,
            "parties": [asdict(p) for p in self.parties],
            "config": self.config.to_dict() if self.config else None,
            "patients": list(self.patients),
            "local_mse": list(self.local[-1]) if self.local else [],
            "federated_mse": list(self.federated[-1]) if self.federated else [],
            "centralized_mse": self.centralized[-1] if self.centralized else None,
            "optimum_mse": self.optimum,
            "centralized_same_total_rounds_mse": self.reference.continued_mse[-1]
            if self.reference is not None and self.reference.continued_mse
            else None,
            "rounds_completed": {"local": len(self.local), "federated": len(self.federated)},
        }
        if self.config is not None:
            out["metric"] = self.config.metric
            out["data"] = {
                "dataset": self.config.dataset,
                "split": self.config.split,
                "features": list(self.features),
                "target": self.target,
                "test_rows": self.test_rows,
            }
            if self.own_test_rows:  # each site: what it loaded, held out and trained on
                out["data"]["test_rows_per_hospital"] = list(self.own_test_rows)
                out["data"]["rows_per_hospital"] = [
                    p + t for p, t in zip(self.patients, self.own_test_rows, strict=True)
                ]
            out["local_score"] = out["local_mse"]
            out["federated_score"] = out["federated_mse"]
            if self.classes:
                out["classes"] = list(self.classes)
                out["local_accuracy"] = list(self.local_accuracy)
                out["federated_accuracy"] = list(self.federated_accuracy)
                if self.reference is not None:
                    out["centralized_accuracy"] = self.reference.centralized_accuracy
                    out["optimum_accuracy"] = self.reference.optimum_accuracy
        if self.standardised is not None:
            out["standardisation"] = {
                "means": list(self.standardised.means),
                "stds": list(self.standardised.stds),
                "through": "the encrypted ring",
            }
        if self.keys is not None:
            out["encoding"] = {
                "name": self.keys.encoding,
                "obfuscator": self.keys.obfuscator,
                "ciphertexts_per_message": self.keys.ciphertexts_per_message,
                "slot_bits": self.keys.slot_bits,
                "slots": self.keys.slots,
            }
        if self.budget is not None:
            b = self.budget
            out["dp"] = {
                "epsilon": b.epsilon,
                "delta": b.delta,
                "noise_multiplier": b.noise_multiplier,
                "clip": b.clip,
                "rounds": b.rounds,
                "epsilon_against_coalitions": {str(k): e for k, e in b.coalition_epsilons},
            }
        if self.masks is not None:
            out["masks"] = {
                "kind": "pairwise",
                "pairs": self.masks.pairs,
                "agreement_s": self.masks.seconds,
                "agreement_bytes": self.masks.public_bytes,
            }
        if self.finished is not None:
            out["bytes_per_round"] = self.finished.bytes_per_round
            out["timings_s"] = asdict(self.finished.timings)
        if self.error is not None:
            out["error"] = self.error
        safe: dict[str, Any] = json_safe(out)
        return safe

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=None, allow_nan=False, default=_plain_scalar)


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (inf, -inf, nan) replaced by None, recursively
    through dicts, lists and tuples (tuples become lists), so `json.dumps(allow_nan=False)`
    never fails and the result is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def _plain_scalar(value: object) -> object:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
