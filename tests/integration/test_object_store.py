"""``fetch_artifact`` against a real S3 protocol (moto's server on 127.0.0.1) through s3fs,
the endpoint and credentials taken from the standard environment. No Ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rayrollout.errors import ModelLoadError
from rayrollout.runtime.artifacts import fetch_artifact
from tests.conftest import ARTIFACTS
from tests.integration.s3_server import S3Server, s3_fixture

V1 = ARTIFACTS / "v1.onnx"
KEY = "models/artifacts/v1.onnx"  # the keys of this module: moto shares a bucket per process

s3 = s3_fixture({KEY: V1})


@pytest.fixture(autouse=True)
def aws_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process reaches the server as a replica would: by the standard AWS variables."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    yield


def cached(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_an_s3_artifact_with_its_sha256_is_the_same_file(s3: S3Server, tmp_path: Path) -> None:
    got = fetch_artifact(s3.uri(KEY), s3.sha256(KEY), cache_dir=tmp_path)
    assert got.is_relative_to(tmp_path) and got.suffix == ".onnx"
    assert got.read_bytes() == V1.read_bytes()


def test_a_pinned_artifact_in_the_cache_outlives_the_object(s3: S3Server, tmp_path: Path
                                                             ) -> None:
    uri = s3.put("object-store/gone.onnx", V1)
    first = fetch_artifact(uri, s3.sha256(KEY), cache_dir=tmp_path)
    s3.delete("object-store/gone.onnx")
    assert fetch_artifact(uri, s3.sha256(KEY), cache_dir=tmp_path) == first


def test_a_wrong_sha256_is_refused_naming_the_uri_and_nothing_is_cached(
    s3: S3Server, tmp_path: Path
) -> None:
    wrong = "ab" * 32
    with pytest.raises(ModelLoadError) as e:
        fetch_artifact(s3.uri(KEY), wrong, cache_dir=tmp_path)
    assert all(s in str(e.value) for s in (repr(s3.uri(KEY)), wrong, s3.sha256(KEY)))
    assert cached(tmp_path) == []


@pytest.mark.parametrize("sha", [None, "ab" * 32], ids=["unpinned", "pinned"])
def test_a_missing_key_or_bucket_is_a_load_error_naming_the_uri(
    s3: S3Server, tmp_path: Path, sha: str | None
) -> None:
    for uri in (s3.uri("object-store/missing.onnx"), "s3://no-such-bucket-here/v1.onnx"):
        with pytest.raises(ModelLoadError, match=f"artifact {uri!r} not found"):
            fetch_artifact(uri, sha, cache_dir=tmp_path)
    assert cached(tmp_path) == []


def test_an_unpinned_object_changed_in_the_store_is_fetched_again(
    s3: S3Server, tmp_path: Path
) -> None:
    uri = s3.put("object-store/latest.onnx", b"first model")
    first = fetch_artifact(uri, cache_dir=tmp_path)
    assert fetch_artifact(uri, cache_dir=tmp_path) == first
    s3.put("object-store/latest.onnx", b"second model")
    second = fetch_artifact(uri, cache_dir=tmp_path)
    assert second != first and second.read_bytes() == b"second model"


def test_an_unreachable_store_is_a_load_error_naming_the_uri(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto checks no credentials, but it does check the endpoint: one with nothing behind
    it is a failure of the store, named."""
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ModelLoadError, match=rf"artifact {s3.uri(KEY)!r} could not be fetched"):
        fetch_artifact(s3.uri(KEY), cache_dir=tmp_path)
