"""Shared fixtures. Unit tests need nothing; integration tests share one local Ray per session."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rayrollout.serving.local import LocalTokens
from tests import pg

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")  # metrics reach Prometheus sooner

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "models" / "artifacts"

# The session's Ray workers (routers, controllers) start with these in their environment:
# tokens (TOKENS.admin has every scope, TOKENS.feedback may only post labels; send them with
# ``auth(token)``), the webhook host the tests' local hooks listen on, the object-store bucket
# the tests' S3 server serves artifacts from (``tests.integration.s3_server``), and the
# repository on the import path, so replicas import the user code under ``examples/`` as a
# cluster would with ``--working-dir``.
TOKENS = LocalTokens.fresh()
S3_BUCKET = "rayrollout-test"
RAY_ENV = {**TOKENS.env, "RAYROLLOUT_WEBHOOK_HOSTS": "127.0.0.1",
           "RAYROLLOUT_ARTIFACT_ROOTS": f"s3://{S3_BUCKET}",
           "PYTHONPATH": os.pathsep.join(
               p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RayServe:
    http_port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@pytest.fixture(scope="session")
def ray_serve() -> Iterator[RayServe]:
    import ray
    from ray import serve

    metrics_port, http_port = free_port(), free_port()
    os.environ.update(RAY_ENV)  # before Ray starts: every worker inherits it
    ray.init(
        address="local",
        num_cpus=8,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    try:
        yield RayServe(http_port, metrics_port)
    finally:
        # serve.shutdown() waits on the driver's cached handles; if their event loop thread died
        # it would wait forever, so give it a bounded time. ray.shutdown() stops everything anyway.
        stopper = threading.Thread(target=serve.shutdown, daemon=True)
        stopper.start()
        stopper.join(60)
        ray.shutdown()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (``tests.pg``): the superuser's URL to its
    ``postgres`` database. Fails (never skips) when the server cannot start here."""
    try:
        server = pg.start()
    except pg.PostgresUnavailable as e:
        pytest.fail(f"cannot start the test PostgreSQL server: {e}", pytrace=False)
    try:
        yield server.url()
    finally:
        pg.stop(server)
