"""The durable store: one transaction per tick, a tamper-evident log, resume after a crash.
Every test runs on both backends (``stores``: SQLite and a real PostgreSQL) unless it says
otherwise."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rayrollout.controller.core import ControllerCore, replay_rollout
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Command, RolloutState
from rayrollout.controller.store import GENESIS, RolloutStore, Store, chain_hash
from rayrollout.spec import RolloutSpec
from tests.unit.controller.conftest import Stores
from tests.unit.controller.helpers import Sim, core_spec, drive, make_spec

LOG_ONLY = ("log_seq", "rollout", "ts", "hash")


def logged_journey(store: RolloutStore) -> tuple[int, Sim]:
    """A pure journey (pause, approval, promotion) written to ``store`` tick by tick."""
    sim = Sim(make_spec(steps=(10, {"weight": 40, "approval": True}, 70)))
    rid = store.create("m", sim.spec.digest(), sim.spec.model_dump(mode="json"),
                       sim.state.to_dict())
    n = 0

    def flush() -> None:
        nonlocal n
        for d in sim.decisions[n:]:
            store.commit(rid, sim.state.to_dict(), {}, d.now, {"now": d.now}, d.to_dict())
        n = len(sim.decisions)

    sim.to_canary()
    flush()
    sim.command("pause")
    flush()
    sim.command("resume")
    flush()
    for _ in range(2):
        sim.pass_step()
        flush()
    sim.command("approve")
    sim.pass_step()
    sim.tick(120)
    flush()
    assert sim.state.phase == Phase.COMPLETED
    return rid, sim


def test_commit_writes_state_judges_inputs_and_log_together(store: RolloutStore) -> None:
    rid, sim = logged_journey(store)
    row = store.get(rid)
    assert row is not None and row.model == "m" and row.digest == sim.spec.digest()
    assert RolloutState.from_dict(row.state) == sim.state and row.judges == {}
    assert row.applied_seq == 0
    history = store.history(rid)
    assert [{k: v for k, v in e.items() if k not in LOG_ONLY} for e in history] == [
        d.to_dict() for d in sim.decisions]
    assert [e["log_seq"] for e in history] == list(range(1, len(sim.decisions) + 1))
    assert len(store.ticks(rid)) == len(sim.decisions)
    assert store.history(rid, limit=2) == history[-2:]
    store.mark_applied(rid, 3)
    assert store.get(rid).applied_seq == 3  # type: ignore[union-attr]
    ok, msg = store.verify()
    assert ok and msg.startswith(f"{len(history)} entries, chain intact")


def test_a_failed_commit_leaves_nothing_half_written(store: RolloutStore) -> None:
    rid, sim = logged_journey(store)
    before = (store.get(rid), store.history(rid), store.ticks(rid))
    bad = sim.decisions[-1].to_dict() | {"now": math.nan}  # strict JSON refuses NaN
    with pytest.raises(ValueError):
        store.commit(rid, {"phase": "changed"}, {"judges": {}}, 1.0, {"now": 1.0}, bad)
    assert (store.get(rid), store.history(rid), store.ticks(rid)) == before
    store.commit(rid, sim.state.to_dict(), {}, 2.0)  # the store is still usable
    assert store.verify()[0]


def test_the_log_is_one_chain_across_rollouts(stores: Stores, store: RolloutStore) -> None:
    a, _ = logged_journey(store)
    b, _ = logged_journey(store)
    assert store.rollouts("m") == [a, b] and store.latest("m").id == b  # type: ignore[union-attr]
    everything = store.history()
    assert len(everything) == len(store.history(a)) + len(store.history(b))
    prev = GENESIS
    for body, p, h in stores.sql("SELECT body, prev, hash FROM log ORDER BY seq"):
        assert p == prev and h == chain_hash(prev, body)
        prev = h
    assert store.verify()[0]


def test_verify_finds_an_altered_entry(stores: Stores, store: RolloutStore) -> None:
    logged_journey(store)
    stores.sql("UPDATE log SET body = replace(body, 'pause by', 'approve by') WHERE seq = 3")
    assert store.verify() == (False, "entry 3: contents do not match its hash (altered)")
    assert stores().verify()[0] is False  # also seen by a fresh process


def test_verify_finds_a_removed_entry(stores: Stores, store: RolloutStore) -> None:
    logged_journey(store)
    stores.sql("DELETE FROM log WHERE seq = 4")
    ok, msg = store.verify()
    assert not ok and msg.startswith("entry 5: previous-hash link broken")


@pytest.mark.parametrize("what", ["rows", "bodies"])
def test_verify_finds_a_reordered_pair(stores: Stores, store: RolloutStore, what: str) -> None:
    logged_journey(store)
    rows = {s: r for s, *r in stores.sql("SELECT seq, ts, body, prev, hash FROM log")}
    cols = "ts = ?, body = ?, prev = ?, hash = ?" if what == "rows" else "body = ?"
    pick = (lambda r: tuple(r)) if what == "rows" else (lambda r: (r[1],))
    stores.sql(f"UPDATE log SET {cols} WHERE seq = 5", (*pick(rows[6]),))
    stores.sql(f"UPDATE log SET {cols} WHERE seq = 6", (*pick(rows[5]),))
    ok, msg = store.verify()
    assert not ok and msg.startswith("entry 5:")


def test_verify_finds_a_removed_last_entry(stores: Stores, store: RolloutStore) -> None:
    logged_journey(store)
    stores.sql("DELETE FROM log WHERE seq = (SELECT max(seq) FROM log)")
    assert store.verify()[0] is False


# -- resuming after a crash ------------------------------------------------------------------

ERR = {1: {"v2": 0.05}}  # attempt 1 fails, attempt 2 is healthy
COMMANDS = {20: Command("retry", actor="ops")}
TICKS = 56
SEED = 3


def comparable(store: RolloutStore, rid: int) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("log_seq", "rollout")}
            for e in store.history(rid)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The log of a run that never crashed (SQLite: the other backend must match it)."""
    store = Store(tmp_path_factory.mktemp("ref") / "r.db")
    core = ControllerCore.create(store, core_spec(), 0.0, 0)
    drive(core, range(TICKS), seed=SEED, err=ERR, commands=COMMANDS)
    phases = [e["phase_to"] for e in store.history(core.rollout)]
    assert phases == ["deploying", "canary", "rolled_back", "deploying", "canary", "canary",
                      "promoted", "completed"]
    out = comparable(store, core.rollout)
    store.close()
    return out


@pytest.mark.parametrize("crash_at", [1, 5, 21, 30, 42])
def test_a_restarted_controller_resumes_where_it_was(
    stores: Stores, reference: list[dict[str, Any]], crash_at: int
) -> None:
    first = stores()
    core = ControllerCore.create(first, core_spec(), 0.0, 0)
    drive(core, range(crash_at), seed=SEED, err=ERR, commands=COMMANDS)
    # the process dies here: no close, no goodbye; a new one opens the same store
    second = stores()
    loaded = ControllerCore.load(second, "m")
    assert loaded is not None and loaded.rollout == core.rollout
    assert loaded.state == core.state  # same phase, step, epoch, counts, attempt
    assert (loaded.state.phase, loaded.state.step, loaded.state.epoch) == (
        core.state.phase, core.state.step, core.state.epoch)
    assert loaded.judge_states() == core.judge_states()
    drive(loaded, range(crash_at, TICKS), seed=SEED, err=ERR, commands=COMMANDS)
    log = comparable(second, loaded.rollout)
    assert log == reference  # same decisions, same hashes: nothing lost, nothing twice
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert second.verify()[0]
    assert replay_rollout(second, loaded.rollout)[0]


def test_load_finds_nothing_for_an_unknown_model_and_the_latest_otherwise(
        store: RolloutStore) -> None:
    assert ControllerCore.load(store, "m") is None
    a = ControllerCore.create(store, core_spec(), 0.0, 0)
    b = ControllerCore.create(store, core_spec(rollback_window_s=9.0), 1.0, 4)
    loaded = ControllerCore.load(store, "m")
    assert loaded is not None and loaded.rollout == b.rollout != a.rollout
    assert loaded.spec == b.spec and loaded.state.epoch == 4
    assert ControllerCore.load(store, "other") is None


class FlakyStore(Store):
    """A store whose next commit fails as a locked or full disk would (SQLite only: what is
    tested is the core, not the store)."""

    fail = False

    def commit(self, *args: Any, **kw: Any) -> None:
        if self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database is locked")
        super().commit(*args, **kw)


@pytest.mark.parametrize("kind", ["command", "events"])
def test_a_failed_commit_does_not_advance_the_core(tmp_path: Path, kind: str) -> None:
    store = FlakyStore(tmp_path / "rollouts.db")
    core = ControllerCore.create(store, core_spec(), 0.0, 0)
    drive(core, range(5), seed=SEED)
    before = (core.state, core.judge_states())
    store.fail = True
    with pytest.raises(sqlite3.OperationalError):
        if kind == "command":
            core.tick(6.0, command=Command("abort"))
        else:
            drive(core, [5], seed=SEED, err={1: {"v2": 1.0}})
    assert (core.state, core.judge_states()) == before
    store.close()


def test_resume_keeps_the_spec_order_of_checks_so_replay_matches(stores: Stores) -> None:
    """The store sorts JSON keys; checks listed out of alphabetical order must come back in
    the spec's order, or every later decision's evidence (and so the replay) would differ."""
    doc = core_spec().model_dump(mode="json")
    doc["analysis"]["checks"] = list(reversed(doc["analysis"]["checks"]))  # latency, errors
    spec = RolloutSpec.model_validate(doc)
    store = stores()
    core = ControllerCore.create(store, spec, 0.0, 0)
    drive(core, range(10), seed=SEED)
    loaded = ControllerCore.load(stores(), spec.model)  # a restarted controller
    assert loaded is not None and list(loaded.judges["v2"]) == ["latency", "errors"]
    core = loaded
    drive(core, range(10, 40), seed=SEED)
    assert replay_rollout(store, core.rollout)[0]
