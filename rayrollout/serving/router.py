"""``Router``: the HTTP ingress of one model. Splits, pins, mirrors, validates and records.

The request path never waits on the controller: it routes with the last ``RoutingTable`` it was
given. ``set_routes`` replaces the table by one attribute assignment, and each request reads
``self.table`` exactly once, so it is routed, served and recorded under a single table.

Control-plane methods (called on every replica with ``DeploymentHandle.broadcast``):
``set_routes(table)``, ``get_routes()``, ``collect()``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import threading
import time
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rayrollout import protocol
from rayrollout.aggregates import Recorder
from rayrollout.compare import compare_outputs
from rayrollout.config import RouterConfig, version_app_name
from rayrollout.errors import (
    MethodNotAllowed,
    ModelError,
    ModelTimeout,
    NotFound,
    PayloadTooLarge,
    RequestError,
    RolloutError,
    UnavailableError,
    error_body,
    http_status,
)
from rayrollout.events import Outcome, RequestEvent, ShadowEvent
from rayrollout.feedback import FeedbackJoin, parse_feedback
from rayrollout.routing import RoutingTable
from rayrollout.runtime import ModelSignature, TensorSpec, summarize_prediction
from rayrollout.serving.admin import AdminAPI
from rayrollout.serving.exporter import MetricsExporter

log = logging.getLogger("rayrollout.router")

SIGNATURE_TIMEOUT_S = 30.0
READY_PROBE_TIMEOUT_S = 5.0
TRANSPORT_HEADROOM_BYTES = 64 * 1024  # pickle framing and Serve's request metadata


def handle_transport_limit() -> int | None:
    """Bytes of tensor data one handle call to a version can carry in this process's Serve mode:
    with the gRPC handle transport (``RAY_SERVE_USE_GRPC_BY_DEFAULT``, on with
    ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``) a message is capped at
    ``RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH`` (4 MiB by default); Ray's actor calls have no
    such cap (``None``)."""
    from ray.serve._private import constants

    if not getattr(constants, "RAY_SERVE_USE_GRPC_BY_DEFAULT", False):
        return None
    cap = int(getattr(constants, "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", 4 * 1024 * 1024))
    return max(cap - TRANSPORT_HEADROOM_BYTES, 0)


def table_from_config(cfg: RouterConfig) -> RoutingTable:
    sh = cfg.shadow
    return RoutingTable(
        model=cfg.model,
        epoch=0,
        weights=dict(cfg.weights),
        shadow=sh.version if sh else None,
        shadow_fraction=sh.fraction if sh else 0.0,
        shadow_max_in_flight=sh.max_in_flight if sh else 64,
        shadow_rtol=sh.rtol if sh else 0.05,
        flags=dict(cfg.flags),
    )


def _signature_from_dict(d: dict[str, Any]) -> ModelSignature:
    def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in items)

    return ModelSignature(specs(d["inputs"]), specs(d["outputs"]), d.get("task", "classification"))


class Router:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = RouterConfig.model_validate(config)
        self.model = self.cfg.model
        self.table = table_from_config(self.cfg)
        self._handles: dict[str, DeploymentHandle] = {}
        self._predict: dict[str, DeploymentHandle] = {}  # handle.predict, made once per version
        self._signatures: dict[str, ModelSignature] = {}
        self._sig_tasks: dict[str, asyncio.Task[ModelSignature]] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_in_flight = 0
        try:
            replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside a replica (unit use)
            replica = f"local-{os.getpid()}"
        self.replica = replica
        self.recorder = Recorder(replica, self.cfg.event_buffer)
        self._rng = random.Random(self.cfg.seed)
        self._rid_prefix = f"{replica[-6:]}-{os.getpid():x}-"
        self._rid_counter = itertools.count(1)
        self.feedback = FeedbackJoin(self.cfg.feedback_window)
        self._exporter = MetricsExporter(self.model, self.recorder, lambda: self.table)
        self.admin = AdminAPI(self.cfg)
        self._transport_limit = handle_transport_limit()
        if self.cfg.rollout is not None:  # serve run of a rollout config: start it
            threading.Thread(target=self.admin.start_rollout, daemon=True).start()
        else:  # a restarted replica must not serve its config's table until the next push
            threading.Thread(target=self._adopt_controller_table, daemon=True).start()

    # -- control plane ------------------------------------------------------------------------

    async def set_routes(self, table: dict[str, Any]) -> int:
        """Install ``table`` if its epoch is newer than the one in force; return the epoch now
        in force. Idempotent: pushing the same or an older table changes nothing."""
        new = RoutingTable.from_dict(table)
        if new.model != self.model:
            raise RolloutError(f"table for model {new.model!r} pushed to router of {self.model!r}")
        self._exporter.ensure_started()
        if new.epoch > self.table.epoch:
            self.table = new  # the one assignment that switches every later request
        return self.table.epoch

    def _adopt_controller_table(self) -> None:
        """If a controller runs this model's rollouts, take its current table (newer epoch)."""
        import ray

        from rayrollout.controller.actor import NAMESPACE, controller_name

        try:
            handle = ray.get_actor(controller_name(self.model), namespace=NAMESPACE)
            ref: Any = handle.table.remote()
            doc: dict[str, Any] | None = ray.get(ref, timeout=30)
        except Exception:  # no controller (plain serving) or not reachable: keep the config's
            return
        if doc:
            new = RoutingTable.from_dict(doc)
            if new.model == self.model and new.epoch > self.table.epoch:
                self.table = new  # one assignment, as in set_routes

    async def get_routes(self) -> dict[str, Any]:
        return self.table.to_dict()

    async def collect(self) -> dict[str, Any]:
        """Aggregates since the previous call and the drained per-request events."""
        return self.recorder.collect(self.table.epoch).to_dict()

    # -- helpers --------------------------------------------------------------------------------

    def _handle(self, version: str) -> DeploymentHandle:
        h = self._handles.get(version)
        if h is None:
            h = serve.get_deployment_handle("ModelVersion", version_app_name(self.model, version))
            self._handles[version] = h
        return h

    def _predict_handle(self, version: str) -> DeploymentHandle:
        # ``handle.predict`` builds a new handle on every attribute access: keep the one made.
        h = self._predict.get(version)
        if h is None:
            h = self._predict[version] = self._handle(version).predict
        return h

    async def _signature(self, version: str) -> ModelSignature:
        sig = self._signatures.get(version)
        if sig is not None:
            return sig
        task = self._sig_tasks.get(version)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(self._fetch_signature(version))
            self._sig_tasks[version] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), SIGNATURE_TIMEOUT_S)
        except TimeoutError:
            raise UnavailableError(f"version {version!r} is not ready") from None

    async def _fetch_signature(self, version: str) -> ModelSignature:
        d = await self._handle(version).signature.remote()
        sig = _signature_from_dict(d)
        self._signatures[version] = sig
        return sig

    # -- data plane -----------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        self._exporter.ensure_started()
        path = request.url.path
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        parts = [p for p in path.split("/") if p]
        try:
            return await self._dispatch(request, parts)
        except RolloutError as e:
            if isinstance(e, RequestError):
                self.recorder.reject("")
            return JSONResponse(error_body(e), status_code=http_status(e))

    async def _dispatch(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        n = len(parts)
        if n >= 1 and parts[0] == "v2":
            if n == 1:
                return self._get(method, self._server_metadata)
            if parts[1] == "health" and n == 3 and parts[2] in ("live", "ready"):
                if parts[2] == "live":
                    return self._get(method, lambda: {"live": True})
                return await self._ready_response(method, None)
            if parts[1] == "models" and n >= 3:
                self._check_model(parts[2])
                rest = parts[3:]
                version = None
                if len(rest) >= 2 and rest[0] == "versions":
                    version, rest = rest[1], rest[2:]
                if rest == ["infer"]:
                    if method != "POST":
                        raise MethodNotAllowed(f"{method} not allowed; use POST")
                    return await self._infer(request, version, v2=True)
                if rest == ["ready"]:
                    return await self._ready_response(method, version)
                if not rest:
                    return await self._metadata(method, version)
        elif n >= 1 and parts[0] == "rollout":
            return await self.admin.handle(request, parts[1:])
        elif n >= 2 and parts[0] == "v1" and parts[1] == "models":
            if n == 2:
                return self._get(method, self._list_models)
            self._check_model(parts[2])
            if parts[3:] == ["predict"]:
                if method != "POST":
                    raise MethodNotAllowed(f"{method} not allowed; use POST")
                return await self._infer(request, None, v2=False)
            if parts[3:] == ["feedback"]:
                if method != "POST":
                    raise MethodNotAllowed(f"{method} not allowed; use POST")
                return await self._feedback(request)
            if n == 3:
                return self._get(method, lambda: self._list_models()["models"][0])
        raise NotFound(f"no route for {request.method} {request.url.path}")

    def _get(self, method: str, body: Any) -> Response:
        if method != "GET":
            raise MethodNotAllowed(f"{method} not allowed; use GET")
        return JSONResponse(body())

    def _check_model(self, name: str) -> None:
        if name != self.model:
            raise NotFound(f"unknown model {name!r}; this router serves {self.model!r}")

    def _server_metadata(self) -> dict[str, Any]:
        from rayrollout import __version__

        return {"name": "rayrollout", "version": __version__, "extensions": ["binary_tensor_data"]}

    def _list_models(self) -> dict[str, Any]:
        t = self.table
        versions = [{"name": v, "weight": w, "shadow": False} for v, w in t.percent().items()]
        if t.shadow and t.shadow not in t.weights:
            versions.append({"name": t.shadow, "weight": 0.0, "shadow": True})
        for v in versions:
            v["shadow"] = v["name"] == t.shadow
            v["shadow_fraction"] = t.shadow_fraction if v["shadow"] else 0.0
        return {"models": [{"name": t.model, "epoch": t.epoch, "versions": versions}]}

    async def _metadata(self, method: str, version: str | None) -> Response:
        if method != "GET":
            raise MethodNotAllowed(f"{method} not allowed; use GET")
        t = self.table
        if version is not None and version not in t.live:
            raise NotFound(f"version {version!r} of model {self.model!r} is not live")
        live = [v for v, w in t.weights.items() if w > 0] + (
            [t.shadow] if t.shadow and t.weights.get(t.shadow, 0) == 0 else []
        )
        target = version or max(t.weights, key=lambda v: t.weights[v])
        sig = await self._signature(target)
        doc = protocol.model_metadata(self.model, [version] if version else live, sig)
        return JSONResponse(doc)

    async def _ready_response(self, method: str, version: str | None) -> Response:
        if method != "GET":
            raise MethodNotAllowed(f"{method} not allowed; use GET")
        t = self.table
        wanted = [version] if version else [v for v, w in t.weights.items() if w > 0]
        if version is not None and version not in t.live:
            raise NotFound(f"version {version!r} of model {self.model!r} is not live")
        try:  # a version is ready once it has described its inputs; wait briefly for that
            await asyncio.wait_for(
                asyncio.gather(*(self._signature(v) for v in wanted)), READY_PROBE_TIMEOUT_S
            )
            ready = True
        except (TimeoutError, RolloutError):
            ready = False
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def _infer(self, request: Request, pin: str | None, v2: bool) -> Response:
        arrived = time.time()
        table = self.table  # read once: this request lives under this table
        cfg = self.cfg
        headers = request.headers
        clen = headers.get("content-length")
        if clen is not None and clen.isdigit() and int(clen) > cfg.max_body_bytes:
            raise PayloadTooLarge(f"body of {clen} bytes is over the limit of {cfg.max_body_bytes}")
        body = await request.body()
        if len(body) > cfg.max_body_bytes:
            raise PayloadTooLarge(
                f"body of {len(body)} bytes is over the limit of {cfg.max_body_bytes}"
            )
        rng = self._rng
        choice = table.choose(
            rng.random(), key=headers.get(cfg.sticky_header), pin=pin or headers.get(cfg.pin_header)
        )
        version = choice.version
        try:
            sig = await self._signature(version)
            if v2:
                arrays, req_doc = protocol.decode_v2(body, headers, sig, cfg.max_batch_rows)
            else:
                arrays, req_doc = protocol.decode_v1(body, sig, cfg.max_batch_rows), {}
            protocol.check_transport_size(arrays, self._transport_limit)
        except RequestError as e:
            self.recorder.reject(version)
            return self._error(e, version, table.epoch)
        t0 = time.perf_counter()
        outcome, outputs = Outcome.OK, None
        err: ModelError | None = None
        try:
            outputs = await asyncio.wait_for(
                self._predict_handle(version).remote(arrays), cfg.request_timeout_s
            )
        except TimeoutError:
            outcome, err = (
                Outcome.TIMEOUT,
                ModelTimeout(
                    f"version {version!r} did not answer within {cfg.request_timeout_s:g} s"
                ),
            )
        except Exception as e:  # the model (or its replica) failed: a failure of this version
            outcome, err = Outcome.ERROR, ModelError(f"version {version!r} failed: {_short(e)}")
        latency_ms = (time.perf_counter() - t0) * 1000.0
        pred = prob = math.nan
        if outputs is not None:
            try:
                pred = float(summarize_prediction(outputs, sig.task)[0])
                probs = outputs.get("probabilities")
                if probs is not None and pred == pred:
                    prob = float(probs[0][int(pred)])
            except (ValueError, IndexError, TypeError):
                pred = math.nan
        self.recorder.record(
            RequestEvent(
                arrived,
                version,
                choice.weight,
                latency_ms,
                outcome,
                pred,
                choice.unit,
                choice.randomised,
                table.epoch,
            )
        )
        rid = headers.get("x-request-id", "")[:128]
        rid = rid or f"{self._rid_prefix}{next(self._rid_counter)}"
        if err is not None:
            return self._error(err, version, table.epoch)
        assert outputs is not None
        self.feedback.served(
            rid, arrived, version, choice.weight, pred, prob, table.epoch, choice.randomised
        )
        if table.shadow and version != table.shadow and table.wants_shadow(rng.random()):
            self._mirror(table, sig, arrays, outputs, version)
        flags = table.flags.get(version, {})
        hdrs = {
            "x-model-version": version,
            "x-routing-epoch": str(table.epoch),
            "x-rollout-request-id": rid,
        }
        try:
            if v2:
                content, extra = protocol.encode_v2(self.model, version, outputs, req_doc, flags)
                hdrs.update(extra)
                return Response(content, headers=hdrs, media_type=extra["content-type"])
            content = protocol.encode_v1(self.model, version, outputs, flags)
        except RequestError as e:
            return self._error(e, version, table.epoch)
        return Response(content, headers=hdrs, media_type="application/json")

    async def _feedback(self, request: Request) -> Response:
        """Labels for served requests: ``{"request_id": ..., "label": ...}`` or a list of them
        under ``"feedback"``. Matched labels become labelled events for the accuracy judges."""
        body = await request.body()
        if len(body) > self.cfg.max_body_bytes:
            raise PayloadTooLarge(f"body of {len(body)} bytes is over {self.cfg.max_body_bytes}")
        items = parse_feedback(body)
        unknown = []
        for rid, label in items:
            ev = self.feedback.label(rid, label)
            self.recorder.record_label(ev)
            if ev is None:
                unknown.append(rid)
        return JSONResponse({"matched": len(items) - len(unknown), "unknown": unknown[:100]})

    def _error(self, e: RolloutError, version: str, epoch: int) -> Response:
        hdrs = {"x-model-version": version, "x-routing-epoch": str(epoch)}
        return JSONResponse(error_body(e), status_code=http_status(e), headers=hdrs)

    # -- shadow -----------------------------------------------------------------------------------

    def _mirror(
        self,
        table: RoutingTable,
        sig: ModelSignature,
        arrays: dict[str, np.ndarray],
        primary: dict[str, np.ndarray],
        version: str,
    ) -> None:
        shadow = table.shadow
        assert shadow is not None
        if self._shadow_in_flight >= table.shadow_max_in_flight:
            self.recorder.shadow_dropped(shadow)
            return
        self._shadow_in_flight += 1
        task = asyncio.ensure_future(self._shadow_call(table, sig, arrays, primary, version))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow_call(
        self,
        table: RoutingTable,
        sig: ModelSignature,
        arrays: dict[str, np.ndarray],
        primary: dict[str, np.ndarray],
        version: str,
    ) -> None:
        shadow = table.shadow
        assert shadow is not None
        t, t0 = time.time(), time.perf_counter()
        try:
            out = await asyncio.wait_for(
                self._predict_handle(shadow).remote(arrays), self.cfg.request_timeout_s
            )
            ms = (time.perf_counter() - t0) * 1000.0
            disagree, diff = compare_outputs(primary, out, sig.task, table.shadow_rtol)
            self.recorder.record_shadow(ShadowEvent(t, version, shadow, disagree, diff, ms, True))
        except Exception as e:
            ms = (time.perf_counter() - t0) * 1000.0
            log.debug("shadow %s failed: %s", shadow, _short(e))
            self.recorder.record_shadow(ShadowEvent(t, version, shadow, 1.0, math.nan, ms, False))
        finally:
            self._shadow_in_flight -= 1


def _short(e: BaseException) -> str:
    """The most telling line of an error: remote tracebacks end with ``Type: message``."""
    lines = [ln.strip() for ln in str(e).strip().splitlines()]
    telling = [ln for ln in lines if ":" in ln and any(c.isalpha() for c in ln)]
    best = telling[-1] if telling else (lines[0] if lines else "")
    return (best or e.__class__.__name__)[:300]
