"""``summarize_prediction``: one float per row, the value the router records per request.

For drift and shadow-agreement judges a prediction is reduced to a number: the class index for
classification, the first output value for regression.
"""

from __future__ import annotations

import numpy as np

LABEL_OUTPUT = "label"


def summarize_prediction(
    outputs: dict[str, np.ndarray], task: str, output: str | None = None
) -> np.ndarray:
    """Return a float64 array of shape [batch].

    * classification: the ``label`` output if there is one, else the argmax over the last axis
      of the first output (or of ``output`` when named). Labels must be integers.
    * regression: the first value per row of the first output (or of ``output``).

    Raises ``ValueError`` on an unknown task, no outputs, or a non-numeric output.
    """
    if not outputs:
        raise ValueError("no outputs to summarize")
    if task == "classification":
        if output is None and LABEL_OUTPUT in outputs:
            return _rows(outputs[LABEL_OUTPUT], "label")
        name = output or next(iter(outputs))
        arr = np.asarray(outputs[name])
        if arr.ndim >= 2:  # scores / probabilities per class
            return arr.reshape(arr.shape[0], -1).argmax(axis=1).astype(np.float64)
        return _rows(arr, name)
    if task == "regression":
        name = output or next(iter(outputs))
        return _rows(outputs[name], name)
    raise ValueError(f"unknown task {task!r}; known: ['classification', 'regression']")


def _rows(arr: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"output {name!r} is not numeric (dtype {a.dtype})")
    if a.ndim == 0:
        return a.reshape(1).astype(np.float64)
    return a.reshape(a.shape[0], -1)[:, 0].astype(np.float64)
