"""CPU seconds per process of this Ray session (read from /proc), so a result says where the
two cores went."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, name, cpu seconds) for every process we can read."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        ppid, ut, st = int(rest[1]), int(rest[11]), int(rest[12])
        out[int(p)] = (ppid, cmd, (ut + st) / _TICK)
    return out


def _label(cmd: str) -> str:
    if cmd.startswith("ray::ServeReplica:"):
        return "replica:" + cmd.split(":", 2)[2]
    if cmd.startswith("ray::"):
        return cmd[5:].split(" ")[0].split(".")[0]
    base = os.path.basename(cmd.split(" ")[0])
    return "ray-internal:" + base if base in ("raylet", "gcs_server") else base


class CpuSampler:
    """CPU seconds of this process's descendants (the Ray session it started) over a window."""

    def __init__(self) -> None:
        self._t0: dict[int, tuple[str, float]] = {}

    def _descendants(self) -> dict[int, tuple[str, float]]:
        table = _proc_table()
        me = os.getpid()
        kids: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _, _) in table.items():
            kids[ppid].append(pid)
        out, stack = {}, list(kids[me])
        while stack:
            pid = stack.pop()
            _, cmd, cpu = table[pid]
            out[pid] = (_label(cmd), cpu)
            stack.extend(kids[pid])
        return out

    def start(self) -> None:
        self._t0 = self._descendants()

    def stop(self) -> dict[str, float]:
        now = self._descendants()
        by: dict[str, float] = defaultdict(float)
        for pid, (label, cpu) in now.items():
            d = cpu - self._t0.get(pid, (label, 0.0))[1]
            if d > 0.005:
                by[label] += d
        return dict(by)
