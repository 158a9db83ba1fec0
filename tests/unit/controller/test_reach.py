"""What a spec may reach on the controller's machine: artifacts under the artifact roots, webhook
hosts the operator allows. Checked at start, before anything is deployed, whoever starts it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rayrollout.controller.controller import RolloutController
from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.store import Store
from rayrollout.errors import ConfigError
from rayrollout.notify.webhook import HOSTS_ENV
from rayrollout.spec.reach import ARTIFACT_ROOTS_ENV, artifact_roots, split_roots
from rayrollout.spec.serving import project_root
from tests.unit.controller.test_controller import MODEL, Clock, spec_doc


def controller(tmp_path: Path) -> tuple[RolloutController, FakeServePort]:
    port = FakeServePort(Clock())
    return RolloutController(MODEL, Store(str(tmp_path / "r.db")), port, port.clock), port


@pytest.mark.parametrize("artifact", [
    "/etc/passwd",                              # anywhere on the disk
    "models/../../../etc/passwd",               # out of the root by ..
    str(project_root() / "pyproject.toml"),     # the project, but not its models
])
def test_an_artifact_outside_the_roots_is_refused_without_looking_at_it(
    tmp_path: Path, artifact: str
) -> None:
    cand = {"name": "v2", "runtime": "onnx", "artifact": artifact}
    c, port = controller(tmp_path)
    with pytest.raises(ConfigError, match=r"candidates\[0\]\.artifact=.* is outside the artifact"
                                          " roots") as e:
        c.start(spec_doc(tmp_path / "r.db", candidates=[cand]))
    assert "exist" not in str(e.value) and not port.apps and not port.routers.get(MODEL)


def test_a_symbolic_link_out_of_a_root_is_followed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "v2.onnx").symlink_to("/etc/hostname")
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, str(root))
    c, port = controller(tmp_path)
    with pytest.raises(ConfigError, match="outside the artifact roots"):
        c.start(spec_doc(tmp_path / "r.db", candidates=[
            {"name": "v2", "runtime": "onnx", "artifact": str(root / "v2.onnx")}]))
    assert not port.apps


def test_an_extra_root_opens_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, os.pathsep.join(["/nonexistent", str(root)]))
    c, _ = controller(tmp_path)
    c.start(spec_doc(tmp_path / "r.db", candidates=[
        {"name": "v2", "runtime": "onnx", "artifact": str(root / "v2.onnx")}]))
    assert c.core is not None


def test_a_webhook_to_a_host_not_allowed_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOSTS_ENV, "hooks.example.com")
    c, port = controller(tmp_path)
    bad = [{"kind": "log"}, {"kind": "webhook", "url": "http://169.254.169.254/latest"}]
    with pytest.raises(ConfigError, match=rf"notifiers\[1\]: webhook host '169.254.169.254' is "
                                          rf"not in {HOSTS_ENV}"):
        c.start(spec_doc(tmp_path / "r.db", notifiers=bad))
    with pytest.raises(ConfigError, match=r"notifiers\[0\]: url_env: HOOK is not set"):
        c.start(spec_doc(tmp_path / "r.db", notifiers=[{"kind": "webhook", "url_env": "HOOK"}]))
    assert not port.apps and c.core is None
    c.start(spec_doc(tmp_path / "r.db", notifiers=[
        {"kind": "webhook", "url": "https://hooks.example.com/services/T0KEN"}]))
    assert c.status()["notifiers"] == [{"kind": "webhook", "url": "https://hooks.example.com/..."}]


def start_with(tmp_path: Path, artifact: str) -> tuple[RolloutController, FakeServePort]:
    c, port = controller(tmp_path)
    c.start(spec_doc(tmp_path / "r.db", candidates=[
        {"name": "v2", "runtime": "onnx", "artifact": artifact}]))
    return c, port


def test_a_file_uri_is_held_to_the_root_directories(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, f"file://{root}")
    for uri in ("file:///etc/passwd", f"file://{root}/../r.db", f"file://{root}/%2E%2E/r.db"):
        with pytest.raises(ConfigError, match=r"candidates\[0\]\.artifact='file://.*' is outside "
                                              "the artifact roots"):
            start_with(tmp_path, uri)
    with pytest.raises(ConfigError, match=r"candidates\[0\]\.artifact='file://h/x': a file:// "
                                          "URI names this machine"):
        start_with(tmp_path, "file://h/x")
    c, _ = start_with(tmp_path, f"file://localhost{root}/v2.onnx")
    assert c.core is not None


def test_an_object_store_uri_needs_a_uri_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.delenv(ARTIFACT_ROOTS_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"candidates\[0\]\.artifact='s3://ml/models/v2.onnx' is "
                                          r"outside the artifact roots; list its bucket and "
                                          rf"prefix \(s3://bucket/prefix\) in {ARTIFACT_ROOTS_ENV}"
                       ) as e:
        start_with(tmp_path, "s3://ml/models/v2.onnx")
    assert "exist" not in str(e.value)


@pytest.mark.parametrize(("artifact", "admitted"), [
    ("s3://ml/models/v2.onnx", True),
    ("S3://ml/models/sub/v2.onnx", True),          # the scheme in any case
    ("gcs://ml-eu/models/v2.onnx", True),          # gcs:// is gs://
    ("gs://ml-eu/models/v2.onnx", True),
    ("s3://ml/models-old/v2.onnx", False),         # a prefix is matched segment by segment
    ("s3://ml/v2.onnx", False),
    ("s3://mlx/models/v2.onnx", False),            # another bucket
    ("gs://ml/models/v2.onnx", False),             # another store
    ("s3://other/v2.onnx", True),                  # a whole bucket
])
def test_an_object_store_uri_must_start_with_a_listed_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifact: str, admitted: bool
) -> None:
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, "/nonexistent:s3://ml/models/,gs://ml-eu/models:"
                                           "s3://other")
    if admitted:
        c, _ = start_with(tmp_path, artifact)
        assert c.core is not None
    else:
        with pytest.raises(ConfigError, match="is outside the artifact roots"):
            start_with(tmp_path, artifact)


@pytest.mark.parametrize(("artifact", "why"), [
    ("http://example.com/v2.onnx", r"unsupported scheme 'http'; supported: a path, or file://, "
                                   "s3://, gs://, gcs://"),
    ("simplecache::s3://ml/models/v2.onnx", "unsupported scheme 'simplecache::s3'"),
    ("s3://ml/models/../secrets/v2.onnx", "the key may not have '.', '..' or empty segments"),
    ("s3://ml", "give s3://bucket/key"),
])
def test_a_uri_of_another_scheme_or_malformed_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifact: str, why: str
) -> None:
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, "s3://ml")
    with pytest.raises(ConfigError, match=rf"candidates\[0\]\.artifact={artifact!r}: {why}"):
        start_with(tmp_path, artifact)


@pytest.mark.parametrize(("value", "entries"), [
    ("", []),
    ("/a:/b", ["/a", "/b"]),
    ("/a,/b", ["/a", "/b"]),
    ("s3://ml/models", ["s3://ml/models"]),
    ("/srv/models:s3://ml/models,gs://ml-eu/models", ["/srv/models", "s3://ml/models",
                                                      "gs://ml-eu/models"]),
    (" s3://a :: file:///srv/m ,", ["s3://a", "file:///srv/m"]),
    ("s3:/x", ["s3", "/x"]),  # no "//": not a URI
])
def test_the_roots_variable_splits_on_pathsep_and_commas_keeping_uris_whole(
    value: str, entries: list[str]
) -> None:
    assert split_roots(value) == entries


def test_a_root_of_an_unsupported_scheme_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=rf"{ARTIFACT_ROOTS_ENV} entry 'ftp://h/m' is neither"):
        artifact_roots({ARTIFACT_ROOTS_ENV: "/srv:ftp://h/m"})
    assert artifact_roots({ARTIFACT_ROOTS_ENV: "s3://ml/m/,gcs://g"}).uris == ("s3://ml/m/",
                                                                               "gs://g/")


def test_a_version_without_an_artifact_has_nothing_to_check(tmp_path: Path) -> None:
    c, _ = controller(tmp_path)
    c.start(spec_doc(tmp_path / "r.db", candidates=[
        {"name": "v2", "app": {"import_path": "tests.unit.controller.helpers:app"}}]))
    assert c.core is not None
