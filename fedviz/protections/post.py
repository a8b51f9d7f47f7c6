"""The post's way: phe (with gmpy2) encrypting each gradient value on its own, added
hospital after hospital round the ring, the key holder decrypting each sum."""

from __future__ import annotations

import time

import numpy as np

from fedviz.protections.base import Measured, Task, Trust, federate
from fedviz.protections.rules import ring_readers


class PhePerValue:
    name = "phe per value (the post)"

    def measure(self, task: Task) -> Measured:
        from phe import __version__ as phe_version
        from phe import paillier

        config = task.config
        start = time.perf_counter()
        public, private = paillier.generate_paillier_keypair(n_length=config.key_length)
        setup_s = time.perf_counter() - start
        crypto: list[float] = []
        sent: list[int] = []
        width = 2 * config.key_length // 8

        def aggregate(_r: int, gradients: list[np.ndarray]) -> np.ndarray:
            t = time.perf_counter()
            total = None
            for g in gradients:  # the ring: each hospital encrypts every value and adds
                own = [public.encrypt(float(v)) for v in g]
                total = own if total is None else [a + b for a, b in zip(total, own, strict=True)]
            assert total is not None
            average = np.array([private.decrypt(c) for c in total]) / len(gradients)
            crypto.append(time.perf_counter() - t)
            sent.append(len(total) * width)
            return average

        began = time.perf_counter()
        descent = federate(task, aggregate)
        rounds = config.rounds
        return Measured(
            self.name,
            f"phe {phe_version} with gmpy2: one Paillier ciphertext per value, phe's own encoding, sequential ring",
            "in-process",
            rounds,
            descent.scores,
            descent.errors,
            descent.scales,
            crypto_s=sum(crypto) / rounds,
            round_s=(time.perf_counter() - began) / rounds,
            bytes_per_hospital=sent[0] if sent else 0,
            setup_s=setup_s,
            setup_bytes=config.key_length // 8,
            parameters=(
                ("modulus n", f"{config.key_length} bits"),
                ("ciphertexts per message", str(task.data.dims)),
                ("randomness", "r^n for uniform r (phe)"),
            ),
            trust=Trust(
                decryptors="the key holder (the server) alone",
                readers=ring_readers(config.hospitals),
                dropout="no: the ring waits for every hospital's hop",
            ),
            caveats=(
                "phe picks each ciphertext's exponent from the value and sends it in the clear: it tells the "
                "value's size",
            ),
        )
