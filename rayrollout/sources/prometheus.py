"""``PromQLSource``: one number from Prometheus' instant-query API (``GET /api/v1/query``).

Which servers a rollout spec may name is the operator's choice, made where the controller runs
(a spec can come over HTTP from anyone holding an ``admin`` token):
``RAYROLLOUT_PROMETHEUS_HOSTS`` lists the allowed hosts, comma-separated, as exact host names
or addresses, ``*.example.com`` (any subdomain) or ``*`` (any host). Unset, any host may be
named (Prometheus usually lives on the cluster's own network). ``check_url`` applies it when a
rollout starts (the start fails naming the check) and the source applies it again when made.

Guarantees: a query blocks for at most ``timeout_s`` (connect, read and the server's own
evaluation ``timeout``); redirects are not followed; every failure is a ``SourceError`` whose
kind says which (``rayrollout.sources.base``), and its message names the server and the query
but quotes at most 200 characters of anything the server said.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import httpx

from rayrollout.errors import ConfigError
from rayrollout.sources.base import (
    BadResponse,
    EmptyResult,
    NotANumber,
    QueryFailed,
    SourceUnavailable,
    TooManySeries,
)

HOSTS_ENV = "RAYROLLOUT_PROMETHEUS_HOSTS"
_QUOTE = 200  # characters of a server's message quoted in an error


def _host_allowed(host: str, environ: Mapping[str, str]) -> bool:
    raw = environ.get(HOSTS_ENV)
    if raw is None:
        return True
    h = host.lower()
    for item in (x.strip().lower() for x in raw.split(",")):
        if item == "*" or item == h or (item.startswith("*.") and h.endswith(item[1:])):
            return True
    return False


def check_url(url: str, environ: Mapping[str, str] | None = None) -> None:
    """``ConfigError`` unless ``url`` is an http(s) URL whose host ``RAYROLLOUT_PROMETHEUS_HOSTS``
    allows (any host when it is unset) and that carries no user or password."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise ConfigError(f"not a URL: {url[:100]!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.host:
        raise ConfigError(f"url {url[:100]!r} must be http:// or https:// with a host")
    if u.userinfo:
        raise ConfigError("url carries a user or password: a spec is stored and shown")
    env = os.environ if environ is None else environ
    if not _host_allowed(u.host, env):
        raise ConfigError(f"Prometheus host {u.host!r} is not in {HOSTS_ENV} where the "
                          "controller runs")


def _quote(text: Any) -> str:
    s = str(text)
    return s if len(s) <= _QUOTE else s[:_QUOTE] + "..."


class PromQLSource:
    """Instant queries against the Prometheus at ``url`` (its base: ``http://host:9090``, or
    with a path prefix), each bounded by ``timeout_s``. Thread-safe: one ``httpx.Client``."""

    def __init__(self, url: str, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not 0.0 < timeout_s <= 300.0:
            raise ConfigError(f"timeout_s must lie in (0, 300], got {timeout_s!r}")
        check_url(url)
        self.url = url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._client = httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                                    transport=transport)

    @property
    def where(self) -> str:
        return self.url

    def close(self) -> None:
        self._client.close()

    def value(self, query: str, at: float | None = None) -> float:
        """The one value ``query`` has at ``at`` (see ``MetricSource``)."""
        params: dict[str, str] = {"query": query, "timeout": f"{self.timeout_s:g}s"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = self._client.get(f"{self.url}/api/v1/query", params=params)
        except httpx.TimeoutException as e:
            raise SourceUnavailable(f"Prometheus at {self.url} did not answer within "
                                    f"{self.timeout_s:g} s ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise SourceUnavailable(f"Prometheus at {self.url} cannot be reached: "
                                    f"{type(e).__name__}: {_quote(e)}") from None
        return self._parse(r, query)

    def _parse(self, r: httpx.Response, query: str) -> float:
        code = r.status_code
        try:
            body = r.json()
        except ValueError:
            body = None
        said = _quote(body.get("error", "")) if isinstance(body, dict) else _quote(r.text)
        if code >= 500:
            raise SourceUnavailable(f"Prometheus at {self.url} answered HTTP {code}: {said}")
        if not isinstance(body, dict):
            raise BadResponse(f"Prometheus at {self.url} answered HTTP {code} with no JSON "
                              f"body: {said}")
        if body.get("status") != "success":
            if code in (400, 422):
                kind = _quote(body.get("errorType", "error"))
                raise QueryFailed(f"Prometheus at {self.url} refused the query ({kind}): "
                                  f"{said}")
            raise BadResponse(f"Prometheus at {self.url} answered HTTP {code}: {said}")
        data = body.get("data")
        rtype = data.get("resultType") if isinstance(data, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        if rtype == "scalar" and isinstance(result, list) and len(result) == 2:
            raw = result[1]
        elif rtype == "vector" and isinstance(result, list):
            if not result:
                raise EmptyResult(f"no series answered {_quote(query)!r} at {self.url}")
            if len(result) > 1:
                shown = ", ".join(_quote(s.get("metric", {}) if isinstance(s, dict) else s)
                                  for s in result[:3])
                raise TooManySeries(f"{len(result)} series answered {_quote(query)!r} "
                                    f"({shown}{', ...' if len(result) > 3 else ''}); it must "
                                    "give one number: aggregate them, e.g. sum(...)")
            sample = result[0]
            value = sample.get("value") if isinstance(sample, dict) else None
            if not isinstance(value, list) or len(value) != 2:
                raise BadResponse(f"Prometheus at {self.url} answered a sample without a value")
            raw = value[1]
        elif rtype == "matrix":
            raise QueryFailed(f"{_quote(query)!r} gives a range vector; a check needs one "
                              "number (an instant vector of one series, or a scalar)")
        else:
            raise BadResponse(f"Prometheus at {self.url} answered a {_quote(rtype)} result")
        try:
            x = float(raw)
        except (TypeError, ValueError):
            raise BadResponse(f"Prometheus at {self.url} answered {_quote(raw)!r}, not a "
                              "number") from None
        if not math.isfinite(x):
            raise NotANumber(f"{_quote(query)!r} is {raw} at {self.url} (0/0 before any "
                             "traffic, or a division by zero)")
        return x
