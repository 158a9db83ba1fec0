"""The one exception tree of rayrollout, and the one table that maps it to HTTP statuses.

::

    RolloutError
    ├── ConfigError                 a spec or argument failed validation (names field and value)
    ├── RequestError                the client sent something we refuse: answered with a 4xx,
    │   │                           counted as *rejected*, never as a failure of a version
    │   ├── BadRequest              malformed body, wrong input name/dtype/shape, NaN/Inf  (400)
    │   ├── PayloadTooLarge         body or batch over the configured limit                (413)
    │   ├── NotFound                unknown model, version or route                        (404)
    │   ├── MethodNotAllowed        wrong HTTP method for a route                          (405)
    │   └── Unauthorized            missing or wrong admin token                           (401)
    ├── Conflict                    valid, but not in the current state (a rollout verb)    (409)
    ├── UnavailableError            no live version can serve right now                    (503)
    └── ModelError                  the version's model raised: a failure of that version  (500)
        └── ModelTimeout            the version did not answer in time                     (504)

Outcomes of judges are values (``rayrollout.analysis``); exceptions are for broken input and
infrastructure only.
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
    code = "method_not_allowed"


class Unauthorized(RequestError):
    code = "unauthorized"


class Conflict(RolloutError):
    """The request is valid but not now: e.g. an illegal rollout transition."""

    code = "conflict"


class UnavailableError(RolloutError):
    code = "unavailable"


class ModelError(RolloutError):
    code = "model_error"


class ModelTimeout(ModelError):
    code = "model_timeout"


# Most specific first: the first matching class decides the status.
HTTP_STATUS: tuple[tuple[type[RolloutError], int], ...] = (
    (PayloadTooLarge, 413),
    (Conflict, 409),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Unauthorized, 401),
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
