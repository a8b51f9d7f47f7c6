"""One federated round told step by step, with the numbers of a real run, and the ring picture
that highlights who acts.

Invariants:
- Every number a step shows comes from the run's events as a session folds them: the
  modulus and the agreed encoding (`KeysGenerated`) and each hop's ciphertexts, sender,
  receiver and contributions (`RingHop`) from the `Transcript`; each hospital's gradient
  (`HospitalGradients`), the broadcast average and the ring order (`FederatedRound`) from the
  `Observations`; the test metric (`LocalRound`, `FederatedRound`; MSE for the post's linear
  model) and the feature names (`RunStarted`) from the `RunRecord`.
  Nothing is recomputed from the data and no number is typed in.
- A round is told in at most `MAX_STAGES` stages whatever the hospital count: beyond
  `GROUP_ABOVE` hospitals the middle ones form one stage whose hospital the reader picks.
- Names, order and message sizes come from the hops, so packed and per-value encodings, a
  shuffled ring and Flower's star are told as they happened.
- Its picture is `fedviz.story.diagram.ring_dot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fedviz.config import Config
from fedviz.crypto.encoding import FRACTION_BITS
from fedviz.events import KeysGenerated, RingHop
from fedviz.privacy.attacks import Observations, exposed_hospitals
from fedviz.protocol import SERVER_NAME, hospital_name
from fedviz.report.summary import RunRecord
from fedviz.report.transcript import Transcript

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_POWER = "2⁻" + str(FRACTION_BITS).translate(_SUPERSCRIPT)
"""The fixed-point grid every value is written on, as text (2⁻⁵⁶)."""
GROUP_ABOVE = 5
"""Up to this many hospitals every one has its own stage; beyond, hospitals 3..n-1 share one."""
MAX_STAGES = 8
"""Keys, hospitals 1 and 2, the middle group, hospital n, (a star's relay,) decrypt, broadcast."""
EVERY_HOSPITAL = "every hospital"
"""The receiver of what the server publishes to all (the public key, the average)."""

StageKind = Literal["keys", "hop", "relay", "decrypt", "broadcast"]


@dataclass(frozen=True)
class Stage:
    """One step of the walkthrough; a `hop` stage covers ring positions `first`..`last`
    (1-based; a group when `last > first`, for the reader to pick one)."""

    kind: StageKind
    label: str
    first: int = 0
    last: int = 0

    @property
    def grouped(self) -> bool:
        return self.last > self.first


@dataclass(frozen=True)
class Focus:
    """What the ring picture highlights: the acting parties and the message in flight."""

    parties: tuple[str, ...] = ()
    edge: tuple[str, str] | None = None
    label: str = ""


@dataclass(frozen=True)
class MseChange:
    """One hospital's test metric before and after the round's step (None: not reported, as
    for the zero model of a cold start)."""

    hospital: str
    before: float | None
    after: float


@dataclass(frozen=True)
class Step:
    """One step in words and numbers: who acts, what it holds, what it has just learned and
    what it cannot learn."""

    title: str
    actor: str
    does: str
    holds: str
    learned: str
    cannot: str
    facts: tuple[tuple[str, str], ...] = ()
    vectors: tuple[tuple[str, tuple[float, ...]], ...] = ()
    """Named vectors over the run's features (a gradient, the total, the average)."""
    ciphertext: str | None = None
    """The (first) ciphertext sent in this step, shortened."""
    mse: tuple[MseChange, ...] = ()
    focus: Focus = Focus()

    @property
    def text(self) -> str:
        """Everything the step says, as one string (numbers formatted by `fmt`)."""
        parts = [self.title, self.actor, self.does, self.holds, self.learned, self.cannot]
        parts += [f"{label}: {value}" for label, value in self.facts]
        parts += [f"{name}: " + ", ".join(fmt(v) for v in values) for name, values in self.vectors]
        parts += [self.ciphertext or ""]
        parts += [f"{m.hospital}: {fmt_mse(m.before)} → {fmt_mse(m.after)}" for m in self.mse]
        return "\n".join(parts)


@dataclass(frozen=True)
class RoundView:
    """What one round's story needs, gathered from the folded events."""

    config: Config
    round: int
    keys: KeysGenerated
    hops: tuple[RingHop, ...]
    sent: tuple[tuple[float, ...], ...] | None
    """What each hospital (0-based index) put into the ring this round (None when the run did
    not record it: a Flower run across machines has no observer to read the parties' notes)."""
    average: tuple[float, ...]
    patients: tuple[int, ...]
    mse_before: tuple[float, ...] | None
    mse_after: tuple[float, ...]
    features: tuple[str, ...]
    """The name of each gradient entry (the run's features, the intercept last)."""
    metric: str = "MSE"
    """The test metric the MSE fields hold (MSE; log-loss for a logistic model)."""

    @property
    def hospitals(self) -> int:
        return len(self.patients)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(hospital_name(i) for i in range(self.hospitals))

    def number(self, name: str) -> int:
        """A hospital's number (1-based) from its name."""
        return self.names.index(name) + 1

    @property
    def ring(self) -> tuple[RingHop, ...]:
        """The hops sent by hospitals, in the order they were sent (position 1, 2, ...)."""
        return tuple(h for h in self.hops if h.sender in self.names)

    @property
    def order(self) -> tuple[str, ...]:
        """The hospitals in this round's ring order."""
        return tuple(h.sender for h in self.ring)

    @property
    def star(self) -> bool:
        """True for a star: the hospitals sent to a relay, not to each other."""
        return any(h.sender not in self.names for h in self.hops)


# --------------------------------------------------------------------------- gathering


def kept_rounds(transcript: Transcript) -> list[int]:
    """The rounds whose hops the transcript kept (the walkthrough can tell only these)."""
    return sorted(r for r in set(transcript.rounds) | {transcript.last_round} if r > 0)


def round_view(
    record: RunRecord, transcript: Transcript, observations: Observations, round_: int
) -> RoundView:
    """Round `round_` of a finished run; KeyError if the transcript did not keep its hops."""
    hops = transcript.hops(round_)
    keys = transcript.keys or record.keys
    if hops is None or keys is None or record.config is None:
        raise KeyError(f"round {round_} is not in the transcript")
    config = record.config
    if round_ > 1:
        before: tuple[float, ...] | None = record.federated[round_ - 2]
    else:
        before = record.local[-1] if config.warm_start and record.local else None
    return RoundView(
        config=config,
        round=round_,
        keys=keys,
        hops=hops,
        sent=(
            tuple(tuple(map(float, g)) for g in observations.sent[round_ - 1])
            if len(observations.sent) >= round_
            else None
        ),
        average=tuple(map(float, observations.averages[round_ - 1])),
        patients=record.patients,
        mse_before=before,
        mse_after=record.federated[round_ - 1],
        features=_features(record, len(observations.averages[round_ - 1])),
        metric=config.metric,
    )


def _features(record: RunRecord, count: int) -> tuple[str, ...]:
    """The names of a gradient's `count` entries: the run's features as `RunStarted` gave them."""
    named = record.features
    return named if len(named) == count else tuple(f"value {i}" for i in range(1, count + 1))


def outline(view: RoundView) -> tuple[Stage, ...]:
    """The stages of the round: the keys, each hospital's hop (the middle ones grouped beyond
    `GROUP_ABOVE` hospitals), a star's relay, the decryption and the broadcast."""
    order = view.order
    m = len(order)
    stages = [Stage("keys", "Keys")]
    if m <= GROUP_ABOVE:
        stages += [Stage("hop", name, p, p) for p, name in enumerate(order, start=1)]
    else:
        stages += [Stage("hop", order[0], 1, 1), Stage("hop", order[1], 2, 2)]
        stages.append(Stage("hop", group_label(view, 3, m - 1), 3, m - 1))
        stages.append(Stage("hop", order[m - 1], m, m))
    relay = [h.sender for h in view.hops if h.sender not in view.names]
    if relay:
        stages.append(Stage("relay", relay[0]))
    stages += [Stage("decrypt", "Decrypt"), Stage("broadcast", "Broadcast")]
    return tuple(stages)


def group_label(view: RoundView, first: int, last: int) -> str:
    """The hospitals at ring positions first..last: "Hospitals 3–77" when their numbers run
    in order, else "Ring positions 3–77" (a shuffled ring)."""
    numbers = [view.number(n) for n in view.order[first - 1 : last]]
    if numbers == list(range(first, last + 1)):
        return f"Hospitals {first}–{last}"
    return f"Ring positions {first}–{last}"


def step(view: RoundView, stage: Stage, pick: int | None = None) -> Step:
    """The step a stage tells; for a grouped stage, `pick` is the ring position shown
    (default: the group's first)."""
    if stage.kind == "keys":
        return keys_step(view)
    if stage.kind == "hop":
        position = stage.first if pick is None else min(max(pick, stage.first), stage.last)
        return hop_step(view, position)
    if stage.kind == "relay":
        return relay_step(view)
    if stage.kind == "decrypt":
        return decrypt_step(view)
    return broadcast_step(view)


# --------------------------------------------------------------------------- words and numbers


def digits(value: int) -> int:
    """Decimal digits of a (non-negative) integer."""
    return len(str(value))


def shorten(value: int, keep: int = 12) -> str:
    """A long integer as its first and last `keep` digits: 123456…654321."""
    text = str(value)
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


def fmt(value: float) -> str:
    """A gradient or average entry as the walkthrough writes it."""
    return f"{value:.6g}"


def fmt_mse(value: float | None, metric: str = "MSE") -> str:
    """A test metric: two decimals for an MSE (thousands), four for another (a log-loss below 1)."""
    if value is None:
        return "—"
    return f"{value:.2f}" if metric == "MSE" else f"{value:.4f}"


def _signed(change: float, metric: str) -> str:
    return ("+" if change >= 0 else "−") + fmt_mse(abs(change), metric)


def terms(numbers: Sequence[int]) -> str:
    """g1 + g2 + g3, or g1 + … + g9 once long (in ring order)."""
    if len(numbers) <= 4:
        return " + ".join(f"g{k}" for k in numbers)
    if list(numbers) == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"g{numbers[0]} + … + g{numbers[-1]}"
    return f"g{numbers[0]} + g{numbers[1]} + … + g{numbers[-1]} ({len(numbers)} gradients)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _encoding(view: RoundView, hop: RingHop) -> str:
    keys, count = view.keys, len(view.features)
    if keys.encoding == "packed":
        where = (
            "one plaintext"
            if keys.ciphertexts_per_message == 1
            else f"{keys.ciphertexts_per_message} plaintexts"
        )
        return (
            f"packed: the {count} values become whole numbers on a {_POWER} grid, side by side in "
            f"{keys.slots} slots of {keys.slot_bits} bits of {where}"
        )
    exponent = hop.ciphertexts[0].exponent if hop.ciphertexts else None
    agreed = f" (the agreed exponent {exponent}, the same for every value)" if exponent is not None else ""
    return (
        f"per value: each of the {count} values becomes a whole number on a {_POWER} grid{agreed}, "
        "one plaintext each"
    )


def _randomness(keys: KeysGenerated) -> str:
    return "DJN's short-exponent randomness" if keys.obfuscator == "djn" else "phe's standard randomness r^n"


def _sealed(hop: RingHop, features: Sequence[str]) -> str:
    """How big the message is, in words."""
    count = max(len(hop.ciphertexts), 1)
    if not hop.ciphertexts:
        return f"{hop.nbytes:,} bytes, sealed for {hop.receiver} (its digits were not recorded)"
    first = digits(hop.ciphertexts[0].value)
    if count == 1:
        return f"one ciphertext of {first} digits ({hop.nbytes:,} bytes)"
    return (
        f"{count} ciphertexts ({hop.nbytes:,} bytes); the first, for {features[0]}, has {first} digits"
        if count == len(features)
        else f"{count} ciphertexts ({hop.nbytes:,} bytes); the first has {first} digits"
    )


def _ciphertext(hop: RingHop) -> str | None:
    return shorten(hop.ciphertexts[0].value) if hop.ciphertexts else None


def _remedies(config: Config) -> str:
    out = ""
    if config.dp_epsilon is not None:
        out += (
            " Under differential privacy each patient's gradient was clipped to the clip norm and the "
            "hospital added its share of the noise before encrypting."
        )
    if config.masks == "pairwise":
        out += " It also adds its pairwise masks before encrypting: they cancel only in the full sum."
    return out


def _weights(view: RoundView) -> str:
    if view.round > 1:
        return f"at the model every hospital reached after round {view.round - 1}'s step"
    return (
        "at the model it trained locally (warm start)"
        if view.config.warm_start
        else "at zero weights (cold start)"
    )


def _exposed_alone(view: RoundView, position: int) -> list[str]:
    """Whom the hospital at `position` recovers on its own once the average is broadcast."""
    found = exposed_hospitals(frozenset({position}), False, len(view.order))
    return [view.order[p - 1] for p in sorted(found)]


def _exposed_by(view: RoundView, position: int) -> list[str]:
    """The other hospitals that each, on its own, recover the gradient of the hospital at
    `position` once the average is broadcast (the same rules as the who-sees-what table)."""
    n = len(view.order)
    return [
        view.order[p - 1]
        for p in range(1, n + 1)
        if p != position and position in exposed_hospitals(frozenset({p}), False, n)
    ]


def _after_broadcast(view: RoundView, position: int) -> str:
    exposed = _exposed_alone(view, position)
    if not exposed:
        return ""
    n = view.hospitals
    return (
        f" But once the average is broadcast it will: with {n} hospitals, {n}·ā minus its own gradient "
        f"is {' and '.join(exposed)}'s gradient, exactly."
    )


# --------------------------------------------------------------------------- the stages


def keys_step(view: RoundView) -> Step:
    keys = view.keys
    text = str(keys.n)
    per = keys.ciphertexts_per_message
    layout = (
        f"packed: {len(view.features)} values in {_plural(per, 'ciphertext')} per message"
        if keys.encoding == "packed"
        else f"per value: {_plural(per, 'ciphertext')} per message"
    )
    return Step(
        title="The server makes the key pair and publishes the public key",
        actor=SERVER_NAME,
        does=(
            f"The server picks two secret primes and publishes only their product, the modulus n: "
            f"{keys.bits} bits, {len(text)} decimal digits, beginning {text[:6]}… and ending …{text[-6:]}. "
            "Anyone holding n can encrypt; only the holder of the two primes can decrypt. Ciphertexts are "
            f"numbers modulo n² ({2 * keys.bits} bits). The ring agrees on the encoding, {layout}, "
            f"and every encryption mixes in {_randomness(keys)}. Making the keys took {keys.seconds:.2f} s."
        ),
        holds="The private key (the two primes) and the public key n.",
        learned="Nothing about any patient: no data has moved yet.",
        cannot=(
            f"Anything about the hospitals' data: it holds no patients. The {view.hospitals} hospitals "
            "receive n, which lets them encrypt but never decrypt."
        ),
        facts=(
            ("Key length", f"{keys.bits} bits (≈{view.config.security_bits}-bit security)"),
            ("n", f"{len(text)} digits"),
            ("Ciphertexts per message", str(per)),
            ("Keys made in", f"{keys.seconds:.2f} s"),
        ),
        ciphertext=f"n = {shorten(keys.n)}",
        focus=Focus((SERVER_NAME,), (SERVER_NAME, EVERY_HOSPITAL), "public key n"),
    )


def hop_step(view: RoundView, position: int) -> Step:
    """The hospital at ring `position` (1-based) computes, encrypts and sends; from position
    2 on in a ring it first receives the previous hospital's ciphertext."""
    ring = view.ring
    hop = ring[position - 1]
    name, n, bits = hop.sender, view.hospitals, view.keys.bits
    index = view.number(name) - 1
    gradient = None if view.sent is None else view.sent[index]
    below = "(below)" if gradient is not None else "(this run did not record them)"
    patients = view.patients[index]
    numbers = [view.number(h.sender) for h in ring[:position]]
    own = f"g{numbers[-1]}"
    previous = ring[position - 2] if position > 1 else None
    receives = previous is not None and previous.receiver == name
    to = hop.receiver
    carries = f"Enc({own})" if view.star else f"Enc({terms(numbers)})"
    computes = (
        f"It computes its gradient {own} from its own {patients} patients, {_weights(view)}: "
        f"{len(view.features)} numbers that only it ever sees {below}. It encodes them ({_encoding(view, hop)}) "
        f"and encrypts them with n, mixing in {_randomness(view.keys)}."
    )
    if receives and previous is not None:
        incoming = _sealed(previous, view.features)
        title = f"{name} adds its gradient to a total it cannot read"
        does = (
            f"{name} receives from {previous.sender} Enc({terms(numbers[:-1])}): {incoming}. "
            f"{computes}{_remedies(view.config)} Then it multiplies the two ciphertexts modulo n², "
            f"which adds the hidden values, and sends {carries} to {to}: {_sealed(hop, view.features)}."
        )
        holds = (
            f"Its {patients} patients' rows (they never leave it), its gradient {own}, the ciphertext it "
            "received, and n."
        )
        learned = (
            f"That the incoming number holds {_plural(position - 1, 'gradient')} (its place in the ring is "
            "public) and how long it is — nothing of the values."
        )
        cannot = (
            f"{terms(numbers[:-1])}: without the private key the integer it received looks like a random "
            f"number modulo n² ({2 * bits} bits).{_after_broadcast(view, position)}"
        )
    else:
        title = f"{name} encrypts its gradient" + (" for the relay" if view.star else "")
        when = f"acts at the same time as the other {n - 1}" if view.star else "acts first"
        does = f"{name} {when}. {computes}{_remedies(view.config)} It sends {carries} to {to}: {_sealed(hop, view.features)}."
        holds = f"Its {patients} patients' rows (they never leave it), its gradient {own}, and n."
        readers = _exposed_by(view, position)
        learned = (
            f"Its own gradient {own} {below}. It stays its own only until the broadcast: then "
            f"{' and '.join(readers)} can compute it exactly ({n}·ā minus its own gradient)."
            if readers
            else f"Its own gradient {own} {below}: no other party on its own ever sees it in the clear."
        )
        cannot = "Anything about the other hospitals: it has received nothing from them." + _after_broadcast(
            view, position
        )
    facts = (
        ("Patients", str(patients)),
        ("Ciphertexts sent", str(len(hop.ciphertexts) or view.keys.ciphertexts_per_message)),
        (
            "Digits" if len(hop.ciphertexts) == 1 else "Digits (first)",
            str(digits(hop.ciphertexts[0].value)) if hop.ciphertexts else "sealed",
        ),
        ("Bytes sent", f"{hop.nbytes:,}"),
    )
    return Step(
        title=title,
        actor=name,
        does=does,
        holds=holds,
        learned=learned,
        cannot=cannot,
        facts=facts,
        vectors=() if gradient is None else ((f"{name}'s gradient {own} (only it knows)", gradient),),
        ciphertext=_ciphertext(hop),
        focus=Focus((name,), (name, to), carries),
    )


def relay_step(view: RoundView) -> Step:
    hop = next(h for h in view.hops if h.sender not in view.names)
    n = view.hospitals
    return Step(
        title=f"The {hop.sender.lower()} multiplies the parts it cannot read",
        actor=hop.sender,
        does=(
            f"The {hop.sender.lower()} holds the {n} hospitals' ciphertexts and no key. It multiplies them modulo "
            f"n², which adds the hidden gradients, and hands Enc({terms(list(range(1, n + 1)))}) to the key "
            f"holder with every hospital's signed part: {_sealed(hop, view.features)}."
        ),
        holds=f"{n} ciphertexts and no key.",
        learned="The sizes and the timing of the messages.",
        cannot="Any value: without the private key every ciphertext looks like a random number.",
        facts=(("Parts multiplied", str(n)), ("Bytes handed on", f"{hop.nbytes:,}")),
        ciphertext=_ciphertext(hop),
        focus=Focus((hop.sender,), (hop.sender, SERVER_NAME), "Enc(sum)"),
    )


def decrypt_step(view: RoundView) -> Step:
    last = view.hops[-1]
    n = view.hospitals
    total = tuple(n * a for a in view.average)
    everyone = terms([view.number(name) for name in view.order])
    if view.star:
        cannot = (
            "It decrypts only the total — but in the star it is also handed every hospital's part, so that it "
            "can check the sum is complete: a curious key holder could decrypt each one. The star trusts the "
            "key holder (see the Privacy page)."
        )
    else:
        cannot = "Any single hospital's gradient: it decrypts nothing but the full sum. " + (
            "(Even if a hospital handed it the message it received, that partial sum would decrypt to noise: "
            "it carries pairwise masks that cancel only in the full sum.)"
            if view.config.masks == "pairwise"
            else "(If a hospital handed it the message it received, it could decrypt that partial sum — see the "
            "Privacy page.)"
        )
    return Step(
        title="The server decrypts only the total",
        actor=SERVER_NAME,
        does=(
            f"The server receives Enc({everyone}) from {last.sender}: {_sealed(last, view.features)}. It decrypts it with the "
            f"private key — the only message it decrypts this round — and reads the total of all {n} gradients (below)."
        ),
        holds="The private key and, now, the total.",
        learned=f"The sum {everyone} of all {n} hospitals' gradients"
        + (
            ", each clipped and carrying its hospital's share of the noise."
            if view.config.dp_epsilon is not None
            else "."
        ),
        cannot=cannot,
        facts=(
            ("Gradients in the total", str(last.contributions)),
            ("Ciphertexts decrypted", str(len(last.ciphertexts))),
        ),
        vectors=((f"The total {everyone} (= {n} × ā)", total),),
        ciphertext=_ciphertext(last),
        focus=Focus((SERVER_NAME,), (last.sender, SERVER_NAME), "Enc(sum)"),
    )


def broadcast_step(view: RoundView) -> Step:
    n, eta = view.hospitals, view.config.learning_rate
    before, metric = view.mse_before, view.metric
    changes = tuple(
        MseChange(name, None if before is None else before[i], view.mse_after[i])
        for i, name in enumerate(view.names)
    )
    after_mean = sum(view.mse_after) / n
    if before is None:
        change = f"mean test {metric} {fmt_mse(after_mean, metric)} after the step (the zero model's {metric} is not reported)"
        delta = "—"
    else:
        before_mean = sum(before) / n
        change = f"mean test {metric} {fmt_mse(before_mean, metric)} → {fmt_mse(after_mean, metric)} ({_signed(after_mean - before_mean, metric)})"
        delta = _signed(after_mean - before_mean, metric)
    exposed = _exposed_alone(view, 1)
    if exposed:
        cannot = (
            f"Nothing stays hidden between {n} hospitals: each computes {n}·ā minus its own gradient and gets the "
            "other's exactly. Use at least 3."
        )
    else:
        cannot = (
            f"Any single hospital's gradient: {n}·ā minus its own is only the sum of the other {n - 1}, which "
            "many different splits fit (as long as nobody colludes)."
        )
    first = view.mse_after[0]
    hospital_one = (
        f"; {view.names[0]}: {fmt_mse(None if before is None else before[0], metric)} → {fmt_mse(first, metric)}"
        if n > 1
        else ""
    )
    return Step(
        title="The average is broadcast and every model steps",
        actor=f"{SERVER_NAME} (broadcasts), then every hospital (steps)",
        does=(
            f"The server divides the total by {n} and broadcasts the average ā in the clear (below). Every "
            f"hospital takes the same step w ← w − η·ā with η = {eta:g}. Round {view.round}: {change}"
            f"{hospital_one}."
        ),
        holds="Every hospital: its own model, now one step further, and ā.",
        learned=f"Every hospital — and anyone listening — learns ā, hence the total {n}·ā.",
        cannot=cannot,
        facts=(
            ("Learning rate η", f"{eta:g}"),
            (f"Mean test {metric}", fmt_mse(after_mean, metric)),
            ("Change this round", delta),
        ),
        vectors=(("Broadcast average ā", view.average),),
        mse=changes,
        focus=Focus((SERVER_NAME, *view.names), (SERVER_NAME, EVERY_HOSPITAL), "ā, in the clear"),
    )


# --------------------------------------------------------------------------- autoplay


def autoplay(position: int, stages: int, elapsed: float, interval: float) -> tuple[int, bool]:
    """On an autoplay tick: the stage to show and whether autoplay ends. It advances one stage
    once `interval` seconds have (nearly: ticks come a little early) passed since the last
    advance, and ends on the last stage, never wrapping round."""
    last = stages - 1
    if position >= last:
        return last, True
    if elapsed < 0.8 * interval:
        return position, False
    return position + 1, position + 1 >= last
