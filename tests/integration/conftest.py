"""Deploy a model (its versions, and its router on the one ingress) under a unique name and path
prefix per test."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from rayrollout.dataplane.aggregates import Collected, VersionStats, merge_stats
from tests.conftest import ARTIFACTS, ROOT, RayServe, free_port

pytestmark = pytest.mark.integration

# They kill replicas and controllers and load the box: the session's Ray runs them last, so
# what they break or leave behind (restarting actors, a busy metrics agent) meets no other test.
DESTRUCTIVE = ("test_load.py", "test_chaos.py", "test_drill.py", "test_cluster_faults.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda it: it.path.name in DESTRUCTIVE)  # stable: keeps the order within


class ModelRouters:
    """The ingress's handle seen as one model's routers: ``broadcast("collect")`` and
    ``broadcast("get_routes")`` name the model (a table names its own)."""

    def __init__(self, handle: Any, model: str) -> None:
        self.handle, self.model = handle, model

    def broadcast(self, method: str, *args: Any) -> Any:
        if method in ("collect", "get_routes") and not args:
            args = (self.model,)
        return self.handle.broadcast(method, *args)


@dataclass
class Deployed:
    model: str
    prefix: str
    base: str
    apps: list[str] = field(default_factory=list)
    totals: dict[str, VersionStats] = field(default_factory=dict)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, **kw)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=60, **kw)

    def router(self) -> ModelRouters:
        """The routers of this model: one on every replica of the shared ingress."""
        from ray import serve

        from rayrollout.names import INGRESS_APP, ROUTER_DEPLOYMENT

        return ModelRouters(serve.get_deployment_handle(ROUTER_DEPLOYMENT, INGRESS_APP),
                            self.model)

    def collect(self) -> list[dict[str, Any]]:
        return list(self.router().broadcast("collect").results())

    def stats(self) -> dict[str, VersionStats]:
        """Collect once and add it to everything collected before (collect() drains)."""
        parts = [Collected.from_dict(c).stats for c in self.collect()]
        self.totals = merge_stats([self.totals, *parts])
        return self.totals

    def wait_stats(
        self, ok: Callable[[dict[str, VersionStats]], bool], tries: int = 100
    ) -> dict[str, VersionStats]:
        """Collect until ``ok`` holds (shadow calls finish after their primary responses)."""
        for _ in range(tries):
            if ok(self.stats()):
                break
            time.sleep(0.1)
        return self.totals

    def push(self, table: dict[str, Any]) -> list[int]:
        return list(self.router().broadcast("set_routes", table).results())


def version(model: str, name: str, artifact: str, runtime: str = "onnx", **kw: Any) -> dict:
    return {
        "model": model,
        "name": name,
        "runtime": runtime,
        "artifact": str(ARTIFACTS / artifact),
        "max_ongoing_requests": 512,
        **kw,
    }


@pytest.fixture(scope="session")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    d = np.load(ROOT / "models" / "heldout.npz")
    return d["X"].astype(np.float32), d["y"]


@pytest.fixture
def deploy(ray_serve: RayServe) -> Iterator[Callable[..., Deployed]]:
    from ray import serve

    from rayrollout.serving.app import deploy as do_deploy
    from rayrollout.serving.port import RayServePort

    made: list[Deployed] = []

    def _deploy(versions: list[tuple[Any, ...]], **router: Any) -> Deployed:
        """``versions``: (name, artifact, runtime) or (name, artifact, runtime, {more fields})."""
        model = f"m{uuid.uuid4().hex[:8]}"
        prefix = f"/{model}"
        vs = [version(model, n, a, r, **(more[0] if more else {})) for n, a, r, *more in versions]
        do_deploy({"model": model, **router}, vs, route_prefix=prefix)
        d = Deployed(model, prefix, ray_serve.url + prefix)
        d.apps = [f"{model}-{v['name']}" for v in vs]  # the ingress is shared: not deleted
        made.append(d)
        return d

    yield _deploy
    for d in made:
        RayServePort().remove_router(d.model)
        for app in d.apps:
            serve.delete(app, _blocking=False)


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def diagnose(self) -> str:
        """What Prometheus saw of its targets: health, last error, last scrape's duration and
        the samples it took, for the message of a test that waited in vain."""
        try:
            r = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
            targets = r.json()["data"]["activeTargets"]
            samples = self.query("scrape_samples_scraped")
        except (httpx.HTTPError, KeyError, ValueError) as e:
            return f"prometheus unreadable: {e!r}"
        return "; ".join(
            f"{t.get('scrapeUrl')}: {t.get('health')} lastError={t.get('lastError')!r} "
            f"lastScrapeDuration={t.get('lastScrapeDuration')} "
            f"scrapeTimeout={t.get('scrapeTimeout')}" for t in targets
        ) + f"; samples={[s['value'][1] for s in samples]}"


@pytest.fixture(scope="module")
def prometheus(
    ray_serve: RayServe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A real Prometheus server scraping Ray's metrics port every 2 s, for the module that
    asks for it only: each scrape makes Ray's metrics agent render and compress every series
    of the session, about a quarter of a core on a 2-core box for as long as Prometheus runs."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh (Debian package prometheus)")
    d = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (d / "prometheus.yml").write_text(
        # every 2 s, with as long to answer: under a full suite on 2 cores Ray's metrics agent
        # has taken over 1 s to render the session's series, and a scrape that times out is
        # no data at all
        "global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s}\n"
        "scrape_configs:\n"
        "  - job_name: ray\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{ray_serve.metrics_port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(d / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready: " + (d / "prometheus.log").read_text())
        yield Prometheus(url)
    finally:
        proc.terminate()
        proc.wait(20)
