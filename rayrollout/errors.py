"""The one exception tree of rayrollout, and the one table that maps it to HTTP statuses.

::

    RolloutError                    every error rayrollout raises on purpose
    ├── ConfigError                 a spec or argument failed validation (names field and value)
    ├── RequestError                the client sent something we refuse: answered with a 4xx,
    │   │                           counted as *rejected*, never as a failure of a version
    │   ├── BadRequest              malformed body, wrong input name/dtype/shape, NaN/Inf  (400)
    │   ├── PayloadTooLarge         body or batch over the configured limit                (413)
    │   ├── NotFound                unknown model, version, rollout or route               (404)
    │   ├── MethodNotAllowed        wrong HTTP method for a route (with ``Allow``)         (405)
    │   ├── Unauthorized            missing or wrong token                                 (401)
    │   └── Forbidden               a valid token whose scopes do not cover the route      (403)
    ├── Conflict                    valid, but not in the current state                    (409)
    │   └── IllegalTransition       a verb or decision the phase table does not allow      (409)
    ├── UnavailableError            no live version / no controller can answer right now   (503)
    │   └── NotCarriedOut           a verb was stored, but its routing push failed; it stands
    ├── ModelError                  the version's model failed: a failure of that version  (500)
    │   ├── ModelTimeout            the version did not answer in time                     (504)
    │   └── PredictError            the model raised on a batch (raised by a runtime)      (500)
    ├── ModelRuntimeError           a runtime cannot serve an artifact at all              (500)
    │   ├── DeviceUnavailableError  asked for "cuda" where the runtime cannot use a GPU
    │   └── ModelLoadError          the artifact exists but cannot be loaded or described
    ├── AdminError                  the admin API refused or failed a call from a client;
    │                               ``status`` is its HTTP status (None: no answer at all)
    └── StoreError                  the rollout store failed; nothing was written           (500)
        ├── StoreBusy               another process holds its write lock (also Unavailable) (503)
        ├── StoreUnavailable        the store's server cannot be reached (also Unavailable) (503)
        ├── StoreFull               the disk (or the store's page limit) is full
        ├── StoreCorrupt            the file or a row is not what the store wrote
        └── Fenced                  a newer controller holds the lease (also Conflict)      (409)

    InputsPruned (a NotFound)       a rollout's recorded tick inputs were removed by the
                                    store's retention: it cannot be replayed               (404)

Third-party errors (onnxruntime, torch, Ray, httpx, pydantic) are translated into this tree at
the boundary where they happen, with ``raise ... from``. A missing artifact stays a plain
``FileNotFoundError`` and a batch lacking a declared input a ``ValueError`` (bad input, never a
model failure). Outcomes of judges are values (``rayrollout.analysis``), not exceptions:
exceptions are for broken input and infrastructure only.
"""

from __future__ import annotations


class RolloutError(Exception):
    """Base of every error rayrollout raises on purpose."""

    code = "rollout_error"


class ConfigError(RolloutError, ValueError):
    code = "invalid_config"


class RequestError(RolloutError):
    code = "bad_request"


class BadRequest(RequestError):
    code = "bad_request"


class PayloadTooLarge(RequestError):
    code = "payload_too_large"


class NotFound(RequestError):
    code = "not_found"


class MethodNotAllowed(RequestError):
    """``allow``: the methods the route accepts (sent back in the ``Allow`` header)."""

    code = "method_not_allowed"

    def __init__(self, message: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allow = tuple(allow)


class Unauthorized(RequestError):
    code = "unauthorized"


class Forbidden(RequestError):
    """A valid token that lacks the scope the route needs (a ``read`` token on a verb)."""

    code = "forbidden"


class Conflict(RolloutError):
    """The request is valid but not now: e.g. an illegal rollout transition."""

    code = "conflict"


class IllegalTransition(Conflict):
    """A verb or a decision asked for a move the phase table does not allow."""

    code = "illegal_transition"


class UnavailableError(RolloutError):
    code = "unavailable"


class NotCarriedOut(UnavailableError):
    """A verb was decided and stored, but carrying it out failed because something it needs
    (the routers, Serve) cannot be reached. It stands: it is carried out again on a later tick
    or restart. Calling again does not help (the Python API does not retry it): the verb is
    applied already, and only the platform can make it effective."""

    code = "not_carried_out"


class ModelError(RolloutError):
    code = "model_error"


class ModelTimeout(ModelError):
    code = "model_timeout"


class PredictError(ModelError):
    """The model itself failed on a batch."""

    code = "predict_error"


class ModelRuntimeError(RolloutError):
    """A runtime cannot serve an artifact on this machine."""

    code = "runtime_error"


class DeviceUnavailableError(ModelRuntimeError):
    """The requested device cannot be used by this runtime on this machine."""

    code = "device_unavailable"


class ModelLoadError(ModelRuntimeError):
    """The artifact was found but could not be loaded."""

    code = "model_load_error"


class AdminError(RolloutError):
    """A call to the admin API failed: refused (4xx), failed (5xx) or unanswered (``None``)."""

    code = "admin_error"

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class StoreError(RolloutError):
    """The rollout store failed. Whatever the call was writing was not committed."""

    code = "store_error"


class StoreBusy(StoreError, UnavailableError):
    """Another process held the store's write lock past the busy timeout; try again."""

    code = "store_busy"


class StoreUnavailable(StoreError, UnavailableError):
    """The store's server (PostgreSQL) cannot be reached, or the connection broke; the call
    says whether a write may have landed."""

    code = "store_unavailable"


class StoreFull(StoreError):
    """The disk, or the store's page limit, is full."""

    code = "store_full"


class StoreCorrupt(StoreError):
    """The store file is not a SQLite database, or is damaged, or a row is not what the store
    wrote (invalid JSON or compression)."""

    code = "store_corrupt"


class Fenced(StoreError, Conflict):
    """Another controller of the same model took over the store's lease (Ray ran a newer
    incarnation): this one's token is stale, so it may no longer write the log or push a
    table. Nothing was committed."""

    code = "fenced"


class InputsPruned(NotFound):
    """A rollout's tick inputs were pruned by the store's retention; its log entries stay."""

    code = "inputs_pruned"


# Most specific first: the first matching class decides the status.
HTTP_STATUS: tuple[tuple[type[RolloutError], int], ...] = (
    (PayloadTooLarge, 413),
    (Conflict, 409),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RequestError, 400),
    (ConfigError, 400),
    (UnavailableError, 503),
    (ModelTimeout, 504),
    (ModelError, 500),
    (RolloutError, 500),
)


def http_status(exc: BaseException) -> int:
    """The HTTP status for an exception; anything not ours is an internal error (500)."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, str]:
    """JSON body for an error response: a stable code and a message naming the problem."""
    code = getattr(exc, "code", "internal_error")
    return {"error": str(exc) or exc.__class__.__name__, "code": code}


def error_headers(exc: BaseException) -> dict[str, str]:
    """Headers an error response must carry: ``Allow`` on a 405, a Bearer challenge on a 401."""
    if isinstance(exc, MethodNotAllowed) and exc.allow:
        return {"allow": ", ".join(exc.allow)}
    if isinstance(exc, Unauthorized):
        return {"www-authenticate": 'Bearer realm="rayrollout"'}
    return {}
