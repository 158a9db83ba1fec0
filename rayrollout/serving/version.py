"""A model version as its own Serve application (no route prefix, or an internal one).

``ModelVersion`` serves a version given by a runtime (``onnx``, ``torchscript``, or the user's
``python`` class): requests arrive from the router as ``dict[str, np.ndarray]``, batched by
``BatchedPredictor``. ``version_app`` builds the application of any version, the user's own
Serve application (``app:``) included, with the version's Serve deployment options.

Guarantees:

* ``flags`` travel with the version: the router returns them with every response it serves.
* A version with active ``faults`` misbehaves exactly as they say (``FaultInjector``: a slow
  constructor, delays, errors, hangs, a crash of the replica, wrong rows); one without takes a
  single ``is None`` branch per request and is otherwise unchanged.
* The artifact is fetched by each replica (``fetch_artifact``: a path, ``file://``, ``s3://``,
  ``gs://``, into a per-node cache) and its ``sha256``, when given, checked before it is loaded:
  a mismatch fails the replica's start, so the deploy fails before any traffic.
* Every deployment of a version carries a version string derived from its config without its
  replica count, so scaling it (``replicas``) is a light update: Serve adds or removes
  replicas and never restarts the running ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from rayrollout.imports import import_object
from rayrollout.names import VERSION_DEPLOYMENT, version_route_prefix
from rayrollout.runtime import load_runtime
from rayrollout.runtime.artifacts import fetch_artifact
from rayrollout.runtime.faults import FaultInjector
from rayrollout.serving.batching import BatchedPredictor, ItemFailed
from rayrollout.spec import VersionConfig

log = logging.getLogger("rayrollout.version")

# The router records every request itself (aggregates, events, Prometheus); Serve's per-request
# access log would only repeat it, at about 5% of the router's CPU.
NO_ACCESS_LOG = {"enable_access_log": False}
# Fields that only size a version: changing them must not restart its replicas.
_SCALING = ("num_replicas", "autoscaling_config")


class ModelVersion(BatchedPredictor):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = VersionConfig.model_validate(config)
        cfg = self.config
        assert cfg.runtime is not None, "an app version is not served by ModelVersion"
        # a relative path resolves here as on the driver (serve run builds this from a config)
        where = cfg.resolved().artifact
        path = fetch_artifact(where, cfg.sha256) if where is not None else None
        options: dict[str, Any]
        if cfg.runtime == "python":
            options = {"runtime_class": cfg.runtime_class, **cfg.runtime_args}
        else:
            threads = "num_threads" if cfg.runtime == "torchscript" else "intra_op_threads"
            options = {threads: cfg.intra_op_threads}
        self.runtime = load_runtime(cfg.runtime, path, cfg.device, **options)
        self._init_batching(self.runtime.predict, cfg.batching.max_batch_size,
                            cfg.batching.batch_wait_timeout_s,
                            cfg.inline_rows if cfg.device == "cpu" else 0, cfg.name)
        self._signature = {**self.runtime.signature.to_dict(), "task": cfg.task}
        self._faults: FaultInjector | None = None
        if cfg.faults is not None and cfg.faults.active:
            log.warning("version %s injects faults on purpose: %s", cfg.name,
                        cfg.faults.model_dump(exclude_defaults=True))
            self._faults = FaultInjector(cfg.faults, cfg.task)
            self._faults.slow_start()  # the replica is not ready until it returns
            self._faults.crash_timer()

    def signature(self) -> dict[str, Any]:
        return self._signature

    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model,
            "version": c.name,
            "runtime": c.runtime,
            "device": c.device,
            "artifact": c.artifact,
            "flags": dict(c.flags),
            "signature": self._signature,
        }

    async def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._faults is not None:
            return await self._faults.run(self._predict, inputs)
        return await self._predict(inputs)

    async def predict_many(self, items: list[dict[str, np.ndarray]]
                           ) -> list[dict[str, np.ndarray] | ItemFailed]:
        """A group of requests the router sent as one call: each its outputs or its error."""
        if self._faults is not None:  # each request meets the faults as it would alone
            done = await asyncio.gather(*(self.predict(x) for x in items),
                                        return_exceptions=True)
            return [ItemFailed.of(r) if isinstance(r, BaseException) else r for r in done]
        return await self._predict_many(items)


def code_version(config: VersionConfig) -> str:
    """The Serve deployment version of ``config``: its digest without the fields that only
    size it, so a scale is a light update and any other change a new version."""
    doc = config.model_dump(mode="json", exclude=set(_SCALING))
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def version_app(config: VersionConfig, replicas: int | None = None) -> Application:
    """The application of one version, with its Serve options; ``replicas`` sizes it (a fixed
    count, or the floor of an autoscaling one: ``VersionSpec.serve_options``)."""
    opts = {**config.serve_options(replicas), "logging_config": NO_ACCESS_LOG}
    version = code_version(config)
    if config.app is None:
        dep = serve.deployment(name=VERSION_DEPLOYMENT, **opts)(ModelVersion)
        dep = dep.options(version=version, _internal=True)
        return dep.bind(config.model_dump(mode="json"))
    return user_app(config, opts, version)


def user_app(config: VersionConfig, options: dict[str, Any], version: str) -> Application:
    """The user's Serve application (``app.import_path`` with ``app.args``, built as Serve
    builds a config's application), its ingress deployment given the version's options and
    every deployment of it the same version string."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    assert config.app is not None
    target = import_object(config.app.import_path)
    app = call_user_app_builder_with_args_if_necessary(target, dict(config.app.args))
    if not isinstance(app, Application):
        raise TypeError(f"app.import_path {config.app.import_path!r} did not give a Serve "
                        f"Application (got {type(app).__name__})")
    return _versioned(app, version, options)


def _versioned(app: Application, version: str, options: dict[str, Any] | None) -> Application:
    dep: Deployment = app._bound_deployment
    args = tuple(_versioned_arg(a, version) for a in dep.init_args)
    init_kwargs: dict[str, Any] = dict(dep.init_kwargs)  # Serve annotates it as a tuple
    kwargs = {k: _versioned_arg(v, version) for k, v in init_kwargs.items()}
    new = dep.options(**(options or {}), version=version, _internal=True,
                      _init_args=args, _init_kwargs=kwargs)
    return Application(new)


def _versioned_arg(arg: Any, version: str) -> Any:
    """Deployments bound into another's arguments (model composition) get the version too."""
    if isinstance(arg, Application):
        return _versioned(arg, version, None)
    if isinstance(arg, list | tuple):
        return type(arg)(_versioned_arg(a, version) for a in arg)
    if isinstance(arg, dict):
        return {k: _versioned_arg(v, version) for k, v in arg.items()}
    return arg


def route_prefix(config: VersionConfig) -> str | None:
    """Where a version app listens on Serve's proxy: nowhere (``None``; the router calls it by
    handle) unless the router passes HTTP requests through to it."""
    return version_route_prefix(config.model, config.name) if config.interface == "http" else None
