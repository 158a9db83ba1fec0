"""Every file in configs/ validates; bad specs fail naming the field and the value."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from rayrollout.imports import import_object
from rayrollout.ingress.config import IngressConfig
from rayrollout.names import INGRESS_APP
from rayrollout.serving import app as builders
from rayrollout.spec import RolloutSpec, RouterConfig, VersionConfig, format_validation_error

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def builder_model(import_path: str) -> Any:
    module, name = import_path.split(":")
    assert module == "rayrollout.serving.app"
    fn = getattr(builders, name)
    (param,) = inspect.signature(fn).parameters.values()
    return param.annotation


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_validates(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    if "applications" not in doc:  # a rollout spec, validated by its own test
        pytest.skip("not a Serve config")
    ServeDeploySchema.model_validate(doc)
    routers = []
    for app in doc["applications"]:
        model = builder_model(app["import_path"])
        cfg = model.model_validate(app["args"])
        if isinstance(cfg, VersionConfig):
            assert app["name"] == cfg.app_name and app["route_prefix"] is None
            assert cfg.artifact_path().exists(), cfg.artifact
        elif isinstance(cfg, RolloutSpec | IngressConfig):  # the controllers deploy versions
            assert app["name"] == INGRESS_APP
            specs = cfg.rollouts if isinstance(cfg, IngressConfig) else [cfg]
            routers += cfg.models if isinstance(cfg, IngressConfig) else []
            for v in [v for s in specs for v in [s.stable, *s.candidates]]:
                vc = v.for_model(next(s.model for s in specs if v in [s.stable, *s.candidates]))
                if vc.artifact is not None and not vc.artifact_uri:
                    assert vc.artifact_path().exists(), v.artifact
                if v.app is not None:  # the user's application: its builder's artifact
                    art = v.app.args.get("artifact")
                    assert isinstance(art, str) and (ROOT / art).exists(), v.app.args
                if v.runtime_class is not None:
                    assert import_object(v.runtime_class) is not None
            if not routers:
                return
        else:
            assert app["name"] == INGRESS_APP
            routers.append(cfg)
    assert routers, "a config needs a router"
    names = {a["name"] for a in doc["applications"]}
    for r in routers:
        assert all(f"{r.model}-{v}" in names for v in r.live_versions())


def test_configs_exist() -> None:
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize(
    "args, field, value",
    [
        ({"model": "m", "weights": {"a": 90, "b": 20}}, "weights", "sums to 110"),
        ({"model": "m", "weights": {"a": 100}, "shadw": {}}, "shadw", "Extra inputs"),
        ({"model": "m", "weights": {"a": 100, "b": -5}}, "weights", "weights['b']=-5"),
        ({"model": "Bad Name", "weights": {"a": 100}}, "model", "'Bad Name'"),
        (
            {"model": "m", "weights": {"a": 50, "b": 50}, "shadow": {"version": "b"}},
            "<root>",
            "shadow.version='b' also has weight 50",
        ),
        ({"model": "m", "weights": {"a": 100}, "shadow": {"version": "s", "fraction": 1.5}},
         "shadow.fraction", "1.5"),
    ],
)
def test_bad_router_config_names_field_and_value(args: dict, field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        RouterConfig.model_validate(args)
    text = format_validation_error(info.value)
    assert field in text and value in text, text


def test_unknown_runtime_kind_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        VersionConfig.model_validate(
            {"model": "m", "name": "v", "runtime": "tensorflow", "artifact": "x"}
        )
    text = format_validation_error(info.value)
    assert "runtime" in text and "tensorflow" in text


def test_configs_are_frozen() -> None:
    cfg = RouterConfig.model_validate({"model": "m", "weights": {"a": 100}})
    with pytest.raises(ValidationError):
        cfg.model = "other"  # type: ignore[misc]
