"""The one stream of typed events a run yields. Everything is small, frozen and plain
(ints, floats, strings, tuples), so any consumer can keep, chart or serialise what it needs.

The engine keeps no transcript of its own: an event is yielded and forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fedviz.config import Config

Phase = Literal["local", "keygen", "federated"]
Vector = tuple[float, ...]


@dataclass(frozen=True)
class RunStarted:
    config: Config
    patients: tuple[int, ...]
    """Training patients per hospital, in ring order."""
    test_patients: int
    features: tuple[str, ...]
    target: str = "disease progression"
    classes: tuple[str, ...] = ()
    """For classification, the names of labels 0 and 1; empty for regression."""
    own_test_rows: tuple[int, ...] = ()
    """When each hospital holds out its own test rows (one file per site): how many, per
    hospital; `test_patients` is then their total."""


@dataclass(frozen=True)
class Standardised:
    """The pooled feature means and standard deviations, summed through the encrypted ring
    (each hospital's count, sums and sums of squares; only the total was decrypted)."""

    means: Vector
    stds: Vector
    rows: int
    ciphertexts: int
    """Ciphertexts each hospital sent for it."""
    seconds: float


@dataclass(frozen=True)
class ReferenceComputed:
    """Plaintext yardsticks (no privacy): gradient descent on the pooled training data with
    the step the ring takes, and the least-squares optimum on the pooled data."""

    centralized_mse: tuple[float, ...]
    """The test metric (MSE, or log-loss for logistic regression) after each round 1..R."""
    optimum_mse: float
    """The test metric of the pooled optimum (least squares; scikit-learn's logistic fit)."""
    centralized_accuracy: float | None = None
    """Classification only: test accuracy of pooled gradient descent after round R."""
    optimum_accuracy: float | None = None
    continued_mse: tuple[float, ...] = ()
    """With a warm start: the pooled descent's rounds R+1 .. 2R, the same total number of rounds
    as R local then R federated ones (empty with a cold start, where rounds 1 .. R compare)."""


@dataclass(frozen=True)
class PhaseStarted:
    phase: Phase
    rounds: int


@dataclass(frozen=True)
class LocalRound:
    """After local round `round` (1-based): each hospital's test metric on its own model
    (MSE, or log-loss for logistic regression; the field keeps the post's name)."""

    round: int
    mse: Vector
    accuracy: Vector = ()
    """Classification only: each hospital's test accuracy."""


@dataclass(frozen=True)
class KeysGenerated:
    bits: int
    seconds: float
    n: int
    """The public modulus (public by definition)."""
    obfuscator: str
    encoding: str
    ciphertexts_per_message: int
    slot_bits: int | None
    """Packed layout: bits per slot (None for per-value)."""
    slots: int | None
    carry_bits: int | None
    max_abs: float
    """Largest |gradient value| one hospital may send."""


@dataclass(frozen=True)
class Ciphertext:
    value: int
    exponent: int


@dataclass(frozen=True)
class RingHop:
    """What travelled on one hop: from `sender` (position `hop`, 1-based) to `receiver`."""

    round: int
    hop: int
    sender: str
    receiver: str
    ciphertexts: tuple[Ciphertext, ...]
    contributions: int
    nbytes: int


@dataclass(frozen=True)
class EncryptionProgress:
    """A federated round is waiting for encryption randomness: `ready` of `hospitals` have
    theirs. Yielded only while a round waits (at most every `PROGRESS_EVERY_S`), so a slow
    round still shows movement; fast runs never see it."""

    round: int
    ready: int
    hospitals: int
    waited_s: float


@dataclass(frozen=True)
class Party:
    """One process taking part in a distributed run (public facts only)."""

    name: str
    role: Literal["hospital", "key holder", "relay", "superlink"]
    pid: int
    node_id: int | None
    """Flower's node id (None for the SuperLink and the relay, which are not nodes)."""


@dataclass(frozen=True)
class PartiesStarted:
    """A distributed engine's parties, once all of them are up (in-process runs have none)."""

    engine: str
    topology: str
    parties: tuple[Party, ...]


@dataclass(frozen=True)
class Exchange:
    """One message exchange of a distributed run, as the relay saw it: the party asked, what
    for (`step`: "local training", "hop 2", "decrypt", ...), its round trip, and the size and
    first bytes of what the relay carried. A sealed hop's bytes are opaque to the relay; only
    the addressed hospital can open them."""

    round: int
    step: str
    party: str
    seconds: float
    nbytes: int
    preview: str
    """Hex of the first bytes the relay saw ("" when it carried nothing to show)."""
    sealed: bool


@dataclass(frozen=True)
class HospitalGradients:
    """Simulation ground truth, not a message: each hospital's own plaintext gradient in
    this round. Only that hospital knows it; the privacy pages use it to score attacks."""

    round: int
    gradients: tuple[Vector, ...]
    """What each hospital put into the ring (under differential privacy: clipped and noised)."""
    clean: tuple[Vector, ...] | None = None
    """Under differential privacy, each hospital's noiseless gradient (None otherwise)."""


@dataclass(frozen=True)
class PrivacyBudget:
    """Differential privacy's public plan for the federated phase, from the accountant."""

    epsilon: float
    delta: float
    clip: float
    noise_multiplier: float
    rounds: int
    coalition_epsilons: tuple[tuple[int, float], ...]
    """(k, epsilon) against a coalition of k hospitals that subtracts its own noise shares."""


@dataclass(frozen=True)
class MasksAgreed:
    """Every pair of hospitals agreed a mask seed (X25519); the seeds stay with the pairs."""

    hospitals: int
    pairs: int
    seconds: float
    public_bytes: int


@dataclass(frozen=True)
class FederatedRound:
    round: int
    mse: Vector
    average_gradient: Vector
    """What the server broadcast in the clear."""
    encrypt_s: float
    add_s: float
    decrypt_s: float
    order: tuple[int, ...] = ()
    """The ring's order this round (0-based hospital indices); empty for the star."""
    mask_s: float = 0.0
    """Of `encrypt_s`, the time spent drawing and adding pairwise masks."""
    accuracy: Vector = ()
    """Classification only: each hospital's test accuracy."""


@dataclass(frozen=True)
class Timings:
    keygen: float
    local: float
    federated: float
    """Wall time of all federated rounds: encryption (obfuscators included), ring additions,
    decryption, and the plaintext steps in between."""
    encrypt: float
    add: float
    decrypt: float
    total: float
    masks: float = 0.0
    """Of `encrypt`, drawing and adding pairwise masks (the agreement itself included)."""


@dataclass(frozen=True)
class RunFinished:
    local_mse: Vector
    federated_mse: Vector
    centralized_mse: float
    optimum_mse: float
    bytes_per_round: int
    timings: Timings
    local_accuracy: Vector = ()
    federated_accuracy: Vector = ()


Event = (
    RunStarted
    | Standardised
    | PartiesStarted
    | Exchange
    | ReferenceComputed
    | PhaseStarted
    | LocalRound
    | KeysGenerated
    | PrivacyBudget
    | MasksAgreed
    | EncryptionProgress
    | RingHop
    | HospitalGradients
    | FederatedRound
    | RunFinished
)
