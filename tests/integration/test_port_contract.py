"""``RayServePort`` on a real local Ray Serve keeps the same ``ServePort`` contract as the fake
(``tests/port_contract.py``)."""

from __future__ import annotations

import uuid

import pytest

from rayrollout.spec import VersionConfig
from tests.conftest import ARTIFACTS, RayServe
from tests.port_contract import check_serve_port

pytestmark = pytest.mark.integration


def test_the_ray_port_keeps_the_contract(ray_serve: RayServe) -> None:
    from ray import serve

    from rayrollout.serving.port import RayServePort

    model = f"p{uuid.uuid4().hex[:8]}"
    version = VersionConfig.model_validate(
        {"model": model, "name": "v1", "runtime": "onnx", "artifact": str(ARTIFACTS / "v1.onnx"),
         "ray_actor_options": {"num_cpus": 0}})
    try:
        check_serve_port(RayServePort(), version, f"/{model}", timeout_s=90)
    finally:
        serve.delete(f"{model}-v1", _blocking=False)
        RayServePort().remove_router(model)
