"""No protection: the hospitals send their gradients in the clear and the aggregator averages
them. The yardstick every other row is set against."""

from __future__ import annotations

import time

import numpy as np

from fedviz.protections.base import Measured, Task, Trust, federate


class NoProtection:
    name = "none"

    def measure(self, task: Task) -> Measured:
        start = time.perf_counter()
        descent = federate(task, lambda _r, gradients: np.mean(gradients, axis=0))
        rounds = task.config.rounds
        dims = task.data.dims
        return Measured(
            self.name,
            "plaintext federated gradient descent: each hospital sends its float64 gradient",
            "in-process",
            rounds,
            descent.scores,
            descent.errors,
            descent.scales,
            crypto_s=0.0,
            round_s=(time.perf_counter() - start) / rounds,
            bytes_per_hospital=8 * dims,
            parameters=(("values per gradient", str(dims)),),
            trust=Trust(
                decryptors="nothing is encrypted",
                readers="the aggregator alone reads every hospital's gradient, and so does anyone on the wire",
                dropout="yes: the aggregator averages whoever sent",
            ),
            caveats=("the yardstick: no privacy at all",),
        )
