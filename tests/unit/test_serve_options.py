"""A version's Serve deployment options, named as Serve names them and checked by Serve's own
schema; and the three ways a version is served (a runtime, a custom runtime, a user's app)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rayrollout.spec import VersionSpec, format_validation_error
from rayrollout.spec.deployment import NOT_TAKEN, SERVE_OPTIONS, serve_schema_fields

ONNX = {"name": "v2", "runtime": "onnx", "artifact": "models/artifacts/v2.onnx"}


def error(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        VersionSpec.model_validate(doc)
    return format_validation_error(e.value)


def test_every_option_of_serve_s_schema_is_taken_or_said_why_not() -> None:
    """If Ray adds a deployment option, this fails until the version takes it (or says why
    it does not): the options are Serve's, not a copy that drifts."""
    assert serve_schema_fields() == set(SERVE_OPTIONS) | set(NOT_TAKEN)
    assert set(SERVE_OPTIONS) <= set(VersionSpec.model_fields)


def test_serve_options_pass_through_as_serve_takes_them() -> None:
    v = VersionSpec.model_validate({
        **ONNX, "autoscaling_config": {"min_replicas": 1, "max_replicas": 4,
                                       "target_ongoing_requests": 2, "upscale_delay_s": 1},
        "max_ongoing_requests": 16, "health_check_period_s": 2.0,
        "graceful_shutdown_timeout_s": 5.0,
        "ray_actor_options": {"num_cpus": 0, "resources": {"model_node": 0.01},
                              "runtime_env": {"env_vars": {"X": "1"}}}})
    opts = v.serve_options()
    assert opts["autoscaling_config"]["max_replicas"] == 4 and "num_replicas" not in opts
    assert opts["ray_actor_options"]["resources"] == {"model_node": 0.01}
    assert v.autoscaling and v.replicas is None
    # a floor for promotion raises min_replicas within max_replicas
    assert v.serve_options(3)["autoscaling_config"]["min_replicas"] == 3
    assert v.serve_options(9)["autoscaling_config"]["min_replicas"] == 4
    fixed = VersionSpec.model_validate({**ONNX, "num_replicas": 3})
    assert fixed.replicas == 3 and fixed.serve_options(1)["num_replicas"] == 1
    assert VersionSpec.model_validate(ONNX).serve_options()["num_replicas"] == 1


@pytest.mark.parametrize(("doc", "where"), [
    ({"num_replicas": 2, "autoscaling_config": {"min_replicas": 1}}, "num_replicas:"),
    ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, "autoscaling_config:"),
    ({"autoscaling_config": {"min_replicas": 1, "max_replica": 2}},
     "autoscaling_config.max_replica:"),
    ({"autoscaling_config": {"target_ongoing_requests": -1}},
     "autoscaling_config.target_ongoing_requests:"),
    ({"ray_actor_options": {"num_cpus": -1}}, "ray_actor_options.num_cpus:"),
    ({"ray_actor_options": {"num_cpu": 1}}, "ray_actor_options.num_cpu:"),
    ({"health_check_timeout_s": 0}, "health_check_timeout_s:"),
    ({"max_queued_requests": 0}, "max_queued_requests:"),
    ({"placement_group_strategy": "SCATTER"}, "placement_group_strategy:"),
])
def test_a_wrong_serve_option_fails_naming_it(doc: dict[str, Any], where: str) -> None:
    msg = error({**ONNX, **doc})
    assert msg.startswith(where), msg


@pytest.mark.parametrize(("doc", "where"), [
    ({"name": "v", "artifact": "x.onnx"}, "runtime:"),
    ({"name": "v", "runtime": "onnx"}, "artifact:"),
    ({"name": "v", "runtime": "python"}, "runtime_class:"),
    ({"name": "v", "runtime": "onnx", "artifact": "x", "runtime_class": "a:B"},
     "runtime_class:"),
    ({"name": "v", "app": {"import_path": "a:b"}, "runtime": "onnx"}, "runtime:"),
    ({"name": "v", "app": {"import_path": "not a path"}}, "app.import_path:"),
    ({"name": "v", "app": {"import_path": "a:b", "prediction": {"pointer": "/x"}}},
     "app.prediction:"),
    ({"name": "v", "app": {"import_path": "a:b", "interface": "http",
                           "prediction": {"pointer": "/x", "function": "m:f"}}},
     "app.prediction:"),
    ({"name": "v", "runtime": "onnx", "artifact": "x", "sha256": "abc"}, "sha256:"),
])
def test_what_serves_a_version_is_one_thing_named_right(doc: dict[str, Any],
                                                       where: str) -> None:
    msg = error(doc)
    assert where.split(":")[0] in msg, msg


def test_the_three_ways_validate() -> None:
    assert VersionSpec.model_validate(
        {"name": "v", "runtime": "python", "runtime_class": "examples.sklearn_runtime:X",
         "artifact": "s3://bucket/m.joblib", "sha256": "a" * 64,
         "runtime_args": {"k": 1}}).interface == "tensor"
    app = VersionSpec.model_validate({"name": "v", "app": {"import_path": "pkg.mod:app",
                                                           "args": {"a": 1}}})
    assert app.interface == "tensor" and app.runtime is None
    http = VersionSpec.model_validate({"name": "v", "app": {
        "import_path": "pkg.mod:app", "interface": "http",
        "prediction": {"pointer": "/label", "labels": ["a", "b"]}}})
    assert http.interface == "http"
