"""``fetch_artifact``: local paths and ``file://`` in place, checked against sha256; URIs of
other schemes refused; the per-node cache of object-store artifacts (driven here through its
seam with a local file system standing in for the store; tests/integration/test_object_store.py
drives it through a real S3 server)."""

from __future__ import annotations

import hashlib
import importlib
import os
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem

from rayrollout.errors import ConfigError, ModelLoadError, ModelRuntimeError
from rayrollout.runtime.artifacts import (
    CACHE_ENV,
    _cache_root,
    _cached_fetch,
    fetch_artifact,
    parse_object_uri,
)

BYTES = b"\x08\x07model weights" * 1000
SHA = hashlib.sha256(BYTES).hexdigest()
WRONG = "0" * 64


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "store" / "v1.onnx"
    p.parent.mkdir()
    p.write_bytes(BYTES)
    return p


# -- local paths and file:// --------------------------------------------------------------------

def test_a_local_path_is_returned_in_place_and_checked(model: Path) -> None:
    assert fetch_artifact(str(model)) == model
    assert fetch_artifact(str(model), SHA) == model
    with pytest.raises(ModelLoadError) as e:
        fetch_artifact(str(model), WRONG)
    assert str(model) in str(e.value) and SHA in str(e.value) and WRONG in str(e.value)
    assert model.read_bytes() == BYTES  # nothing touched


def test_a_file_uri_is_its_local_path(tmp_path: Path) -> None:
    p = tmp_path / "a dir" / "v1#2.onnx"
    p.parent.mkdir()
    p.write_bytes(BYTES)
    escaped = "file://" + str(tmp_path) + "/a%20dir/v1%232.onnx"
    assert fetch_artifact(escaped, SHA) == p
    assert fetch_artifact("file://localhost" + str(p).replace("#", "%23")) == p
    with pytest.raises(ModelLoadError, match=rf"'file://.*v1%232\.onnx' has sha256 {SHA}, "
                                             rf"expected {WRONG}"):
        fetch_artifact(escaped, WRONG)


@pytest.mark.parametrize("location", ["{d}/missing.onnx", "file://{d}/missing.onnx"])
def test_a_missing_local_artifact_is_file_not_found_naming_it(tmp_path: Path, location: str
                                                               ) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        fetch_artifact(location.format(d=tmp_path), SHA)


def test_a_sha256_needs_a_file(tmp_path: Path) -> None:
    assert fetch_artifact(str(tmp_path)) == tmp_path  # a python runtime may take a directory
    with pytest.raises(ModelLoadError, match="not a regular file"):
        fetch_artifact(str(tmp_path), SHA)


@pytest.mark.parametrize("uri", ["file://otherhost/srv/v1.onnx", "file:///srv/v1.onnx?x=1",
                                 "file:///srv/v1.onnx#frag"])
def test_a_file_uri_names_a_file_on_this_machine_only(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"artifact='file://"):
        fetch_artifact(uri)


# -- schemes and URIs -----------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["http://example.com/v1.onnx", "https://h/v1.onnx",
                                 "memory://bucket/v1.onnx", "ftp://h/v1.onnx",
                                 "hdfs://nn/v1.onnx", "simplecache::s3://b/k"])
def test_another_scheme_is_refused_naming_the_uri_and_the_supported_ones(uri: str) -> None:
    with pytest.raises(ConfigError) as e:
        fetch_artifact(uri, SHA)
    msg = str(e.value)
    assert repr(uri) in msg and all(s in msg for s in ("file://", "s3://", "gs://"))


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "gs:///key",
                                 "s3://b/models/../secret.onnx", "s3://b/./v1.onnx",
                                 "s3://b//v1.onnx", "s3://b/models/", "s3://b/v1\n.onnx",
                                 "s3://user:pw@b/v1.onnx", "s3://b:9000/v1.onnx"])
def test_a_malformed_object_uri_is_refused_before_any_network(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"^artifact="):
        fetch_artifact(uri)


def test_an_object_uri_is_taken_apart() -> None:
    u = parse_object_uri("GCS://ml-eu_1/models/v1/model.onnx?versionId=3")
    assert (u.scheme, u.bucket, u.key) == ("gcs", "ml-eu_1", "models/v1/model.onnx?versionId=3")


@pytest.mark.parametrize(("uri", "module", "extra"), [("s3://b/k.onnx", "s3fs", "s3"),
                                                      ("gs://b/k.onnx", "gcsfs", "gcs"),
                                                      ("gcs://b/k.onnx", "gcsfs", "gcs")])
def test_a_missing_library_names_the_extra_to_install(
    uri: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it fails
    known = importlib.import_module("fsspec.registry")._registry  # classes fsspec imported
    monkeypatch.delitem(known, "s3" if extra == "s3" else "gs", raising=False)
    with pytest.raises(ModelRuntimeError) as e:
        fetch_artifact(uri, cache_dir=tmp_path)
    assert f"pip install 'rayrollout[{extra}]'" in str(e.value) and repr(uri) in str(e.value)
    assert not isinstance(e.value, ModelLoadError)


# -- the cache -------------------------------------------------------------------------------------

class Store:
    """A local directory standing in for a bucket; counts what was asked of it."""

    def __init__(self, delay: float = 0.0, fail_after: int | None = None) -> None:
        self.fs = LocalFileSystem(skip_instance_cache=True)
        self.gets = self.infos = 0
        self.delay, self.fail_after = delay, fail_after
        self._count = threading.Lock()

    def info(self, path: str) -> dict[str, Any]:
        self.infos += 1
        info: dict[str, Any] = self.fs.info(path)
        return info

    def get_file(self, rpath: str, lpath: str) -> None:
        with self._count:
            self.gets += 1
        time.sleep(self.delay)  # a slow network: widens the window for a second fetch
        if self.fail_after is not None:
            Path(lpath).write_bytes(Path(rpath).read_bytes()[: self.fail_after])
            raise ConnectionResetError("connection reset by peer")
        self.fs.get_file(rpath, lpath)


URI = "s3://bucket/models/v1.onnx"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    root.mkdir()
    return root


def fetch(store: Store, model: Path, root: Path, sha: str | None = SHA) -> Path:
    return _cached_fetch(URI, store, str(model), sha, root)


def entries(root: Path) -> list[str]:
    """What the cache holds besides its lock files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix != ".lock")


def test_a_pinned_artifact_is_fetched_once_then_reused_without_asking_the_store(
    model: Path, cache: Path
) -> None:
    root, store = cache, Store()
    got = fetch(store, model, root)
    assert got.is_relative_to(root) and got.name == "v1.onnx" and got.read_bytes() == BYTES
    model.unlink()  # the store lost it: the cache still serves the pinned bytes
    assert fetch(store, model, root) == got
    assert (store.gets, store.infos) == (1, 0)
    assert entries(root) == [f"sha256-{SHA}", f"sha256-{SHA}/v1.onnx"]


def test_a_damaged_cache_entry_is_fetched_again(model: Path, cache: Path) -> None:
    store = Store()
    got = fetch(store, model, cache)
    got.write_bytes(b"bit rot")
    assert fetch(store, model, cache) == got and got.read_bytes() == BYTES
    assert store.gets == 2


def test_an_unpinned_artifact_is_reused_until_the_object_changes(model: Path, cache: Path
                                                                 ) -> None:
    root, store = cache, Store()
    first = fetch(store, model, root, sha=None)
    assert fetch(store, model, root, sha=None) == first and store.gets == 1
    model.write_bytes(b"version two of the model")
    second = fetch(store, model, root, sha=None)
    assert second != first and second.read_bytes() == b"version two of the model"
    assert store.gets == 2 and first.read_bytes() == BYTES  # the older copy is left alone


def test_a_digest_mismatch_names_both_digests_and_keeps_nothing(model: Path, cache: Path
                                                                ) -> None:
    store = Store()
    for _ in range(2):  # refused every time: nothing was cached
        with pytest.raises(ModelLoadError) as e:
            fetch(store, model, cache, sha=WRONG)
        assert all(s in str(e.value) for s in (repr(URI), f"sha256 {SHA}", f"expected {WRONG}"))
    assert store.gets == 2 and entries(cache) == []


@pytest.mark.parametrize("sha", [SHA, None], ids=["pinned", "unpinned"])
def test_a_missing_object_is_a_load_error_naming_the_uri(cache: Path, sha: str | None
                                                         ) -> None:
    with pytest.raises(ModelLoadError, match=rf"artifact {URI!r} not found"):
        fetch(Store(), cache / "nothing.onnx", cache, sha=sha)
    assert entries(cache) == []


def test_a_download_that_fails_halfway_leaves_nothing_and_the_next_one_succeeds(
    model: Path, cache: Path
) -> None:
    with pytest.raises(ModelLoadError, match=rf"{URI!r} could not be fetched: "
                                             "ConnectionResetError"):
        fetch(Store(fail_after=100), model, cache, sha=None)
    assert entries(cache) == []
    assert fetch(Store(), model, cache, sha=None).read_bytes() == BYTES


def test_a_temporary_file_left_by_a_dead_fetch_is_removed(model: Path, cache: Path) -> None:
    stale = cache / f"sha256-{SHA}" / ".part-dead"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    fetch(Store(), model, cache)
    assert entries(cache) == [f"sha256-{SHA}", f"sha256-{SHA}/v1.onnx"]


@pytest.mark.parametrize("sha", [SHA, None], ids=["pinned", "unpinned"])
def test_replicas_fetching_at_once_download_once(model: Path, cache: Path, sha: str | None
                                                 ) -> None:
    store, n = Store(delay=0.3), 8
    start = threading.Barrier(n)
    got: list[Path] = []

    def replica() -> None:
        start.wait()
        got.append(fetch(store, model, cache, sha=sha))

    threads = [threading.Thread(target=replica) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.gets == 1 and len(got) == n and len(set(got)) == 1
    assert got[0].read_bytes() == BYTES


# -- where the cache is ----------------------------------------------------------------------------

def test_the_cache_is_the_argument_else_the_environment_else_a_private_temporary_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cache_root(tmp_path / "arg" / "deep") == tmp_path / "arg" / "deep"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert _cache_root(None) == tmp_path / "env" and (tmp_path / "env").is_dir()
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = _cache_root(None)
    assert root == tmp_path / f"rayrollout-artifacts-{os.getuid()}"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_default_cache_another_could_write_to_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"rayrollout-artifacts-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(ModelRuntimeError, match=f"not a private directory.*{CACHE_ENV}"):
        _cache_root(None)
    planted.rmdir()
    planted.symlink_to(tmp_path)
    with pytest.raises(ModelRuntimeError, match="not a private directory"):
        _cache_root(None)
