"""The parties of the protocol: hospitals, the key-holding server, and what one hop carries.

Who holds what (checked by tests/test_privacy_invariants.py):
- A `Hospital` holds its own patient rows, its weights, the public parameters and the
  agreed codec. It never holds or reaches the private key, and its rows never leave it:
  what it sends is a `RingMessage` of ciphertexts.
- The `Server` holds the only private key (inside `ServerKeys`). It decrypts only the full
  ring's sum, divides by the number of hospitals and broadcasts that average in the clear.
- Under differential privacy a hospital's `contribution` is its clipped gradient plus its
  noise share (`fedviz.privacy.dp`); under pairwise masks its plaintexts carry its masks
  (`fedviz.protocol.masks`). Both are added before encryption, so the ring only ever
  carries them inside ciphertexts.
- `RingMessage`s carry ciphertexts, the sender, the receiver and how many gradients the
  ciphertexts sum (public: it is the sender's position in the ring). Nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from phe.paillier import EncryptedNumber

from fedviz.config import Config, GradientMode
from fedviz.crypto.encoding import Codec
from fedviz.crypto.keys import PublicParams, ServerKeys, add_vectors, encrypt_with
from fedviz.models import for_kind, linear
from fedviz.privacy.dp import DpPlan, Noise, clipped_sum, system_noise
from fedviz.protocol.masks import PairwiseMasks

SERVER_NAME = "Server"


@dataclass(frozen=True)
class RingMessage:
    """One hop of the ring: Enc(g_1 + ... + g_k) from hospital k to its successor."""

    sender: str
    receiver: str
    ciphertexts: tuple[EncryptedNumber, ...]
    contributions: int


class Hospital:
    """A data holder: trains on its own rows and sends only encrypted gradients."""

    def __init__(
        self,
        index: int,
        X: np.ndarray,
        y: np.ndarray,
        gradient_mode: GradientMode,
        dp: DpPlan | None = None,
        noise: Noise = system_noise,
        model: ModuleType = linear,
    ) -> None:
        self.index = index
        self._model = model
        self.name = hospital_name(index)
        self._X = X
        self._y = y
        self._mode = gradient_mode
        self._dp = dp
        self._noise = noise
        self.weights = np.zeros(X.shape[1])
        self._public: PublicParams | None = None
        self._codec: Codec | None = None
        self._masks: PairwiseMasks | None = None
        self.mask_seconds = 0.0
        """Time spent drawing and adding masks (the masks' running cost)."""

    @property
    def patients(self) -> int:
        return int(self._X.shape[0])

    def statistics(self) -> np.ndarray:
        """[rows, sums, sums of squares] of its own rows' features: what it adds to the
        standardisation's encrypted ring (the rows themselves never leave it)."""
        from fedviz.data.standardise import local_statistics

        return local_statistics(self._X)

    def gradient(self) -> np.ndarray:
        """The gradient of its model's loss (squared error, or log-loss) on its own rows at its
        weights."""
        return np.asarray(self._model.gradient(self.weights, self._X, self._y, self._mode))

    @property
    def adds_noise(self) -> bool:
        return self._dp is not None

    def contribution(self) -> np.ndarray:
        """What this hospital puts into the ring: its gradient, or under differential privacy
        its per-patient clipped sum plus its share of the noise (then scaled as the gradient
        mode says)."""
        if self._dp is None:
            return self.gradient()
        total = clipped_sum(self.weights, self._X, self._y, self._dp.clip, self._model)
        noisy = total + self._noise(self._dp.share_sigma, total.shape[0])
        return np.asarray(noisy / self.patients if self._mode == "mean" else noisy)

    def step(self, gradient: np.ndarray, learning_rate: float) -> None:
        """One gradient-descent step (the post's `weights -= eta * gradient`)."""
        self.weights = self.weights - learning_rate * gradient

    def test_score(self, X_test: np.ndarray, y_test: np.ndarray) -> float:
        """The run's test metric at this hospital's weights (MSE, or log-loss)."""
        return float(self._model.score(self.weights, X_test, y_test))

    def test_accuracy(self, X_test: np.ndarray, y_test: np.ndarray) -> float:
        """Share of test rows classified right (NaN for regression)."""
        return float(self._model.accuracy(self.weights, X_test, y_test))

    def join(self, public: PublicParams, codec: Codec, masks: PairwiseMasks | None = None) -> None:
        """Receive the server's public parameters and the agreed encoding (and, under pairwise
        masks, this hospital's own seeds)."""
        self._public, self._codec = public, codec
        if masks is not None:
            self._masks = masks

    def encrypt(
        self, gradient: np.ndarray, obfuscators: Sequence[int], round_: int = 0
    ) -> tuple[EncryptedNumber, ...]:
        """Encode, mask (if agreed) and encrypt a gradient with this hospital's fresh obfuscators."""
        if self._public is None or self._codec is None:
            raise RuntimeError(f"{self.name} has not joined the ring")
        plaintexts = self._codec.encode(gradient)
        if self._masks is not None:
            start = time.perf_counter()
            plaintexts = self._masks.apply(plaintexts, round_, self._public.n)
            self.mask_seconds += time.perf_counter() - start
        return tuple(
            encrypt_with(self._public, m, r, self._codec.exponent)
            for m, r in zip(plaintexts, obfuscators, strict=True)
        )

    def forward(
        self, incoming: RingMessage | None, own: tuple[EncryptedNumber, ...], receiver: str
    ) -> RingMessage:
        """Add its own ciphertexts to what it received and pass the sum on."""
        if incoming is None:
            summed, count = own, 1
        else:
            summed = add_vectors(incoming.ciphertexts, own)
            count = incoming.contributions + 1
        return RingMessage(self.name, receiver, summed, count)


class Server:
    """The key holder: decrypts the ring's total and broadcasts the average gradient."""

    name = SERVER_NAME

    def __init__(self, key_length: int, obfuscator: str, keys: ServerKeys | None = None) -> None:
        self._keys = keys or ServerKeys(key_length, obfuscator)  # type: ignore[arg-type]

    @classmethod
    def with_keys(cls, keys: ServerKeys) -> Server:
        """A server around keys restored on the key holder's own node (see `ServerKeys`)."""
        return cls(keys.public.n.bit_length(), keys.public.obfuscator, keys)

    def export_for_own_node(self) -> dict[str, bytes]:
        """See `ServerKeys.export_for_own_node`: for the key holder's node state only."""
        return self._keys.export_for_own_node()

    @property
    def public(self) -> PublicParams:
        return self._keys.public

    @property
    def keygen_seconds(self) -> float:
        return self._keys.seconds

    def total(self, message: RingMessage, codec: Codec, hospitals: int) -> np.ndarray:
        """Decrypt the full ring's sum (nothing less than every hospital's contribution)."""
        if message.receiver != self.name or message.contributions != hospitals:
            raise ValueError("the server decrypts only the full ring's sum")
        below = codec.plaintext_bound
        plaintexts = [self._keys.decrypt_raw(c.ciphertext(False), below=below) for c in message.ciphertexts]
        return codec.decode_sum(plaintexts, hospitals)

    def average(self, message: RingMessage, codec: Codec, hospitals: int) -> np.ndarray:
        """Decrypt the full ring's sum and divide by the number of hospitals."""
        return self.total(message, codec, hospitals) / hospitals

    def open(self, message: RingMessage) -> list[int]:
        """The plaintext integers of any message: what the key holder could read if a
        hospital handed it a ring message (used to show collusion, never in the protocol)."""
        return [self._keys.decrypt_raw(c.ciphertext(False)) for c in message.ciphertexts]

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("the Server holds a private key and is never serialised")


def hospital_name(index: int) -> str:
    return f"Hospital {index + 1}"


def dp_plan(config: Config) -> DpPlan | None:
    """The public DP parameters every hospital agrees (None without DP)."""
    if config.dp_epsilon is None:
        return None
    from fedviz.privacy.dp import plan

    return plan(config.dp_epsilon, config.dp_delta, config.dp_clip, config.rounds, config.hospitals)


def hospitals_for(
    config: Config,
    hospital_X: Sequence[np.ndarray],
    hospital_y: Sequence[np.ndarray],
    dp: DpPlan | None = None,
    noise: Noise = system_noise,
) -> list[Hospital]:
    model = for_kind(config.model)
    return [
        Hospital(i, X, y, config.gradient, dp, noise, model)
        for i, (X, y) in enumerate(zip(hospital_X, hospital_y, strict=True))
    ]
