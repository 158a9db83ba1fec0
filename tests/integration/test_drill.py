"""``rayrollout drill`` on the session's real Ray Serve: one drill per fault kind, each through
the command's own code path (``run_drill``), which deploys a candidate with the fault in its
``faults``, drives load and starts a rollout made for the fault."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from rayrollout.cli.drill import CANDIDATE, DRILLS, render, run_drill
from rayrollout.names import NAMESPACE, controller_name
from tests.conftest import RayServe

pytestmark = pytest.mark.integration

SLOW_START_S = 3.0  # shorter than the command's default: the test waits for it


def controller_gone(model: str, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(controller_name(model), namespace=NAMESPACE)
        except ValueError:
            return True
        time.sleep(0.2)
    return False


# End to end here: the two drills whose path no other integration test takes (a rollback by
# the shadow phase's disagreement check; a candidate waited for, not failed, while it starts).
# Every kind's fault is a unit test of the injector (tests/unit/test_faults.py); a hang, a
# crash of the candidate's replicas and an error rate run end to end under load in
# test_chaos.py and test_load.py; ``rayrollout drill --fault all`` runs every kind.
END_TO_END = ("wrong", "slow-start")


@pytest.mark.parametrize("kind", END_TO_END)
def test_drill(ray_serve: RayServe, kind: str, tmp_path: Path) -> None:
    drill = DRILLS[kind]
    faults = {"slow_start_s": SLOW_START_S} if kind == "slow-start" else None
    r = run_drill(kind, ray_serve.url, faults=faults, tick_s=0.2, store_dir=tmp_path)
    print(render(r))
    assert r.passed, r.problems
    assert r.stable_failed == 0 and r.requests["v1"]["answered"] > 0
    if drill.rollback:
        assert r.rolled_back and r.phase == "rolled_back"
        assert set(r.fired) & set(drill.expect), (r.fired, r.reason)
        assert r.reason.startswith("rolled back: v2 failed")
    else:  # a slow start is waited for, not counted against the candidate
        assert not r.rolled_back and r.phase in ("promoted", "completed")
        assert r.waited_s is not None and r.waited_s >= SLOW_START_S
        assert r.requests[CANDIDATE]["failed"] == 0 and r.requests[CANDIDATE]["answered"] > 0
    assert controller_gone(r.model)
