"""``explain.waiting_for``: what a rollout still waits for, from real judges' results on
synthetic traffic (so a change of the judges' wording that it reads fails here) and from
hand-made states for the phases around them."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.controller.core import ControllerCore
from rayrollout.controller.explain import deadline, rates, summary, waiting_for
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Command
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import Sim, core_spec, drive, make_spec, results

CHECKS = {"checks": [{"kind": "errors", "params": {"min_candidate_requests": 100}},
                     {"kind": "latency"}, {"kind": "latency_tail"}],
          "guards": [{"kind": "threshold_errors", "params": {"max_error_rate": 0.5}}]}


def running(ticks: int = 6, **kw: Any) -> ControllerCore:
    """A rollout on synthetic traffic (100 requests/s, 10% to v2 in step 1), ``ticks`` s in."""
    core = ControllerCore.create(None, core_spec(analysis=CHECKS, **kw), 0.0, 3)
    drive(core, range(ticks), seed=1)
    return core


def by(entries: list[dict[str, Any]], check: str) -> dict[str, Any]:
    return next(e for e in entries if e["check"] == check)


def test_real_judges_say_what_they_miss_with_counts_rates_and_etas() -> None:
    core = running()
    s, now = core.state, 6.0
    assert s.phase == Phase.CANARY and s.step == 0
    w = waiting_for(s, core.spec, core.last_results, now)
    json.dumps(w)  # the status is JSON
    rate = s.step_requests / (now - s.phase_since)  # the step's candidate requests per second
    step = by(w, "step")
    assert step["kind"] == "requests" and step["holds"] and step["candidate"] is None
    assert (step["have"], step["need"]) == (s.step_requests, 200)
    assert step["rate_per_s"] == round(rate, 3)
    assert step["eta_s"] == round((200 - s.step_requests) / rate, 1)
    errors = by(w, "errors")
    verdict = next(r for r in core.last_results["v2"] if r.check == "errors")
    assert verdict.verdict == Verdict.INCONCLUSIVE and errors["verdict"] == "INCONCLUSIVE"
    assert errors["what"] == "candidate requests" and errors["need"] == 100
    assert errors["text"] == (f"needs {100 - errors['have']} more candidate requests at the "
                              f"current rate (~{rate:.1f}/s: ~{(100 - errors['have']) / rate:.0f}"
                              " s)")
    tail = by(w, "latency_tail")  # counts baseline latencies: the stable's rate, 9x v2's here
    assert tail["what"].startswith("baseline latencies") and tail["need"] == 1000
    assert abs(tail["rate_per_s"] - 9 * rate) < 0.01
    assert {e["check"] for e in w} == {"step", "errors", "latency_tail"}  # PASS: not listed
    assert summary(w).startswith("step: needs ")


def test_a_check_is_listed_only_while_it_is_not_pass() -> None:
    core = running(16)
    assert core.state.phase == Phase.CANARY
    verdicts = {r.check: r.verdict for r in core.last_results["v2"]}
    w = waiting_for(core.state, core.spec, core.last_results, 16.0)
    assert {e["check"] for e in w if e["kind"] == "check"} == {
        c for c, v in verdicts.items() if v != Verdict.PASS}
    assert verdicts["errors"] == Verdict.PASS and verdicts["latency"] == Verdict.PASS
    # latency_tail has its reference but sets its threshold at the next period: its count
    # is no longer short, so its reason is shown as it is
    tail = by(w, "latency_tail")
    assert tail["have"] is None and tail["text"].startswith("inconclusive: not enough data")


def test_an_error_or_an_unexplained_inconclusive_shows_the_checks_reason() -> None:
    core = running()
    res = {"v2": [CheckResult("promql", Verdict.ERROR, reason="Prometheus at "
                              "http://prom:9090 did not answer: ConnectError"),
                  CheckResult("kpi", Verdict.INCONCLUSIVE, reason="the query returned no "
                              "series for v2"),
                  CheckResult("errors", Verdict.PASS, reason="fine")]}
    w = waiting_for(core.state, core.spec, res, 6.0)
    assert by(w, "promql")["text"] == ("cannot judge: Prometheus at http://prom:9090 did not "
                                       "answer: ConnectError")
    assert by(w, "kpi")["text"] == "inconclusive: the query returned no series for v2"
    assert by(w, "promql")["holds"] and by(w, "promql")["verdict"] == "ERROR"
    long = {"v2": [CheckResult("x", Verdict.ERROR, reason="y" * 5000)]}
    assert len(by(waiting_for(core.state, core.spec, long, 6.0), "x")["text"]) < 320


def test_a_paused_step_gives_counts_without_a_rate_and_a_resume_a_true_rate() -> None:
    core = running(8)
    core.tick(8.5, command=Command("pause"))
    paused = waiting_for(core.state, core.spec, core.last_results, 30.0)
    step = by(paused, "step")
    assert step["rate_per_s"] is None and step["eta_s"] is None
    assert step["text"].endswith("(the step counts none while paused)")
    core.tick(30.0, command=Command("resume"))
    before = core.state.step_requests
    assert core.state.phase_counts["step_requests"] == before  # counted from the resume on
    assert rates(core.state, 31.0).candidate == 0.0  # nothing new yet: not the old count / 1 s
    moved = replace(core.state, step_requests=before + 20)
    assert rates(moved, 32.0).candidate == 10.0


def test_the_step_says_what_analysis_detect_needs() -> None:
    doc: dict[str, Any] = {"detect": {"errors_ratio": 3, "base_error_rate": 0.01}}
    spec = make_spec(analysis={"checks": [{"kind": "errors"}], **doc})
    need, why = spec.step_needs()[0]
    sim = Sim(spec)
    sim.to_canary()
    sim.tick(10.0, verdict=Verdict.PASS, requests=50)
    step = by(waiting_for(sim.state, spec, results({"v2": Verdict.PASS}, ("errors",)),
                          sim.now), "step")
    assert step["need"] == need and step["text"] == (
        f"needs {need - 50:,} more candidate requests at the current rate (~5.0/s: "
        f"~{_dur((need - 50) / 5.0)}) to catch {why}")


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def test_time_approval_capacity_and_shadow_entries() -> None:
    spec = make_spec(steps=[{"weight": 10, "min_duration_s": 600, "approval": True}, 50],
                     shadow={"min_comparisons": 100, "min_duration_s": 60})
    sim = Sim(spec)
    sim.to_canary()
    assert sim.state.phase == Phase.SHADOW
    sim.tick(10.0, verdict=Verdict.INCONCLUSIVE, shadow_compared=20)
    w = waiting_for(sim.state, spec, results({"v2": Verdict.INCONCLUSIVE}), sim.now)
    assert [(e["check"], e["kind"], e["holds"]) for e in w] == [
        ("shadow", "comparisons", True), ("shadow", "duration", False)]
    assert w[0]["text"] == "needs 80 more shadow comparisons at the current rate (~2.0/s: ~40 s)"
    assert w[1]["text"] == "min_duration_s: ~50 s more of 60 s"
    sim.tick(60.0, verdict=Verdict.PASS, shadow_compared=100)
    assert sim.state.phase == Phase.CANARY
    sim.tick(10.0, verdict=Verdict.PASS, requests=5)
    assert [e["kind"] for e in waiting_for(sim.state, spec, {"v2": []}, sim.now)] == [
        "duration", "check"]  # no results yet: "waits for its first check results"
    sim.pass_step()
    assert sim.state.phase == Phase.AWAITING_APPROVAL
    assert waiting_for(sim.state, spec, {}, sim.now) == [{
        "candidate": None, "check": "approval", "kind": "approval", "verdict": None, "what": "",
        "have": None, "need": None, "rate_per_s": None, "eta_s": None, "holds": False,
        "text": "waits for a person: approve (or promote, or abort)"}]
    sim.capacity = {"v1": 1, "v2": 0}
    sim.command("approve")
    assert sim.state.pending is not None
    (cap,) = waiting_for(sim.state, spec, {}, sim.now)
    assert cap["kind"] == "capacity" and cap["text"].startswith(
        "step 2 passed and waits for its replicas to run (asked: ")


def test_nothing_is_waited_for_outside_the_phases_that_hold() -> None:
    sim = Sim(make_spec())
    assert waiting_for(sim.state, sim.spec, {}, sim.now) == []  # pending
    sim.tick()
    assert waiting_for(sim.state, sim.spec, {}, sim.now) == []  # deploying
    sim.tick(ready=["v2"])
    sim.pass_step()
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED
    assert waiting_for(sim.state, sim.spec, {}, sim.now) == []


def test_the_deadline_as_the_status_shows_it() -> None:
    doc = core_spec().model_dump(mode="json")
    doc["strategy"]["progress_deadline_s"] = 100.0
    spec = RolloutSpec.model_validate(doc)
    sim = Sim(spec)
    sim.to_canary()
    assert deadline(sim.state, spec, sim.now + 30) == {
        "deadline_s": 100.0, "holding_since": sim.now, "left_s": 70.0}
    assert deadline(sim.state, spec, sim.now + 300)["left_s"] == 0.0  # type: ignore[index]
    assert deadline(sim.state, core_spec(), sim.now) is None  # no deadline set
