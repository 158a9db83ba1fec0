"""The in-memory ``FakeServePort`` keeps the ``ServePort`` contract (the real one is checked by
the same function in ``tests/integration/test_port_contract.py``)."""

from __future__ import annotations

from rayrollout.controller.fake import FakeServePort
from rayrollout.spec import VersionConfig
from tests.port_contract import check_serve_port
from tests.unit.controller.test_controller import Clock


def test_the_fake_keeps_the_contract() -> None:
    version = VersionConfig.model_validate(
        {"model": "fake1", "name": "v1", "runtime": "onnx", "artifact": "models/v1.onnx"})
    check_serve_port(FakeServePort(Clock()), version, "/fake1")


def test_the_fake_can_hold_a_deploy_on_its_way() -> None:
    port = FakeServePort(Clock(), auto_ready=False)
    version = VersionConfig.model_validate(
        {"model": "fake2", "name": "v1", "runtime": "onnx", "artifact": "models/v1.onnx"})
    port.deploy_version(version)
    assert port.applications()["fake2-v1"].status == "DEPLOYING"
    port.deploy_version(version)  # still on its way: not deployed twice
    assert port.applications()["fake2-v1"].status == "DEPLOYING"
    port.set_running("fake2", "v1")
    assert port.applications()["fake2-v1"].status == "RUNNING"
