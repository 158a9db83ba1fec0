"""A test runtime: the scikit-learn digits classifier that fails any batch holding a poison row
(first feature ``POISON``, a value no digit image has), and appends each batch it is given to
``log_path`` ("rows poisoned" per line), so a test can see which batches ran together."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from examples.sklearn_runtime import INPUT, SklearnRuntime
from rayrollout.errors import PredictError

POISON = -1.0


class PoisonRuntime(SklearnRuntime):
    def __init__(self, path: str | os.PathLike[str] | None, device: str = "cpu",
                 threads: int = 1, log_path: str = "") -> None:
        super().__init__(path, device=device, threads=threads)
        self.log_path = log_path

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        x = np.asarray(inputs[INPUT])
        poisoned = int((x[:, 0] == POISON).sum()) if x.ndim == 2 else 0
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"{len(x)} {poisoned}\n")
        if poisoned:
            raise PredictError(f"{poisoned} poison row(s) in a batch of {len(x)}")
        return super().predict(inputs)
