"""Pieces of the router's inference path that guard it against its clients and its models.

* ``sticky_key``: the sticky-routing header, bounded. It becomes the statistical unit stored
  in every ``RequestEvent``, so a key longer than ``MAX_STICKY_KEY_CHARS`` characters is
  refused with 400 (counted as rejected) rather than kept: a client cannot grow the event
  buffers by sending long keys. Refusing, not hashing, keeps units readable in the decision
  log and keeps a client's key the one it sent; 256 characters hold any session id or UUID.
* ``call_version``: the call to a version with its timeout. A failure (an output holding NaN
  or infinity included: no JSON carries it) is a ``ModelError`` (500, counted against the
  version) whose message is generic with an error id; the details (artifact paths, runtime
  internals) go to the router's log under that id only.
* ``summary``: the first row's prediction and probability for the judges, always finite or
  NaN, so nothing downstream (the recorder's class counts) ever sees an infinity.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from typing import TypeVar

import numpy as np

from rayrollout._compat import ASYNC_TIMEOUT
from rayrollout.dataplane.events import Outcome
from rayrollout.dataplane.passthrough import Answer, Forward
from rayrollout.errors import BadRequest, ModelError, ModelTimeout
from rayrollout.ingress.http import error_id
from rayrollout.ingress.versions import VersionClient
from rayrollout.runtime import summarize_prediction

log = logging.getLogger("rayrollout.router")

MAX_STICKY_KEY_CHARS = 256


def sticky_key(headers: Mapping[str, str], name: str) -> str | None:
    key = headers.get(name)
    if key is not None and len(key) > MAX_STICKY_KEY_CHARS:
        raise BadRequest(f"header {name} is {len(key)} characters long; at most "
                         f"{MAX_STICKY_KEY_CHARS}")
    return key


T = TypeVar("T")


async def _timed(version: str, call: Awaitable[T], timeout: float
                 ) -> tuple[T | None, ModelError | None, Outcome, float]:
    """Await a call to a version with its timeout: (result, the error to answer, outcome,
    latency in ms). A timeout or any failure of the version is a ``ModelError`` counted
    against it, whose message is generic with an error id (the details go to the log)."""
    t0 = time.perf_counter()
    try:
        result = await asyncio.wait_for(call, timeout)
        return result, None, Outcome.OK, (time.perf_counter() - t0) * 1000.0
    except ASYNC_TIMEOUT:
        err: ModelError = ModelTimeout(f"version {version!r} did not answer within {timeout:g} s")
        outcome = Outcome.TIMEOUT
    except Exception as e:  # the model, its replica (or the proxy) failed: this version's
        eid = error_id()
        log.warning("version %r failed (error id %s): %s: %s", version, eid,
                    type(e).__name__, e)
        err = ModelError(f"version {version!r} failed (error id {eid}; the details are in the "
                         "router's log)")
        outcome = Outcome.ERROR
    return None, err, outcome, (time.perf_counter() - t0) * 1000.0


async def _checked(call: Awaitable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    outputs = await call
    bad = [k for k, v in outputs.items() if v.dtype.kind in "fc" and not np.isfinite(v).all()]
    if bad:  # no JSON can carry it, and a model that answers NaN has failed
        raise ValueError(f"output {bad[0]!r} holds NaN or infinity")
    return outputs


async def call_version(versions: VersionClient, version: str, arrays: dict[str, np.ndarray],
                       timeout: float
                       ) -> tuple[dict[str, np.ndarray] | None, Outcome, ModelError | None, float]:
    """Call the version: (outputs, outcome, the error to answer, latency in ms)."""
    outputs, err, outcome, ms = await _timed(
        version, _checked(versions.predict(version, arrays)), timeout)
    return outputs, outcome, err, ms


async def forward_version(versions: VersionClient, version: str, request: Forward,
                          via: tuple[str, int] | None, timeout: float
                          ) -> tuple[Answer | None, Outcome, ModelError | None, float]:
    """Pass a request through to a version: (its answer, outcome, the error to answer when it
    gave none, latency in ms). An answer of 5xx is an error of the version; any other status
    is its answer (a 4xx is its own answer to bad input)."""
    answer, err, outcome, ms = await _timed(version, versions.forward(version, request, via),
                                            timeout)
    if answer is not None and answer.status >= 500:
        outcome = Outcome.ERROR
    return answer, outcome, err, ms


def summary(outputs: dict[str, np.ndarray] | None, task: str) -> tuple[float, float]:
    """The first row's prediction and its probability (NaN when there is none, or when the
    model gave a value that is not finite), for the judges' drift and accuracy checks."""
    pred = prob = math.nan
    if outputs is None:
        return pred, prob
    try:
        pred = float(summarize_prediction(outputs, task)[0])
        if not math.isfinite(pred):
            return math.nan, math.nan
        probs = outputs.get("probabilities")
        if probs is not None and pred >= 0:
            prob = float(probs[0][int(pred)])
    except (ValueError, IndexError, TypeError, OverflowError):
        pred = math.nan
    return pred, prob
