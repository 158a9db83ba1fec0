"""The served version's class (imported by its Serve replica, so it imports little)."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from rayrollout.serving.version import ModelVersion


class CountingModelVersion(ModelVersion):
    """``ModelVersion`` unchanged, plus a tally of the batch sizes the model ran on."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._sizes: collections.Counter[int] = collections.Counter()

    async def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._sizes[len(next(iter(inputs.values())))] += 1
        return await super()._run(inputs)

    def batch_sizes(self) -> dict[int, int]:
        """Batch size -> count since the previous call (drains)."""
        out, self._sizes = dict(self._sizes), collections.Counter()
        return out
