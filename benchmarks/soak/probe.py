"""What the sampler reads while the soak runs: the PIDs of this session's actors and their RSS,
the controller store's size, and the event buffers' depths from the ticks the controller
persisted. Everything is read from outside: nothing here touches the request path."""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from rayrollout.names import controller_name, router_app_name, version_app_name


def actor_pids() -> tuple[list[dict[str, Any]], str]:
    """(alive actors as ``{"name", "class", "pid"}``, where the list came from).

    Ray's state API (``ray.util.state.list_actors(detail=True)``) answers through the
    dashboard's HTTP server; a session started without the dashboard (as the benchmarks start
    theirs) has none, so the same rows are then read from the GCS actor table."""
    try:
        from ray.util.state import list_actors

        rows = list_actors(detail=True, filters=[("state", "=", "ALIVE")], limit=10_000,
                           timeout=5, raise_on_missing_output=False)
        return [{"name": a.name or "", "class": a.class_name or "", "pid": a.pid}
                for a in rows if a.pid], "ray.util.state.list_actors"
    except Exception:  # no dashboard: the GCS actor table has the same fields
        from ray._private import state

        table = state.actors(actor_state_name="ALIVE")
        return [{"name": a.get("Name") or "", "class": a.get("ActorClassName") or "",
                 "pid": int(a["Pid"])} for a in table.values() if a.get("Pid")], "gcs actor table"


def role_of(actor: dict[str, Any], model: str) -> str | None:
    """``controller``, ``router``, ``version:<name>``, ``serve-controller``, ``serve-proxy``,
    or None for an actor the soak does not watch."""
    name, cls = actor["name"], actor["class"]
    if name == controller_name(model):
        return "controller"
    if cls.startswith("ServeReplica:"):
        app = cls.split(":")[1]
        prefix = version_app_name(model, "")
        if app.startswith(prefix):
            return "version:" + app[len(prefix):]
        return "router" if app == router_app_name(model) else None
    if name == "SERVE_CONTROLLER_ACTOR":
        return "serve-controller"
    if name.startswith("SERVE_PROXY_ACTOR"):
        return "serve-proxy"
    return None


def rss_of(pids: dict[int, str]) -> dict[str, dict[str, Any]]:
    """``"<role>@<pid>" -> {"role", "pid", "rss"}`` (bytes) of the processes still there."""
    import psutil

    out = {}
    for pid, role in pids.items():
        try:
            rss = psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[f"{role}@{pid}"] = {"role": role, "pid": pid, "rss": rss}
    return out


def store_bytes(path: str) -> dict[str, int]:
    """Sizes of the SQLite store's files (main, ``-wal``, ``-shm``; 0 when absent)."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            out["db" + suffix] = os.path.getsize(path + suffix)
        except OSError:
            out["db" + suffix] = 0
    return out


class TickReader:
    """The ticks the controller persisted since the last ``read()``, as buffer depths.

    Per tick: ``events`` (request events drained from the routers, i.e. their buffers' depth at
    that drain), ``labelled`` and ``shadow`` (the same for those buffers), and ``lost``: requests
    the tick's aggregates counted with no event (fallen off a full buffer; >= 0 only when events
    and counts came from the same collect). Read-only SQLite; the store's writer is not held."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.last_id = 0

    def read(self) -> dict[str, Any]:
        if not Path(self.path).exists():
            return {"ticks": 0}
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT id, inputs FROM ticks WHERE id > ? ORDER BY id",
                              (self.last_id,)).fetchall()
            held_row = db.execute("SELECT judges FROM rollouts ORDER BY id DESC LIMIT 1").fetchone()
            counts = db.execute("SELECT (SELECT COUNT(*) FROM ticks), (SELECT COUNT(*) FROM log),"
                                " (SELECT COUNT(*) FROM rollouts)").fetchone()
        finally:
            db.close()
        depths = [tick_depths(json.loads(zlib.decompress(blob))) for _, blob in rows]
        if rows:
            self.last_id = int(rows[-1][0])
        held = len(json.loads(held_row[0]).get("held", [])) if held_row and held_row[0] else 0
        return {
            "ticks": len(rows),
            "events_max": max((d["events"] for d in depths), default=0),
            "labelled_max": max((d["labelled"] for d in depths), default=0),
            "shadow_max": max((d["shadow"] for d in depths), default=0),
            "lost": sum(d["lost"] for d in depths),
            "held": held,
            "rows": {"ticks": counts[0], "log": counts[1], "rollouts": counts[2]},
        }


def tick_depths(inputs: dict[str, Any]) -> dict[str, int]:
    """The buffer depths one persisted tick shows (see ``TickReader``)."""
    events = len(inputs.get("events", []))
    counted = sum(int(v) for v in (inputs.get("requests") or {}).values())
    return {
        "events": events,
        "labelled": len(inputs.get("labelled", [])),
        "shadow": len(inputs.get("shadow", [])),
        "lost": max(0, counted - events),
    }
