"""The KubeRay manifests of ``deploy/kuberay/``: each is a RayService whose ``serveConfigV2``
runs a rollout on the one ingress app and passes ``rayrollout validate``, whose pods get the
store URL and the admin tokens from Secrets (never inlined), and whose SQLite variant keeps the
store on a volume of the head pod. Starts nothing: the YAML is parsed, the embedded Serve
config is checked by ``rayrollout validate`` (the command's entry point, in process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rayrollout import cli
from rayrollout.spec import RouterConfig, load_spec
from tests.conftest import ROOT

KUBERAY = ROOT / "deploy" / "kuberay"
MANIFESTS = ("rayservice.yaml", "rayservice-sqlite.yaml")
INGRESS_APP = "rayrollout"  # names.INGRESS_APP: the one application every model is served by
BUILDER = "rayrollout.serving.app:build_rollout"
# Env vars that carry a secret: the store's URL (with its password) or the password alone.
SECRET_ENV = {"RAYROLLOUT_STORE_URL", "PGPASSWORD"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d]


def rayservice(name: str) -> dict[str, Any]:
    found = [d for d in docs(name) if d.get("kind") == "RayService"]
    assert len(found) == 1, f"{name}: expected one RayService, found {len(found)}"
    return found[0]


def serve_config(rs: dict[str, Any]) -> dict[str, Any]:
    text = rs["spec"]["serveConfigV2"]
    assert isinstance(text, str), "serveConfigV2 is a YAML string in KubeRay's schema"
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def rollout_args(rs: dict[str, Any]) -> dict[str, Any]:
    (app,) = serve_config(rs)["applications"]
    return dict(app["args"])


def pods(rs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group, pod spec) of the head and of every worker group."""
    cluster = rs["spec"]["rayClusterConfig"]
    out = [("head", cluster["headGroupSpec"]["template"]["spec"])]
    out += [(g["groupName"], g["template"]["spec"]) for g in cluster["workerGroupSpecs"]]
    return out


def containers(rs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(group, c) for group, pod in pods(rs) for c in pod["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def example_secrets() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d["stringData"])
            for d in docs("secret.example.yaml") if d["kind"] == "Secret"}


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_a_rayservice_with_head_and_workers(name: str) -> None:
    rs = rayservice(name)
    assert rs["apiVersion"] == "ray.io/v1"
    assert rs["metadata"]["name"] and rs["metadata"]["namespace"]
    cluster = rs["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"]
    assert "rayStartParams" in cluster["headGroupSpec"]
    groups = cluster["workerGroupSpecs"]
    assert groups and all(g["groupName"] and g["replicas"] >= 1 for g in groups)
    assert all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)
    for group, c in containers(rs):
        assert c["image"], group
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (group, kind)


@pytest.mark.parametrize("name", MANIFESTS)
def test_serve_config_runs_a_rollout_on_the_one_ingress(name: str) -> None:
    doc = serve_config(rayservice(name))
    (app,) = doc["applications"]
    assert app["name"] == INGRESS_APP
    assert app["route_prefix"] == "/"
    assert app["import_path"] == BUILDER
    assert doc["http_options"]["port"] == 8000  # the port KubeRay's serve Service targets
    spec = load_spec(rollout_args(rayservice(name)))
    assert spec.candidates and spec.strategy.steps


@pytest.mark.parametrize("name", MANIFESTS)
def test_embedded_serve_config_passes_rayrollout_validate(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "serve.yaml"
    f.write_text(rayservice(name)["spec"]["serveConfigV2"])
    assert cli.main(["validate", str(f)]) == 0, capsys.readouterr().err
    assert "ok (rollout of model 'digits'" in capsys.readouterr().out


def test_validate_refuses_the_serve_config_with_a_token_inlined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check above can fail: the same config with a token in the router's args is refused."""
    doc = serve_config(rayservice("rayservice.yaml"))
    doc["applications"][0]["args"]["router"]["admin_tokens"] = "ops:s3cret"
    f = tmp_path / "serve.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert cli.main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "admin_tokens" in err and "s3cret" not in err


@pytest.mark.parametrize("name", MANIFESTS)
def test_secrets_are_referenced_never_inlined(name: str) -> None:
    rs = rayservice(name)
    args = rollout_args(rs)
    tokens_env = RouterConfig.model_validate(
        {"model": "m", "weights": {"v": 100.0}, **args.get("router", {})}).admin_tokens_env
    secrets = example_secrets()
    for group, c in containers(rs):
        env = env_of(c)
        # Router replicas may land on any node: every pod reads the tokens.
        assert tokens_env in env, f"{group}: no {tokens_env}"
        for var in {tokens_env} | (SECRET_ENV & set(env)):
            e = env[var]
            assert "value" not in e, f"{group}: {var} is inlined"
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]], f"{group}: {var} -> {ref}"
    # No secret value anywhere in the manifest, nor a password in a store URL of the spec.
    text = (KUBERAY / name).read_text()
    for values in secrets.values():
        for value in values.values():
            for line in value.splitlines():
                assert line.strip() not in text
    assert "CHANGE-ME" not in text
    assert "admin_tokens" not in args.get("router", {})
    url = args.get("store_url")
    if url is not None:
        assert urlsplit(url).password is None, "a password in store_url"


def test_postgres_variant_gives_every_pod_the_store_url() -> None:
    """The controller may be restarted on any node: each pod can reach the same store."""
    rs = rayservice("rayservice.yaml")
    args = rollout_args(rs)
    assert "store_path" not in args  # a node-local file would not follow the controller
    for group, c in containers(rs):
        env = env_of(c)
        assert "RAYROLLOUT_STORE_URL" in env or "PGPASSWORD" in env, group
    assert {v for _, c in containers(rs) for v in env_of(c)} & SECRET_ENV
    store = example_secrets()["rayrollout-store"]["url"]
    assert store.startswith(("postgresql://", "postgres://"))


def test_sqlite_variant_keeps_the_store_on_a_head_volume() -> None:
    all_docs = docs("rayservice-sqlite.yaml")
    rs = rayservice("rayservice-sqlite.yaml")
    store = Path(rollout_args(rs)["store_path"])
    assert store.is_absolute()
    (head,) = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
    mounts = [m for m in head["volumeMounts"] if store.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"no head volume holds {store}"
    head_pod = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (vol,) = [v for v in head_pod["volumes"] if v["name"] == mounts[0]["name"]]
    claim = vol["persistentVolumeClaim"]["claimName"]
    pvcs = [d for d in all_docs if d["kind"] == "PersistentVolumeClaim"]
    assert [p["metadata"]["name"] for p in pvcs] == [claim]
    # Only the head mounts it (the controller is pinned there), and no pod is pointed at a
    # database instead.
    for group, c in containers(rs):
        if group != "head":
            assert not c.get("volumeMounts"), group
        assert not SECRET_ENV & set(env_of(c)), group
    # A second RayCluster (KubeRay's default upgrade) could not mount the same volume.
    assert rs["spec"]["upgradeStrategy"]["type"] == "None"
