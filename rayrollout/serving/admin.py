"""Admin API under ``/rollout/...`` on the router (placeholder until the admin issue lands)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rayrollout.config import RouterConfig
from rayrollout.errors import NotFound


class AdminAPI:
    def __init__(self, cfg: RouterConfig) -> None:
        self.cfg = cfg

    def start_rollout(self) -> Any:
        import ray

        from rayrollout.api import controller_handle
        from rayrollout.spec import RolloutSpec

        assert self.cfg.rollout is not None
        spec = RolloutSpec.model_validate(self.cfg.rollout)
        h = controller_handle(spec.model, spec.store_path)
        return ray.get(h.start.remote(spec.model_dump(mode="json"), "serve-run"))

    async def handle(self, request: Request, parts: list[str]) -> Response:
        raise NotFound(f"no admin route /rollout/{'/'.join(parts)}")
