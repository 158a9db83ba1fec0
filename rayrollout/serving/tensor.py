"""``TensorModel``: the base of a user's own Serve deployment that a rollout's router calls
with tensors (a version given as ``app: {import_path, args}``, ``interface: tensor``).

A subclass declares its inputs and outputs and implements ``predict_batch``; the base gives it
what the router calls, ``predict`` (with dynamic batching), ``predict_many`` (a group the
router sent as one call) and ``signature``::

    from ray import serve
    import rayrollout as rr

    @serve.deployment
    class Digits(rr.TensorModel):
        inputs = [rr.TensorSpec("input", "FP32", (-1, 64))]
        outputs = [rr.TensorSpec("label", "INT64", (-1,)),
                   rr.TensorSpec("probabilities", "FP32", (-1, 10))]

        def __init__(self, path: str) -> None:
            super().__init__()
            self.model = joblib.load(path)

        def predict_batch(self, inputs):
            x = inputs["input"]
            return {"label": self.model.predict(x), "probabilities": self.model.predict_proba(x)}

    app = Digits.bind("models/artifacts/sklearn-digits.joblib")

The router validates every request against ``inputs`` before it reaches the model, so
``predict_batch`` gets named arrays of the declared dtypes, batch first. Its outputs must have
one row per input row. ``task`` is "classification" (the first output holds class indices)
or "regression". Batching is set by the class attributes ``max_batch_size`` and
``batch_wait_timeout_s`` (or the constructor's keyword arguments of the same names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rayrollout.runtime import ModelSignature, TensorSpec
from rayrollout.serving.batching import Arrays, BatchedPredictor, ItemFailed


class TensorModel(BatchedPredictor):
    inputs: ClassVar[Sequence[TensorSpec]] = ()
    outputs: ClassVar[Sequence[TensorSpec]] = ()
    task: ClassVar[str] = "classification"
    max_batch_size: ClassVar[int] = 32
    batch_wait_timeout_s: ClassVar[float] = 0.002
    inline_rows: ClassVar[int] = 64

    def __init__(self, *, max_batch_size: int | None = None,
                 batch_wait_timeout_s: float | None = None) -> None:
        cls = type(self)
        if not cls.inputs or not cls.outputs:
            raise TypeError(f"{cls.__name__} must declare inputs and outputs (TensorSpec lists)")
        if cls.task not in ("classification", "regression"):
            raise TypeError(f"{cls.__name__}.task must be classification or regression")
        self._signature = ModelSignature(tuple(cls.inputs), tuple(cls.outputs), cls.task)
        self._init_batching(self.predict_batch,
                            max_batch_size or cls.max_batch_size,
                            cls.batch_wait_timeout_s if batch_wait_timeout_s is None
                            else batch_wait_timeout_s,
                            cls.inline_rows, cls.__name__)

    def predict_batch(self, inputs: Arrays) -> Arrays:
        """The model on a batch of rows (dim 0 of every array). Override this."""
        raise NotImplementedError(f"{type(self).__name__}.predict_batch")

    def _ready(self) -> None:  # a subclass whose __init__ did not call ours
        if "_signature" not in self.__dict__:
            TensorModel.__init__(self)

    async def predict(self, inputs: Arrays) -> Arrays:
        """What the router calls: one request's arrays, batched with its neighbours."""
        self._ready()
        return await self._predict(inputs)

    async def predict_many(self, items: list[Arrays]) -> list[Arrays | ItemFailed]:
        """What the router calls for a group of requests it sent together: each request's
        outputs, or its error (``ItemFailed``) in its slot."""
        self._ready()
        return await self._predict_many(items)

    def signature(self) -> dict[str, object]:
        """What the router validates requests against (``ModelSignature.to_dict()``)."""
        self._ready()
        return self._signature.to_dict()
