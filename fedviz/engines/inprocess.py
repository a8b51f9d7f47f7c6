"""Local and federated training as one generator of typed events.

Order of a run: RunStarted, (for data in its own units: PhaseStarted(keygen), KeysGenerated,
Standardised,) ReferenceComputed, PrivacyBudget (with differential privacy),
PhaseStarted(local), LocalRound x R, PhaseStarted(keygen), KeysGenerated (unless made
already), MasksAgreed (with
pairwise masks), PhaseStarted(federated), then per round (EncryptionProgress while it waits
for randomness) the RingHops in ring order, HospitalGradients and FederatedRound; finally
RunFinished.

Invariants:
- The federated rounds continue from each hospital's local model (the seed post), or start
  from zero with `warm_start=False`; then every hospital's federated MSE equals the
  centralised reference, because the ring's average is the pooled step.
- Divergence raises `TrainingDiverged` naming the phase and round; events already yielded
  stand. Closing the generator early (a Stop) cancels queued obfuscator work.
- Timings count time spent inside the engine, not time the consumer spends between events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from concurrent.futures import ProcessPoolExecutor
from typing import Literal

import numpy as np

from fedviz.config import Config
from fedviz.crypto.encoding import PackedCodec, PerValueCodec, make_codec
from fedviz.crypto.pool import Prefetcher, shared_pool, warm
from fedviz.data import FEATURES, Split, prepared, split_for
from fedviz.data.standardise import apply, local_statistics, pooled
from fedviz.errors import EncodingOverflow, TrainingDiverged
from fedviz.events import (
    Ciphertext,
    EncryptionProgress,
    Event,
    FederatedRound,
    HospitalGradients,
    KeysGenerated,
    LocalRound,
    MasksAgreed,
    PhaseStarted,
    PrivacyBudget,
    ReferenceComputed,
    RingHop,
    RunFinished,
    RunStarted,
    Standardised,
    Timings,
)
from fedviz.models import for_kind
from fedviz.privacy.dp import DpPlan, coalition_epsilons
from fedviz.protocol import Hospital, Ring, Server, hospitals_for
from fedviz.protocol.masks import PairwiseMasks, agree
from fedviz.protocol.parties import dp_plan
from fedviz.protocol.ring import shuffled_order
from fedviz.protocol.statistics import total_through_ring

PoolChoice = ProcessPoolExecutor | None | Literal["shared"]
PROGRESS_EVERY_S = 0.5
"""While a round waits for encryption randomness, an `EncryptionProgress` this often."""


def reference(config: Config, data: Split) -> ReferenceComputed:
    """Plaintext yardsticks on the pooled training data (what pooling gives without privacy).

    The pooled run starts from zero and takes the ring's step: the pooled gradient divided by
    the hospital count in `sum` mode (that is what the server broadcasts), the pooled mean in
    `mean` mode (equal blocks make the average of means the pooled mean). With a warm start it
    goes on for R more rounds (`continued_mse`), so the federated phase, which continues from
    R local rounds, is compared with pooling over the same total number of rounds. The
    optimum is the model's own yardstick (least squares; scikit-learn's logistic fit).
    """
    model = for_kind(config.model)
    X, y = data.X_pooled, data.y_pooled
    weights = np.zeros(X.shape[1])
    history = []
    steps = 2 * config.rounds if config.warm_start else config.rounds
    after_r = weights
    with np.errstate(all="ignore"):
        for r in range(steps):
            g = model.gradient(weights, X, y, config.gradient)
            if config.gradient == "sum":
                g = g / config.hospitals
            weights = weights - config.learning_rate * g
            history.append(float(model.score(weights, data.X_test, data.y_test)))
            if r + 1 == config.rounds:
                after_r = weights
    best = model.optimum(X, y)
    optimum = float(model.score(best, data.X_test, data.y_test))
    first, continued = tuple(history[: config.rounds]), tuple(history[config.rounds :])
    if data.task != "classification" or config.model != "logistic":
        return ReferenceComputed(first, optimum, continued_mse=continued)
    return ReferenceComputed(
        first,
        optimum,
        float(model.accuracy(after_r, data.X_test, data.y_test)),
        float(model.accuracy(best, data.X_test, data.y_test)),
        continued,
    )


def preflight(config: Config) -> TrainingDiverged | None:
    """The divergence the run would hit, found in plaintext before any key is made.

    Encryption changes nothing in the arithmetic, so the plaintext protocol predicts it: the
    same local rounds, then federated rounds on the exact average, checking finiteness and
    the agreed encoding's range (planned for a modulus of the configured bit length). The
    real run still checks everything itself; this only lets a UI refuse early, in words.
    """
    data = prepared(config)
    hospitals = hospitals_for(config, data.hospital_X, data.hospital_y)
    eta = config.learning_rate
    try:
        for r in range(1, config.rounds + 1):
            local_round(r, hospitals, eta)
        codec = planned_codec(config, data.dims)
        if not config.warm_start:
            restart(hospitals)
        limit = codec.max_abs
        with np.errstate(all="ignore"):
            for r in range(1, config.rounds + 1):
                gradients = np.array([h.gradient() for h in hospitals])
                # |v| <= max_abs is exactly "codec.encode accepts v" (max_abs is the largest
                # float that encodes), and NaN fails it as encode does: one vector check.
                if not np.all(np.abs(gradients) <= limit):
                    worst = float(np.nanmax(np.abs(gradients)))
                    return TrainingDiverged(
                        "federated",
                        r,
                        f"a gradient is too large to encode (value {worst:.3g} exceeds ±{limit:.3g})",
                        eta,
                        cause="encoding",
                    )
                average = gradients.mean(axis=0)
                for hospital in hospitals:
                    hospital.step(average, eta)
                check_finite("federated", r, hospitals, eta)
    except TrainingDiverged as exc:
        return exc
    return None


def planned_codec(config: Config, dims: int = len(FEATURES)) -> PerValueCodec | PackedCodec:
    """The codec the ring would agree on, planned before any key exists: a modulus of exactly
    the configured bit length gives the same layout as the real one."""
    return agreed_codec(config, (1 << config.key_length) - 1, dims)


def agreed_codec(config: Config, n: int, dims: int = len(FEATURES)) -> PerValueCodec | PackedCodec:
    """The codec every party derives from the public modulus n, the public settings and the
    number of values per gradient (`dims`: features and intercept, 11 for the diabetes data)."""
    return make_codec(config.encoding, n, dims, config.hospitals)


def keys_generated(
    config: Config, seconds: float, n: int, codec: PerValueCodec | PackedCodec
) -> KeysGenerated:
    """The event announcing the key and the agreed layout (any engine)."""
    packed = codec if isinstance(codec, PackedCodec) else None
    return KeysGenerated(
        bits=config.key_length,
        seconds=seconds,
        n=n,
        obfuscator=config.obfuscator,
        encoding=codec.name,
        ciphertexts_per_message=codec.ciphertexts,
        slot_bits=packed.slot_bits if packed else None,
        slots=packed.slots if packed else None,
        carry_bits=packed.carry_bits if packed else None,
        max_abs=codec.max_abs,
    )


def local_round(round_: int, hospitals: list[Hospital], eta: float) -> None:
    """Every hospital takes one step on its own data; divergence raises `TrainingDiverged`."""
    with np.errstate(all="ignore"):
        for hospital in hospitals:
            hospital.step(hospital.gradient(), eta)
    check_finite("local", round_, hospitals, eta)


def restart(hospitals: list[Hospital]) -> None:
    """Cold start: the federated rounds begin from zero weights."""
    for hospital in hospitals:
        hospital.weights = np.zeros_like(hospital.weights)


def check_finite(phase: str, round_: int, hospitals: list[Hospital], eta: float) -> None:
    for hospital in hospitals:
        if not np.all(np.isfinite(hospital.weights)):
            raise TrainingDiverged(
                phase, round_, f"{hospital.name}'s weights are no longer finite", eta, cause="non-finite"
            )


def privacy_budget(dp: DpPlan) -> PrivacyBudget:
    """The event announcing differential privacy's plan (any engine)."""
    return PrivacyBudget(
        dp.epsilon, dp.delta, dp.clip, dp.noise_multiplier, dp.rounds, coalition_epsilons(dp)
    )


def masks_agreed(config: Config, seconds: float, public_bytes: int) -> MasksAgreed:
    n = config.hospitals
    return MasksAgreed(n, n * (n - 1) // 2, seconds, public_bytes)


def run(
    config: Config,
    *,
    pool: PoolChoice = "shared",
    server: Server | Callable[[], Server] | None = None,
    collude: Callable[[list[PairwiseMasks]], None] | None = None,
) -> Generator[Event, None, None]:
    """Run the experiment, yielding events as it goes.

    `pool`: the process pool that draws obfuscators ("shared" for the process-wide one, None
    to draw inline). `server`: pass one (or a function making one, called at the keygen
    phase) to keep the key holder after the run, e.g. to show what a colluding server could
    decrypt; by default the run makes its own. `collude`: called with the hospitals' mask
    seeds once agreed, to show what a coalition holding some of them computes (the privacy
    lab only; a protocol run never hands seeds to anyone).
    """
    started = time.perf_counter()
    executor = shared_pool() if pool == "shared" else pool
    if executor is not None:
        warm(executor)
    data = split_for(config)
    dp = dp_plan(config)
    eta, rounds = config.learning_rate, config.rounds
    own_tests = tuple(len(y) for _, y in data.hospital_tests)
    yield RunStarted(
        config, data.patients, len(data.y_test), data.features, data.target, data.classes, own_tests
    )

    def keygen() -> Generator[Event, None, tuple[Server, PerValueCodec | PackedCodec]]:
        yield PhaseStarted("keygen", rounds)
        holder = server if isinstance(server, Server) else server() if server is not None else None
        holder = holder or Server(config.key_length, config.obfuscator)
        if holder.public.public_key.n.bit_length() != config.key_length:
            raise ValueError("the given server's key length differs from the config")
        try:
            codec = agreed_codec(config, holder.public.n, data.dims)
        except EncodingOverflow as exc:
            raise TrainingDiverged("setup", 0, str(exc), eta, cause="encoding") from None
        yield keys_generated(config, holder.keygen_seconds, holder.public.n, codec)
        return holder, codec

    keys: tuple[Server, PerValueCodec | PackedCodec] | None = None
    if not data.standardised:  # the pooled statistics need the key: keys first, then the ring
        keys = yield from keygen()
        summed = total_through_ring([local_statistics(X) for X in data.hospital_X], keys[0])
        means, stds = pooled(summed.total)
        data = apply(data, means, stds)
        yield Standardised(
            tuple(map(float, means)),
            tuple(map(float, stds)),
            int(summed.total[0]),
            summed.ciphertexts,
            summed.seconds,
        )
    hospitals = hospitals_for(config, data.hospital_X, data.hospital_y, dp)
    ref = reference(config, data)
    yield ref
    if dp is not None:
        yield privacy_budget(dp)
    classify = config.model == "logistic"

    def accuracy() -> tuple[float, ...]:
        return tuple(h.test_accuracy(*data.test_of(i)) for i, h in enumerate(hospitals)) if classify else ()

    yield PhaseStarted("local", rounds)
    local_s = 0.0
    mse: tuple[float, ...] = ()
    for r in range(1, rounds + 1):
        t = time.perf_counter()
        local_round(r, hospitals, eta)
        mse = tuple(h.test_score(*data.test_of(i)) for i, h in enumerate(hospitals))
        local_s += time.perf_counter() - t
        yield LocalRound(r, mse, accuracy())
    local_mse, local_accuracy = mse, accuracy()

    if keys is None:
        keys = yield from keygen()
    server, codec = keys

    masks: list[PairwiseMasks] | None = None
    masks_s = 0.0
    if config.masks == "pairwise":
        masks, agreement = agree(config.hospitals, os.urandom(16))
        masks_s = agreement.seconds
        if collude is not None:
            collude(masks)
        yield masks_agreed(config, agreement.seconds, agreement.public_bytes)

    if not config.warm_start:
        restart(hospitals)
    ring = Ring(hospitals, server, codec, masks)
    wire = server.public.ciphertext_bytes
    encrypt_s = add_s = decrypt_s = federated_s = 0.0
    prefetcher = Prefetcher(server.public, config.hospitals, codec.ciphertexts, rounds, executor)
    try:
        yield PhaseStarted("federated", rounds)
        for r in range(1, rounds + 1):
            t = time.perf_counter()
            while not prefetcher.wait(PROGRESS_EVERY_S):
                yield EncryptionProgress(r, prefetcher.ready(), config.hospitals, time.perf_counter() - t)
            obfuscators = prefetcher.next_round()
            waited = time.perf_counter() - t
            try:
                with np.errstate(all="ignore"):
                    order = shuffled_order(config.seed, r, config.hospitals) if config.shuffle_ring else None
                    result = ring.run_round(obfuscators, eta, r, order)
            except EncodingOverflow as exc:
                raise TrainingDiverged(
                    "federated", r, f"a gradient is too large to encode ({exc})", eta, cause="encoding"
                ) from None
            check_finite("federated", r, hospitals, eta)
            mse = tuple(h.test_score(*data.test_of(i)) for i, h in enumerate(hospitals))
            federated_s += time.perf_counter() - t
            encrypt_s += waited + result.encrypt_s
            add_s += result.add_s
            decrypt_s += result.decrypt_s
            masks_s += result.mask_s
            for hop, message in enumerate(result.messages, start=1):
                yield RingHop(
                    r,
                    hop,
                    message.sender,
                    message.receiver,
                    tuple(Ciphertext(int(c.ciphertext(False)), c.exponent) for c in message.ciphertexts),
                    message.contributions,
                    wire * len(message.ciphertexts),
                )
            yield HospitalGradients(
                r,
                tuple(tuple(map(float, g)) for g in result.gradients),
                None if result.clean is None else tuple(tuple(map(float, g)) for g in result.clean),
            )
            yield FederatedRound(
                r,
                mse,
                tuple(map(float, result.average)),
                waited + result.encrypt_s,
                result.add_s,
                result.decrypt_s,
                result.order,
                result.mask_s,
                accuracy(),
            )
    finally:
        prefetcher.close()

    timings = Timings(
        keygen=server.keygen_seconds,
        local=local_s,
        federated=federated_s,
        encrypt=encrypt_s,
        add=add_s,
        decrypt=decrypt_s,
        total=time.perf_counter() - started,
        masks=masks_s,
    )
    yield RunFinished(
        local_mse,
        mse,
        ref.centralized_mse[-1],
        ref.optimum_mse,
        wire * codec.ciphertexts * config.hospitals,
        timings,
        local_accuracy,
        accuracy(),
    )
