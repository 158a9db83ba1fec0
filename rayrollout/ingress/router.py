"""``Router``: one model on the ingress. Splits, pins, mirrors, validates and records.

Its HTTP surface is a Starlette application (``Router.http``) of declared routes, as the model
sees them: the Open Inference Protocol (``/v2/...``), the ``/v1`` JSON API, label feedback, and
the admin API mounted at ``/rollout``. ``rayrollout.ingress.gateway.Gateway`` holds one router
per model and hands each request to its model's router. It imports no Ray: versions are reached
through a ``VersionClient`` and the controller through a ``ServePort``, both injected.
``rayrollout.serving.ingress`` runs the gateway as the Serve deployment; tests run routers
in-process with ``LocalVersions`` and ``FakeServePort``.

The request path never waits on the controller: it routes with the last ``RoutingTable`` it was
given. ``set_routes`` replaces the table by one attribute assignment, and each request reads
``self.table`` exactly once, so it is routed, served and recorded under a single table. A new
router takes the controller's table before it is handed any request (``adopt``, bounded).

Control-plane methods (the gateway's ``set_routes``, ``get_routes``, ``collect`` of a model):
``set_routes(table)``, ``get_routes()``, ``collect()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from rayrollout._compat import ASYNC_TIMEOUT, cancelling
from rayrollout._version import __version__
from rayrollout.dataplane import protocol
from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.events import Outcome, RequestEvent
from rayrollout.dataplane.feedback import (
    FeedbackJoin,
    LabelResult,
    client_request_id,
    new_request_id,
    parse_feedback,
)
from rayrollout.dataplane.passthrough import (
    Answer,
    Extractor,
    Forward,
    answer_headers,
    forward_headers,
)
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.errors import (
    NotFound,
    RequestError,
    RolloutError,
    UnavailableError,
)
from rayrollout.ingress.admin import AdminAPI
from rayrollout.ingress.auth import Scope
from rayrollout.ingress.http import JsonApp, error_id, error_response, json_response, read_body
from rayrollout.ingress.inference import (
    Withdrawals,
    call_version,
    forward_version,
    sticky_key,
    summary,
)
from rayrollout.ingress.openapi import admin_openapi, inference_openapi
from rayrollout.ingress.platform import RouterPlatform, run_in_thread
from rayrollout.ingress.shadow import ShadowMirror
from rayrollout.runtime import ModelSignature
from rayrollout.spec import RolloutSpec, RouterConfig

log = logging.getLogger("rayrollout.router")

SIGNATURE_TIMEOUT_S = 30.0
# Labels that did not count, listed by id in the feedback route's answer.
_NOT_COUNTED = (LabelResult.UNKNOWN, LabelResult.REFUSED, LabelResult.LATE,
                LabelResult.AMBIGUOUS)
READY_PROBE_TIMEOUT_S = 5.0
# A readiness probe's wait ran out, or the version said it is not ready.
NOT_READY: tuple[type[Exception], ...] = (*ASYNC_TIMEOUT, RolloutError)
PASS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
ADOPT_TIMEOUT_S = 10.0  # a new router's wait for its controller's table


class Router:
    def __init__(self, config: dict[str, Any] | RouterConfig, platform: RouterPlatform,
                 environ: dict[str, str] | None = None) -> None:
        self.cfg = RouterConfig.model_validate(config)
        self.model = self.cfg.model
        self.table = self.cfg.routing_table(0)
        self.platform = platform
        self.versions = platform.versions
        self._signatures: dict[str, ModelSignature] = {}
        self._sig_tasks: dict[str, asyncio.Task[ModelSignature]] = {}
        self.replica = platform.replica or f"local-{os.getpid()}"
        self.recorder = Recorder(self.replica, self.cfg.event_buffer)
        self._rng = random.Random(self.cfg.seed)
        self.feedback = FeedbackJoin(self.cfg.feedback_window)
        self._extractors: dict[str, tuple[Mapping[str, Any], Extractor]] = {}
        self.shadow = ShadowMirror(self.versions, self.recorder, self.cfg.request_timeout_s)
        make_exporter = platform.exporter
        self._exporter = (make_exporter(self.model, self.recorder, lambda: self.table)
                          if make_exporter is not None else None)
        self._transport_limit = platform.transport_limit
        self.max_response_bytes: int | None = protocol.MAX_RESPONSE_BYTES
        self.admin = AdminAPI(self.cfg, platform.port, environ)
        self.withdrawals = Withdrawals()
        self.http = JsonApp(self.routes(), on_error=self._count_rejected)
        if platform.port is not None:
            # a new or restarted replica serves the controller's epoch from its first request
            self.adopt(ADOPT_TIMEOUT_S)
            if self.cfg.rollout is not None:  # serve run of a rollout config: start it
                (platform.background or run_in_thread)(self._start_rollout)

    def routes(self) -> list[BaseRoute]:
        """Every route of the ingress; ``Allow`` on a 405 comes from these declarations."""
        if self.cfg.interface == "http":
            return self._passthrough_routes()
        get, post = ["GET"], ["POST"]
        return [  # inference first: routes are matched in this order
            Route("/v2/models/{model}/infer", self._infer_v2, methods=post),
            Route("/v1/models/{model}/predict", self._predict_v1, methods=post),
            Route("/v2/models/{model}/versions/{version}/infer", self._infer_v2, methods=post),
            Route("/v1/models/{model}/feedback", self._feedback, methods=post),
            Route("/v2", self._server_metadata, methods=get),
            Route("/v2/health/live", self._live, methods=get),
            Route("/v2/health/ready", self._server_ready, methods=get),
            Route("/v2/models/{model}", self._metadata, methods=get),
            Route("/v2/models/{model}/ready", self._ready, methods=get),
            Route("/v2/models/{model}/versions/{version}", self._metadata, methods=get),
            Route("/v2/models/{model}/versions/{version}/ready", self._ready, methods=get),
            Route("/v1/models", self._list_models, methods=get),
            Route("/v1/models/{model}", self._model_info, methods=get),
            Route("/v2/models/{model}/openapi.json", self._openapi, methods=get),
            *self._admin_routes(),
        ]

    def _admin_routes(self) -> list[BaseRoute]:
        """The admin API and status page at ``/rollout/<model>/...`` and at ``/rollout/...``
        (the gateway sends the latter here only when this is the one model it serves)."""
        get, own = ["GET"], f"/rollout/{self.model}"
        return [
            Route(f"{own}/openapi.json", self._admin_openapi, methods=get),
            Route(own, self.admin.page, methods=get),
            Mount(own, app=self.admin.http),
            Route("/rollout/openapi.json", self._admin_openapi, methods=get),
            Route("/rollout", self.admin.page, methods=get),
            Mount("/rollout", app=self.admin.http),
        ]

    def _passthrough_routes(self) -> list[BaseRoute]:
        """A model whose versions speak their own HTTP: rayrollout keeps its health, labels,
        models list and admin routes; every other request is passed through."""
        get = ["GET"]
        return [
            Route("/v1/models/{model}/feedback", self._feedback, methods=["POST"]),
            Route("/v2/health/live", self._live, methods=get),
            Route("/v1/models", self._list_models, methods=get),
            *self._admin_routes(),
            Route("/{path:path}", self._pass, methods=list(PASS_METHODS)),
        ]

    # -- control plane ------------------------------------------------------------------------

    async def set_routes(self, table: dict[str, Any]) -> int:
        """Install ``table`` if its epoch is newer than the one in force; return the epoch now
        in force. Idempotent: pushing the same or an older table changes nothing. Requests
        still waiting on a version the new table takes traffic from stop waiting
        (``rayrollout.ingress.inference.Withdrawals``)."""
        new = RoutingTable.from_dict(table)
        if new.model != self.model:
            raise RolloutError(f"table for model {new.model!r} pushed to router of {self.model!r}")
        self._start_exporter()
        old = self.table
        if new.epoch > old.epoch:
            self.table = new  # the one assignment that switches every later request
            withdrawn = self.withdrawals.withdraw(old, new)
            if withdrawn:
                log.info("epoch %d of %r takes traffic from %s: requests waiting on them stop "
                         "waiting", new.epoch, self.model, withdrawn)
        return self.table.epoch

    async def get_routes(self) -> dict[str, Any]:
        return self.table.to_dict()

    async def collect(self) -> dict[str, Any]:
        """Aggregates since the previous call and the drained per-request events."""
        return self.recorder.collect(self.table.epoch).to_dict()

    def _start_exporter(self) -> None:
        if self._exporter is not None:
            self._exporter.ensure_started()

    def _start_rollout(self) -> Any:
        assert self.cfg.rollout is not None and self.platform.port is not None
        spec = RolloutSpec.model_validate(self.cfg.rollout)
        h = self.platform.port.controller(spec.model, spec.store_target())
        # declarative: a config re-deployed (or another router replica) never restarts a
        # rollout this model already ran, however it ended
        return h.call("start", spec.model_dump(mode="json"), "serve-run", True)

    def adopt(self, timeout_s: float) -> bool:
        """Take the current table of this model's controller, if one runs, waiting at most
        ``timeout_s`` (blocking: call it before the router serves, or off the event loop).
        True when a controller's table is in force; with no controller (plain serving) or
        none reachable in time, the config's table stays (the controller pushes it later)."""
        done, late = threading.Event(), threading.Event()
        taken: list[bool] = []

        def run() -> None:
            try:
                taken.append(self._adopt_controller_table(late))
            finally:
                done.set()

        threading.Thread(target=run, name=f"adopt-{self.model}", daemon=True).start()
        if not done.wait(timeout_s):
            late.set()  # an answer after this is stale: the controller's pushes take over
            log.warning("the controller of %r did not give its table within %g s: serving the "
                        "config's (epoch %d) until it pushes one", self.model, timeout_s,
                        self.table.epoch)
        return bool(taken and taken[0])

    def _adopt_controller_table(self, late: threading.Event) -> bool:
        """If a controller runs this model's rollouts, take its current table (newer epoch),
        unless ``late`` is set by then."""
        assert self.platform.port is not None
        try:
            doc = self.platform.port.controller(self.model, create=False).call("table")
        except Exception:  # no controller (plain serving) or not reachable: keep the config's
            return False
        if doc and not late.is_set():
            new = RoutingTable.from_dict(doc)
            if new.model == self.model and new.epoch > self.table.epoch:
                self.table = new  # one assignment, as in set_routes
        return bool(doc)

    # -- what the gateway asks of each model ------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """This model in ``GET /v1/models``: name, epoch and versions with their weights."""
        self._start_exporter()
        return dict(self._models()["models"][0])

    async def ready(self) -> bool:
        """Whether every version with weight is ready (a pass-through model: always; its apps
        answer for themselves)."""
        if self.cfg.interface == "http":
            return True
        return (await self._ready_response(None)).status_code == 200

    def close(self) -> None:
        """The model is no longer served here: stop its exporter."""
        if self._exporter is not None:
            stop = getattr(self._exporter, "stop", None)
            if stop is not None:
                with contextlib.suppress(RuntimeError):  # no running loop: nothing started
                    asyncio.get_running_loop().create_task(stop())

    # -- helpers --------------------------------------------------------------------------------

    def _count_rejected(self, request: Request, exc: RolloutError) -> None:
        if isinstance(exc, RequestError):
            self.recorder.reject("")

    async def _signature(self, version: str) -> ModelSignature:
        """The version's signature, fetched once and shared by the requests waiting for it.

        The fetch runs in a context of its own, not as a child of the request that started it:
        Serve cancels a cancelled request's child calls, and a fetch cancelled with its first
        request must not fail every later one. A fetch that failed or was cancelled anyway is
        retried by the next request; this one gets a 503."""
        sig = self._signatures.get(version)
        if sig is not None:
            return sig
        task = self._sig_tasks.get(version)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = contextvars.Context().run(asyncio.get_running_loop().create_task,
                                             self._fetch_signature(version))
            self._sig_tasks[version] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), SIGNATURE_TIMEOUT_S)
        except ASYNC_TIMEOUT:
            raise UnavailableError(f"version {version!r} is not ready") from None
        except asyncio.CancelledError:
            if not task.cancelled() or cancelling(asyncio.current_task()):
                raise  # this request itself is being cancelled
            raise UnavailableError(f"version {version!r} is not ready (its description was "
                                   "cancelled; retry)") from None

    async def _fetch_signature(self, version: str) -> ModelSignature:
        try:
            d = await self.versions.signature(version)
        except RolloutError:
            raise
        except Exception as e:  # the app is not there yet, or its replica is starting
            eid = error_id()
            log.warning("version %r is not ready (error id %s): %s: %s", version, eid,
                        type(e).__name__, e)
            raise UnavailableError(f"version {version!r} is not ready (error id {eid})") from e
        sig = ModelSignature.from_dict(d)
        self._signatures[version] = sig
        return sig

    def _model(self, request: Request) -> None:
        self._start_exporter()
        name = request.path_params["model"]
        if name != self.model:
            raise NotFound(f"unknown model {name!r}; this router serves {self.model!r}")

    def _live_version(self, request: Request) -> str | None:
        version: str | None = request.path_params.get("version")
        if version is not None and version not in self.table.live:
            raise NotFound(f"version {version!r} of model {self.model!r} is not live")
        return version

    # -- metadata and health --------------------------------------------------------------------

    async def _server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": "rayrollout", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def _live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def _server_ready(self, request: Request) -> Response:
        return await self._ready_response(None)

    async def _ready(self, request: Request) -> Response:
        self._model(request)
        return await self._ready_response(self._live_version(request))

    def _models(self) -> dict[str, Any]:
        t = self.table
        versions = [{"name": v, "weight": w, "shadow": False} for v, w in t.percent().items()]
        if t.shadow and t.shadow not in t.weights:
            versions.append({"name": t.shadow, "weight": 0.0, "shadow": True})
        for v in versions:
            v["shadow"] = v["name"] == t.shadow
            v["shadow_fraction"] = t.shadow_fraction if v["shadow"] else 0.0
        return {"models": [{"name": t.model, "epoch": t.epoch, "versions": versions}]}

    async def _openapi(self, request: Request) -> Response:
        """The OpenAPI description of this model's inference routes, with its signature."""
        self._model(request)
        t = self.table
        sig = await self._signature(max(t.weights, key=lambda v: t.weights[v]))
        return json_response(inference_openapi(self.model, sig, list(t.live), self.cfg))

    async def _admin_openapi(self, request: Request) -> Response:
        """The admin API's description, at the prefix it was asked for under."""
        own = f"/rollout/{self.model}"
        path = route_path(request.scope)
        return json_response(admin_openapi(own if path.startswith(own + "/") else
                                           "/rollout"))

    async def _list_models(self, request: Request) -> Response:
        return JSONResponse(self._models())

    async def _model_info(self, request: Request) -> Response:
        self._model(request)
        return JSONResponse(self._models()["models"][0])

    async def _metadata(self, request: Request) -> Response:
        self._model(request)
        version = self._live_version(request)
        t = self.table
        live = [v for v, w in t.weights.items() if w > 0] + (
            [t.shadow] if t.shadow and t.weights.get(t.shadow, 0) == 0 else []
        )
        target = version or max(t.weights, key=lambda v: t.weights[v])
        sig = await self._signature(target)
        doc = protocol.model_metadata(self.model, [version] if version else live, sig)
        return JSONResponse(doc)

    async def _ready_response(self, version: str | None) -> Response:
        t = self.table
        wanted = [version] if version else [v for v, w in t.weights.items() if w > 0]
        try:  # a version is ready once it has described its inputs; wait briefly for that
            await asyncio.wait_for(
                asyncio.gather(*(self._signature(v) for v in wanted)), READY_PROBE_TIMEOUT_S
            )
            ready = True
        except NOT_READY:
            ready = False
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    # -- inference ------------------------------------------------------------------------------

    async def _infer_v2(self, request: Request) -> Response:
        self._model(request)
        return await self._infer(request, request.path_params.get("version"), v2=True)

    async def _predict_v1(self, request: Request) -> Response:
        self._model(request)
        return await self._infer(request, None, v2=False)

    async def _infer(self, request: Request, pin: str | None, v2: bool) -> Response:
        arrived = time.time()
        self.recorder.arrive(arrived)  # in flight until it leaves: events reach the judges
        try:  # in arrival order, held back until no earlier request can still complete
            return await self._serve(request, pin, v2, arrived)
        finally:
            self.recorder.leave(arrived)

    async def _serve(self, request: Request, pin: str | None, v2: bool, arrived: float
                     ) -> Response:
        table = self.table  # read once: this request lives under this table
        body = await read_body(request, self.cfg.max_body_bytes)
        headers, cfg = request.headers, self.cfg
        choice = table.choose(self._rng.random(), key=sticky_key(headers, cfg.sticky_header),
                              pin=pin or headers.get(cfg.pin_header))
        try:
            rid = client_request_id(headers.get("x-request-id")) or new_request_id()
        except RequestError as e:
            self.recorder.reject(choice.version)
            return self._error(e, choice.version, table.epoch)
        version = choice.version
        try:
            sig = await self._signature(version)
            arrays, req_doc = self._decode(body, headers, sig, v2)
        except RequestError as e:
            self.recorder.reject(version)
            return self._error(e, version, table.epoch)
        pinned = not choice.randomised and not choice.unit  # as RoutingTable.retry_on
        outputs, outcome, err, latency_ms = await call_version(
            self.versions, version, arrays, cfg.request_timeout_s,
            self.withdrawals.signal(version, pinned, self.table))
        answer = None
        refused: RolloutError | None = err
        if outputs is not None:  # an answer too large for its client is refused and rejected
            try:
                answer = self._answer(table, version, rid, outputs, req_doc, v2)
            except RequestError as e:
                outcome, refused = Outcome.REJECTED, e
        pred, prob = summary(outputs, sig.task)
        self.recorder.record(RequestEvent(arrived, version, choice.weight, latency_ms, outcome,
                                          pred, choice.unit, choice.randomised, table.epoch))
        if answer is None:
            assert refused is not None
            fallback = table.retry_on(version, choice) if err is not None else None
            if fallback is not None:  # the failure above stays this version's
                return await self._retry(table, fallback, version, arrays, req_doc, rid, v2,
                                         refused)
            return self._error(refused, version, table.epoch)
        assert outputs is not None
        self.feedback.served(
            rid, arrived, version, choice.weight, pred, prob, table.epoch, choice.randomised
        )
        if table.shadow and version != table.shadow and table.wants_shadow(self._rng.random()):
            self.shadow.mirror(table, sig.task, arrays, outputs, version)
        return answer

    async def _retry(self, table: RoutingTable, fallback: str, failed: str,
                     arrays: dict[str, np.ndarray], req_doc: dict[str, Any], rid: str, v2: bool,
                     err: RolloutError) -> Response:
        """Answer a request ``failed`` could not with ``fallback`` (the stable), once. The
        answer says so (``x-rollout-retried-from``); it is not a request event (it was not
        routed) and takes no label: only the fallback's retry counters move."""
        try:
            await self._signature(fallback)  # the same inputs: both versions share the model's
        except RolloutError:                  # signature, or the fallback is not ready
            self.recorder.retried(fallback, ok=False)
            return self._error(err, failed, table.epoch)
        outputs, _, _, _ = await call_version(self.versions, fallback, arrays,
                                              self.cfg.request_timeout_s)
        self.recorder.retried(fallback, ok=outputs is not None)
        if outputs is None:
            return self._error(err, failed, table.epoch)
        try:
            answer = self._answer(table, fallback, rid, outputs, req_doc, v2)
        except RequestError as e:
            return self._error(e, fallback, table.epoch)
        answer.headers["x-rollout-retried-from"] = failed
        return answer

    def _decode(self, body: bytes, headers: Any, sig: ModelSignature, v2: bool
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The request's arrays, validated against the version's signature (``RequestError``
        names the problem) and small enough for the hop to the version."""
        rows = self.cfg.max_batch_rows
        if v2:
            arrays, req_doc = protocol.decode_v2(body, headers, sig, rows)
        else:
            arrays, req_doc = protocol.decode_v1(body, sig, rows), {}
        protocol.check_transport_size(arrays, self._transport_limit)
        return arrays, req_doc

    # -- pass-through ---------------------------------------------------------------------------

    async def _pass(self, request: Request) -> Response:
        arrived = time.time()
        self.recorder.arrive(arrived)
        try:
            return await self._pass_serve(request, arrived)
        finally:
            self.recorder.leave(arrived)

    async def _pass_serve(self, request: Request, arrived: float) -> Response:
        """Route the request, pass it through to the version unchanged and its answer back.
        A 4xx of the app is its answer to bad input (rejected, not judged); a 5xx, a failure
        to answer or a timeout is an error of the version; the prediction of a 2xx answer is
        read for the judges by the version's extractor."""
        self._start_exporter()
        table = self.table  # read once: this request lives under this table
        cfg, headers = self.cfg, request.headers
        body = await read_body(request, cfg.max_body_bytes)
        choice = table.choose(self._rng.random(), key=sticky_key(headers, cfg.sticky_header),
                              pin=headers.get(cfg.pin_header))
        version = choice.version
        try:
            rid = client_request_id(headers.get("x-request-id")) or new_request_id()
        except RequestError as e:
            self.recorder.reject(version)
            return self._error(e, version, table.epoch)
        fwd = Forward(request.method, route_path(request.scope),
                      request.scope.get("query_string", b"").decode("latin-1"),
                      forward_headers(headers.items(), (cfg.pin_header,)), body)
        via = request.scope.get("server")
        pinned = not choice.randomised and not choice.unit
        answer, outcome, err, latency_ms = await forward_version(
            self.versions, version, fwd, via, cfg.request_timeout_s,
            self.withdrawals.signal(version, pinned, self.table))
        if answer is not None and 400 <= answer.status < 500:
            self.recorder.reject(version)  # the app's answer to bad input
            return self._passed(answer, table, version, rid)
        pred = math.nan
        if answer is not None and answer.status < 400:
            pred = self._extract(table, version, answer.body)
        self.recorder.record(RequestEvent(arrived, version, choice.weight, latency_ms, outcome,
                                          pred, choice.unit, choice.randomised, table.epoch))
        if answer is None or outcome is not Outcome.OK:
            if answer is not None:  # the app's own 5xx, passed back as it is
                return self._passed(answer, table, version, rid)
            assert err is not None
            return self._error(err, version, table.epoch)
        self.feedback.served(rid, arrived, version, choice.weight, pred, math.nan, table.epoch,
                             choice.randomised)
        if table.shadow and version != table.shadow and table.wants_shadow(self._rng.random()):
            self.shadow.mirror_http(table, fwd, via, pred, version, self._extract)
        return self._passed(answer, table, version, rid)

    def _extract(self, table: RoutingTable, version: str, body: bytes) -> float:
        spec = table.predictions.get(version)
        if spec is None:
            return math.nan
        made = self._extractors.get(version)
        if made is None or made[0] != spec:  # built once per version and spec
            try:
                made = (spec, Extractor(spec))
            except Exception as e:  # the user's function cannot be imported here
                log.warning("version %r: prediction extractor unusable: %s", version, e)
                return math.nan
            self._extractors[version] = made
        return made[1](body)

    def _passed(self, answer: Answer, table: RoutingTable, version: str, rid: str) -> Response:
        hdrs = [(k.encode("latin-1"), v.encode("latin-1"))
                for k, v in answer_headers(answer.headers)]
        resp = Response(answer.body, status_code=answer.status)
        resp.raw_headers = [h for h in resp.raw_headers if h[0] == b"content-length"] + hdrs
        resp.headers["x-model-version"] = version
        resp.headers["x-routing-epoch"] = str(table.epoch)
        resp.headers["x-rollout-request-id"] = rid
        return resp

    def _answer(self, table: RoutingTable, version: str, rid: str,
                outputs: dict[str, np.ndarray], req_doc: dict[str, Any], v2: bool) -> Response:
        flags = table.flags.get(version, {})
        hdrs = {
            "x-model-version": version,
            "x-routing-epoch": str(table.epoch),
            "x-rollout-request-id": rid,
        }
        limit = self.max_response_bytes
        if v2:
            content, extra = protocol.encode_v2(self.model, version, outputs, req_doc, flags,
                                                limit)
            hdrs.update(extra)
            return Response(content, headers=hdrs, media_type=extra["content-type"])
        content = protocol.encode_v1(self.model, version, outputs, flags, limit)
        return Response(content, headers=hdrs, media_type="application/json")

    async def _feedback(self, request: Request) -> Response:
        """Labels for served requests: ``{"request_id": ..., "label": ...}`` or a list of them
        under ``"feedback"``, sent with a token of scope ``feedback``. Matched labels become
        labelled events for the accuracy judges; the answer counts every item by what it did
        (``rayrollout.dataplane.feedback.LabelResult``) and lists the ids of those that did
        not count (the first 100 of each kind)."""
        self._model(request)
        who = self.admin.credentials.require(request.headers, Scope.FEEDBACK)
        items = parse_feedback(await read_body(request, self.cfg.max_body_bytes))
        counts = dict.fromkeys(LabelResult, 0)
        ids: dict[str, list[str]] = {str(r): [] for r in _NOT_COUNTED}
        for rid, label in items:
            result, ev = self.feedback.label(rid, label, who, self.recorder.relabel)
            if result is LabelResult.MATCHED:
                self.recorder.record_label(ev)
            elif result is LabelResult.UNKNOWN:
                self.recorder.record_label(None)
            counts[result] += 1
            kept = ids.get(str(result))
            if kept is not None and len(kept) < 100:
                kept.append(rid)
        return json_response({"matched": counts[LabelResult.MATCHED],
                              "counts": {str(k): n for k, n in counts.items()}, **ids})

    def _error(self, e: RolloutError, version: str, epoch: int) -> Response:
        return error_response(e, {"x-model-version": version, "x-routing-epoch": str(epoch)})


def route_path(scope: Any) -> str:
    """The request's path under the router's route prefix (Serve's ``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path if path.startswith("/") else "/" + path
