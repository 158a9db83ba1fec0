"""Replay: a recorded rollout, fed back to fresh judges and ``decide``, decides the same. Each
scenario is recorded once (SQLite) and copied into this test's store, on both backends."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rayrollout.controller.core import ControllerCore, replay, replay_rollout
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Command, RolloutState
from rayrollout.controller.store import RolloutStore, Store, canonical
from rayrollout.errors import NotFound
from tests.unit.controller.conftest import Stores
from tests.unit.controller.helpers import core_spec, drive

SCENARIOS: dict[str, dict[str, Any]] = {
    # pause/resume in the middle of step 1, then a person skips step 2
    "commands": {"seed": 1, "err": {}, "commands": {
        8: Command("pause", actor="ann"), 12: Command("resume", actor="ann"),
        30: Command("promote", actor="bob", reason="looks fine")}},
    # a bad candidate is rolled back by the errors judge, retried healthy, promoted
    "rollback-retry": {"seed": 3, "err": {1: {"v2": 0.05}},
                       "commands": {20: Command("retry", actor="ops")}},
    # promoted at 31 s, then undone within the 5 s window
    "undo": {"seed": 1, "err": {}, "commands": {33: Command("undo")}},
    # nothing but traffic
    "plain": {"seed": 4, "err": {}, "commands": {}},
}


TICKS = 56
Record = Callable[[Stores, str], ControllerCore]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Each scenario recorded once, into its own closed (checkpointed) SQLite file."""
    out = {}
    folder = tmp_path_factory.mktemp("recordings")
    for name, sc in SCENARIOS.items():
        store = Store(folder / f"{name}.db")
        core = ControllerCore.create(store, core_spec(), 0.0, 3)
        drive(core, range(TICKS), sc["seed"], sc["err"], sc["commands"])
        assert core.state.seq == len(store.history(core.rollout))
        store.close()
        out[name] = (store.path, core.rollout)
    return out


@pytest.fixture
def record(recordings: dict[str, tuple[Path, int]]) -> Record:
    """A private copy of a scenario's recording in an empty store (tests tamper with it)."""

    def load(into: Stores, name: str) -> ControllerCore:
        path, rollout = recordings[name]
        into.load(path)
        core = ControllerCore.load(into(), "m")
        assert core is not None and core.rollout == rollout
        return core

    return load


def stored(core: ControllerCore) -> RolloutStore:
    assert core.store is not None
    return core.store


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_recorded_rollout_replays_identically(stores: Stores, record: Record, name: str
                                                ) -> None:
    core = record(stores, name)
    store = stored(core)
    same, replayed, recorded = replay_rollout(store, core.rollout)
    assert same and replayed == recorded
    assert len(recorded) == core.state.seq >= 5
    actors = {e["actor"] for e in recorded}
    assert "controller" in actors
    assert (len(actors) > 1) == (name != "plain")  # commands are in the log
    assert any(e["evidence"] for e in recorded)  # real judge results are compared too


def test_the_scenarios_do_what_they_say(tmp_path: Path, record: Record) -> None:
    phases = {}
    for n in SCENARIOS:  # what is checked is the recordings: SQLite only
        into = Stores("sqlite", str(tmp_path / f"{n}.db"))
        core = record(into, n)
        phases[n] = [e["phase_to"] for e in stored(core).history(core.rollout)]
        into.close()
    assert phases["commands"] == ["deploying", "canary", "paused", "canary", "canary",
                                  "promoted", "completed"]
    assert phases["rollback-retry"][:4] == ["deploying", "canary", "rolled_back", "deploying"]
    assert phases["rollback-retry"][-1] == "completed"
    assert phases["undo"][-2:] == ["promoted", "rolled_back"]
    assert phases["plain"][-2:] == ["promoted", "completed"]


def test_replay_of_the_ticks_alone_returns_the_decisions(stores: Stores, record: Record) -> None:
    core = record(stores, "commands")
    store = stored(core)
    row = store.get(core.rollout)
    assert row is not None
    decisions = replay(core.spec, RolloutState.from_dict(row.initial), store.ticks(core.rollout))
    assert [json.loads(canonical(d.to_dict())) for d in decisions] == [
        {k: v for k, v in e.items() if k not in ("log_seq", "rollout", "ts", "hash")}
        for e in store.history(core.rollout)]
    assert decisions[-1].phase_to == Phase.COMPLETED


def rewrite_tick(stores: Stores, rollout: int, index: int, change: Any) -> None:
    rows = stores.sql("SELECT id, inputs FROM ticks WHERE rollout = ? ORDER BY id", (rollout,))
    tick_id, blob = rows[index]
    inputs = json.loads(zlib.decompress(blob))
    change(inputs)
    stores.sql("UPDATE ticks SET inputs = ? WHERE id = ?",
               (zlib.compress(canonical(inputs).encode()), tick_id))


def candidate_tick(store: RolloutStore, rollout: int) -> int:
    """The index of a tick in step 1 with candidate traffic, before anything else happens."""
    for i, t in enumerate(store.ticks(rollout)):
        if 4 <= t["now"] <= 7 and any(e[1] == "v2" for e in t["events"]):
            return i
    raise AssertionError("no candidate traffic early in step 1")


def fail_candidate(inputs: dict[str, Any]) -> None:
    inputs["events"] = [[*e[:4], 1 if e[1] == "v2" else e[4], *e[5:]] for e in inputs["events"]]


def test_altering_one_stored_tick_makes_the_replay_differ(stores: Stores, record: Record) -> None:
    core = record(stores, "plain")
    store = stored(core)
    assert replay_rollout(store, core.rollout)[0]
    rewrite_tick(stores, core.rollout, candidate_tick(store, core.rollout), fail_candidate)
    same, replayed, recorded = replay_rollout(store, core.rollout)
    assert not same and replayed != recorded
    assert store.verify()[0]  # the log itself is intact: only the inputs were changed


@pytest.mark.parametrize("field", ["now", "ready", "command"])
def test_altering_other_tick_inputs_makes_the_replay_differ(
    stores: Stores, record: Record, field: str
) -> None:
    core = record(stores, "commands" if field == "command" else "plain")
    store = stored(core)
    ticks = store.ticks(core.rollout)
    if field == "now":
        i, change = 0, lambda t: t.update(now=t["now"] + 0.25)
    elif field == "ready":
        i = next(i for i, t in enumerate(ticks) if t["ready"])
        change = lambda t: t.update(ready=[])  # noqa: E731
    else:
        i = next(i for i, t in enumerate(ticks) if t["command"])
        change = lambda t: t["command"].update(actor="mallory")  # noqa: E731
    rewrite_tick(stores, core.rollout, i, change)
    assert replay_rollout(store, core.rollout)[0] is False


def test_altering_the_log_makes_the_replay_differ(stores: Stores, record: Record) -> None:
    core = record(stores, "commands")
    store = stored(core)
    stores.sql("UPDATE log SET body = replace(body, 'pause by ann', 'pause by eve')")
    assert replay_rollout(store, core.rollout)[0] is False
    with pytest.raises(NotFound, match="no rollout 999"):  # answered 404, not 500
        replay_rollout(store, 999)


def test_altered_inputs_that_make_a_recorded_command_illegal_report_a_difference(
    stores: Stores, record: Record
) -> None:
    core = record(stores, "commands")
    store = stored(core)
    rewrite_tick(stores, core.rollout, candidate_tick(store, core.rollout), fail_candidate)
    # the candidate now fails before the recorded pause, which can no longer be applied
    assert replay_rollout(store, core.rollout)[0] is False
