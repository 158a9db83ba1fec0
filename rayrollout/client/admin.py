"""``AdminClient``: the admin API of one model on the ingress (``/rollout/<model>/...``) over
HTTP, for the CLI and for scripts. With no model it calls ``/rollout/...``, which the ingress
answers for the one model it serves (and with a 404 naming the models when it serves several).
Every method returns the decoded JSON body or raises ``AdminError`` carrying the server's own
message and status (``None`` when the server could not be reached)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from rayrollout.errors import AdminError


class AdminClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        model: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.model = model
        self._c = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> Any:
        try:
            r = self._c.request(method, self.path(path, model), json=body, params=params)
        except httpx.HTTPError as e:
            raise AdminError(f"cannot reach {self.url}: {e}", None) from None
        if r.is_success:
            try:
                return r.json()
            except ValueError:
                raise AdminError(f"{r.status_code} from {self.url}: not JSON", r.status_code
                                 ) from None
        try:
            message = str(r.json()["error"])
        except (ValueError, KeyError, TypeError):
            message = r.text.strip()[:500] or r.reason_phrase
        if r.status_code == 401:
            message += "\n(pass --token or set RAYROLLOUT_TOKEN)"
        raise AdminError(f"{r.status_code}: {message}", r.status_code)

    def path(self, route: str, model: str | None = None) -> str:
        """The URL path of an admin route of ``model`` (default: this client's)."""
        m = model or self.model
        return f"/rollout/{m}/{route}" if m else f"/rollout/{route}"

    # -- the routes --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self.request("GET", "status"))

    def verbs(self) -> list[dict[str, Any]]:
        """The verb table the server enforces (name, phases, params, help)."""
        return list(self.request("GET", "verbs")["verbs"])

    def history(self, limit: int | None = None, all_rollouts: bool = False
                ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {} if limit is None else {"limit": limit}
        if all_rollouts:
            params["all"] = 1
        return list(self.request("GET", "history", params=params))

    def verify(self) -> dict[str, Any]:
        return dict(self.request("GET", "verify"))

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        return dict(self.request("GET", "replay",
                                 params={"rollout": rollout} if rollout else None))

    def start(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Start a rollout of ``spec`` on its model's router (this client's model if set)."""
        model = self.model or spec.get("model")
        return dict(self.request("POST", "start", dict(spec),
                                 model=model if isinstance(model, str) else None))

    def command(self, verb: str, **body: Any) -> dict[str, Any]:
        return dict(self.request("POST", verb, {k: v for k, v in body.items() if v}))
