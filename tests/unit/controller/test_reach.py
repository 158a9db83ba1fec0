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
from rayrollout.spec.reach import ARTIFACT_ROOTS_ENV
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
