"""A local S3-compatible server for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1 and a
free port, in this process, with one bucket of its own.

Use it as a fixture::

    from tests.integration.s3_server import S3Server, s3_fixture

    s3 = s3_fixture({"models/v1.onnx": ARTIFACTS / "v1.onnx"})   # a module fixture

    def test_x(s3: S3Server) -> None:
        version = {"name": "v2", "runtime": "onnx", "artifact": s3.uri("models/v1.onnx"),
                   "sha256": s3.sha256("models/v1.onnx"),
                   "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": s3.env}}}

``env`` is what a process needs to reach the server with the standard AWS variables (botocore,
so s3fs, reads ``AWS_ENDPOINT_URL``): pass it to a replica through ``runtime_env.env_vars``,
or to this process with ``monkeypatch.setenv``. Ray workers on this machine reach the server
as long as the fixture lives.

The bucket is ``BUCKET`` unless told otherwise, a name fixed in advance so that a controller
started before the server can already allow it (``RAYROLLOUT_ARTIFACT_ROOTS=s3://<BUCKET>``
in the environment Ray starts with). moto keeps its objects per process, across servers: give
each test module keys of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.conftest import free_port

REGION = "us-east-1"
BUCKET = "rayrollout-test"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]
    client: Any = field(repr=False)  # a boto3 S3 client of the server
    digests: dict[str, str] = field(default_factory=dict)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes | Path) -> str:
        """Upload ``data`` (bytes, or a file's bytes) as ``key``; its ``s3://`` URI."""
        body = data.read_bytes() if isinstance(data, Path) else data
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.digests[key] = hashlib.sha256(body).hexdigest()
        return self.uri(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)
        self.digests.pop(key, None)

    def sha256(self, key: str) -> str:
        """The SHA-256 of what was last uploaded as ``key``."""
        return self.digests[key]


@contextmanager
def s3_server(files: Mapping[str, bytes | Path] | None = None, bucket: str = BUCKET
              ) -> Iterator[S3Server]:
    """Start the server, make ``bucket`` (if moto has not got it already), upload ``files``
    (key -> bytes or a file); stop the server when the block ends."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "rayrollout-test",
               "AWS_SECRET_ACCESS_KEY": "rayrollout-test", "AWS_DEFAULT_REGION": REGION}
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        s3 = S3Server(endpoint, bucket, env, client)
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for key, data in (files or {}).items():
            s3.put(key, data)
        yield s3
    finally:
        server.stop()


Scope = Literal["session", "package", "module", "class", "function"]


def s3_fixture(files: Mapping[str, bytes | Path] | None = None, bucket: str = BUCKET,
               scope: Scope = "module") -> Callable[[], Iterator[S3Server]]:
    """A pytest fixture (module-scoped by default) yielding an ``S3Server`` whose bucket holds
    ``files``; assign it to a module-level name, which becomes the fixture's name."""

    @pytest.fixture(scope=scope)
    def _s3() -> Iterator[S3Server]:
        with s3_server(files, bucket) as s3:
            yield s3

    return _s3
