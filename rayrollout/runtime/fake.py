"""In-memory runtimes for tests of the code around models (router, versions, judges).

No artifact, no ``onnxruntime``, no ``torch``: ``FakeRuntime`` calls a plain function;
``FailingRuntime`` raises on every predict, to exercise the model-failure (5xx) path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rayrollout.errors import PredictError
from rayrollout.runtime._common import gather_inputs
from rayrollout.runtime.base import ModelSignature, TensorSpec

PredictFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def classifier_signature(n_features: int = 4, n_classes: int = 3) -> ModelSignature:
    """The signature of the example classifiers, sized to taste."""
    return ModelSignature(
        inputs=(TensorSpec("input", "FP32", (-1, n_features)),),
        outputs=(
            TensorSpec("label", "INT64", (-1,)),
            TensorSpec("probabilities", "FP32", (-1, n_classes)),
        ),
    )


def argmax_classifier(n_classes: int = 3) -> PredictFn:
    """A deterministic classifier: softmax over the first ``n_classes`` features."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["input"][:, :n_classes].astype(np.float64)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return {"label": p.argmax(axis=1).astype(np.int64), "probabilities": p}

    return fn


class FakeRuntime:
    """A ``ModelRuntime`` that answers with ``fn(inputs)``.

    Inputs are checked and cast like the real runtimes do; ``calls`` counts predict calls and
    ``batches`` keeps the batch sizes seen, for assertions.
    """

    kind = "fake"

    def __init__(
        self,
        signature: ModelSignature | None = None,
        fn: PredictFn | None = None,
        device: str = "cpu",
    ) -> None:
        self._signature = signature or classifier_signature()
        n_classes = self._signature.outputs[-1].shape[-1] if self._signature.outputs else 3
        self._fn = fn or argmax_classifier(max(n_classes, 1))
        self.device = device
        self.calls = 0
        self.batches: list[int] = []

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = gather_inputs(self._signature.inputs, inputs)
        self.calls += 1
        first = next(iter(feeds.values()), None)
        self.batches.append(0 if first is None else int(first.shape[0]))
        return self._fn(feeds)


class FailingRuntime(FakeRuntime):
    """A ``ModelRuntime`` whose ``predict`` always raises ``error`` (default ``PredictError``)."""

    kind = "failing"

    def __init__(
        self,
        signature: ModelSignature | None = None,
        error: BaseException | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(signature, device=device)
        self.error = error or PredictError("FailingRuntime: model failed on purpose")

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        raise self.error
