"""An embedded local Ray with Serve on a given port, for the demo and for trying things out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_serve(http_port: int, num_cpus: int = 8) -> Iterator[None]:
    """Start a local Ray (no dashboard, quiet) and Serve on ``127.0.0.1:http_port``; shut both
    down on exit."""
    import ray
    from ray import serve

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
