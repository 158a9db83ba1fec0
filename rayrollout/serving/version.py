"""``ModelVersion``: one model version as its own Serve application (no route prefix).

Requests arrive from the router as ``dict[str, np.ndarray]`` batches; ``@serve.batch`` groups
concurrent requests into one model call (size and wait from the version's config). The model
runs on a dedicated thread so the replica's event loop keeps accepting requests meanwhile.

Guarantees:

* If a grouped call raises, each request of the group is retried alone, so one request's bad
  input never fails its neighbours; the offending request alone gets the error.
* ``flags`` travel with the version: the router returns them with every response it serves.
* A version with active ``faults`` misbehaves exactly as they say (``FaultInjector``: a slow
  constructor, delays, errors, hangs, a crash of the replica, wrong rows); one without takes a
  single ``is None`` branch per request and is otherwise unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application

from rayrollout.names import VERSION_DEPLOYMENT
from rayrollout.runtime import load_runtime
from rayrollout.runtime.faults import FaultInjector
from rayrollout.spec import VersionConfig

log = logging.getLogger("rayrollout.version")

# The router records every request itself (aggregates, events, Prometheus); Serve's per-request
# access log would only repeat it, at about 5% of the router's CPU.
NO_ACCESS_LOG = {"enable_access_log": False}


class ModelVersion:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = VersionConfig.model_validate(config)
        cfg = self.config
        threads = "num_threads" if cfg.runtime == "torchscript" else "intra_op_threads"
        options: dict[str, Any] = {threads: cfg.intra_op_threads}
        self.runtime = load_runtime(cfg.runtime, cfg.artifact_path(), cfg.device, **options)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{cfg.name}")
        batched: Any = self._predict_batched  # serve.batch adds the setters at run time
        batched.set_max_batch_size(cfg.batching.max_batch_size)
        batched.set_batch_wait_timeout_s(cfg.batching.batch_wait_timeout_s)
        self._signature = {**self.runtime.signature.to_dict(), "task": cfg.task}
        self._inline_rows = cfg.inline_rows if cfg.device == "cpu" else 0
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

    async def _predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = await self._predict_batched(inputs)
        if isinstance(result, BaseException):
            raise result
        return result

    async def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        if rows <= self._inline_rows:
            return self.runtime.predict(inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.runtime.predict, inputs)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _predict_batched(
        self, items: list[dict[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray] | BaseException]:
        if len(items) == 1:
            return [await self._run(items[0])]
        names = list(items[0])
        rows = [len(next(iter(it.values()))) for it in items]
        try:
            merged = {n: np.concatenate([it[n] for it in items]) for n in names}
            out = await self._run(merged)
        except Exception:  # isolate the failing request: retry each alone
            results: list[dict[str, np.ndarray] | BaseException] = []
            for it in items:
                try:
                    results.append(await self._run(it))
                except Exception as e:
                    results.append(e)
            return results
        bounds = np.cumsum([0, *rows])
        return [
            {k: v[bounds[i] : bounds[i + 1]] for k, v in out.items()} for i in range(len(items))
        ]


def version_app(config: VersionConfig) -> Application:
    """One model version as an application (deploy it with ``route_prefix=None``)."""
    dep = serve.deployment(
        name=VERSION_DEPLOYMENT,
        num_replicas=config.num_replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        ray_actor_options=config.ray_actor_options.to_ray(),
        logging_config=NO_ACCESS_LOG,
    )(ModelVersion)
    return dep.bind(config.model_dump(mode="json"))
