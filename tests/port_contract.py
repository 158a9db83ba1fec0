"""The ``ServePort`` contract: what every implementation must do, checked on the in-memory fake
(unit tests) and on a real Ray Serve (integration tests) by the same function."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rayrollout.controller.port import RUNNING, ServePort
from rayrollout.errors import NotFound, UnavailableError
from rayrollout.names import INGRESS_APP, router_app_name, version_app_name
from rayrollout.spec import RouterConfig, VersionConfig


def eventually(ok: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def check_serve_port(port: ServePort, version: VersionConfig, route_prefix: str,
                     timeout_s: float = 0.0) -> None:
    """``version`` is a deployable version of a model that has no apps yet."""
    model = version.model
    app = version_app_name(model, version.name)
    with pytest.raises(NotFound):
        port.controller(f"{model}-nobody", create=False)
    with pytest.raises(UnavailableError):  # no router to reach yet
        port.collect(model)
    port.delete_app(f"{model}-absent")  # deleting what is not there does nothing

    port.deploy_version(version)  # returns at once, the app is on its way
    assert app in port.applications()
    eventually(lambda: port.applications()[app].status == RUNNING, timeout_s)
    port.deploy_version(version)  # again: nothing changes, it keeps running
    assert port.applications()[app].status == RUNNING

    router = RouterConfig.model_validate({
        "model": model, "weights": {version.name: 100.0},
        "deployment": {"num_replicas": 2, "max_ongoing_requests": 100},
    })
    port.deploy_router(router, route_prefix)
    eventually(lambda: port.applications().get(INGRESS_APP) is not None
               and port.applications()[INGRESS_APP].status == RUNNING, timeout_s)
    assert router_app_name(model) == INGRESS_APP  # every model is served by the one ingress
    tables = port.router_tables(model)
    assert [t["epoch"] for t in tables] == [0, 0]  # every replica, its config's table
    newer = {**tables[0], "epoch": 3}
    assert port.push_table(model, newer) == [3, 3]
    assert port.push_table(model, {**tables[0], "epoch": 2}) == [3, 3]  # older: ignored
    parts = port.collect(model)
    assert len(parts) == 2 and len({p["replica"] for p in parts}) == 2
    assert all(p["epoch"] == 3 and p["events"] == [] for p in parts)
    replicas = {p["replica"] for p in parts}

    # A second model joins the same ingress: the first keeps its table and its replicas.
    other = RouterConfig.model_validate({"model": f"{model}-b", "weights": {"x1": 100.0}})
    port.deploy_router(other, "/")
    assert [t["epoch"] for t in port.router_tables(other.model)] == [0, 0]
    assert [t["epoch"] for t in port.router_tables(model)] == [3, 3]
    assert {p["replica"] for p in port.collect(model)} == replicas
    port.deploy_router(router, route_prefix)  # served already: nothing changes
    assert [t["epoch"] for t in port.router_tables(model)] == [3, 3]
    port.remove_router(other.model)
    with pytest.raises(UnavailableError):  # no replica serves it any more
        port.collect(other.model)
    assert {p["replica"] for p in port.collect(model)} == replicas
    port.remove_router(model)
    port.remove_router(model)  # removing what is not served does nothing

    port.delete_app(app)
    eventually(lambda: app not in port.applications(), timeout_s)
