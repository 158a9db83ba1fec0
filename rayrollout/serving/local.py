"""An embedded local Ray with Serve on a given port, for the demo and for trying things out."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalTokens:
    """Fresh tokens for an embedded Ray: one with every scope, one that may only post labels.
    ``env`` is what the routers read them from (``RAYROLLOUT_ADMIN_TOKENS``)."""

    admin: str
    feedback: str

    @classmethod
    def fresh(cls) -> LocalTokens:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24))

    @property
    def env(self) -> dict[str, str]:
        return {"RAYROLLOUT_ADMIN_TOKENS": f"local:{self.admin},labels/feedback:{self.feedback}"}


@contextmanager
def local_serve(http_port: int, num_cpus: int = 8, env: dict[str, str] | None = None
                ) -> Iterator[None]:
    """Start a local Ray (no dashboard, quiet) and Serve on ``127.0.0.1:http_port``; shut both
    down on exit. ``env`` is set in this process first, so that every Ray worker (routers and
    the controller included) starts with it."""
    import ray
    from ray import serve

    os.environ.update(env or {})
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        yield
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
