"""The pure decision core: ``decide(state, spec, observation) -> (state, actions, decision)``.

No Ray, no clock, no randomness: time comes in ``observation.now``. The same inputs always give
the same outputs, which is what makes a recorded rollout replayable.

Rules, in order:

1. A person's command (pause, resume, approve, promote, abort, retry, undo) is applied first;
   one the phase table does not allow raises ``IllegalTransition``.
2. Any FAIL of a candidate's check — in any active phase, paused or awaiting approval included —
   withdraws that candidate at once; when none is left the rollout is rolled back. Rollback is
   a routing-table change first (all weight to stable, shadow off), deletions after.
3. A step is left when its minimum duration and candidate requests are reached and every check
   of every active candidate is PASS. INCONCLUSIVE and ERROR hold the step (never promote;
   with a progress deadline, rule 8 pauses a step held too long).
4. After the last step the (single surviving) candidate is promoted: it becomes stable at 100%
   and the old stable stays warm for ``rollback_window_s`` so ``undo`` is instant.
5. Health, every tick (``rayrollout.controller.capacity``): a candidate that has no live
   replica while it takes traffic (shadow, canary, awaiting approval, paused from one of them:
   its app is gone, failed, unhealthy with no replica running, or none of the replicas it had
   runs) fails the check named ``health``, exactly as a FAIL of a judge, so it is withdrawn
   (rolled back when it was the last) in the tick that sees it; the reason names the cause and
   Serve's message. A stable with no live replica is reported (log entry and notification,
   once when it goes, once when it is back), never rolled back: there is nothing to roll back
   to.
6. Reconcile: when the routers hold a newer epoch than the state (a store that lost commits,
   or an old copy of it), the state moves above the routers' epoch and the table is pushed
   again, with a log entry that gives both epochs; otherwise every push would be ignored.
7. Capacity follows traffic (``rayrollout.controller.capacity``): before traffic moves up (a
   step, a promotion), the versions it moves to are sized for it (``scale`` actions) and, with
   ``strategy.capacity.wait``, the move waits until those replicas run. The wait is logged once
   with the sizes; a FAIL meanwhile still rolls back at once, and the stable is never scaled
   down, so a rollback needs no capacity.
8. Progress deadline (``strategy.progress_deadline_s``; None: none, a phase may hold for
   ever): a shadow phase or canary step that something other than its minimum duration holds
   (a check INCONCLUSIVE or ERROR, a candidate with no results, fewer requests or comparisons
   than it needs: the ``holds`` entries of ``explain.waiting_for``) for longer than the
   deadline is paused, a decision of kind ``deadline`` whose reason names each such check and
   what it still waits for, and notified. The clock starts when the phase is entered or
   resumed and restarts whenever nothing holds it (``RolloutState.holding_since``); it does not
   run while a move waits for capacity. A FAIL is judged first (rule 2): it still rolls back
   at once, paused or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.controller.capacity import no_live_replica, promotion_sizes, share_size
from rayrollout.controller.explain import summary, waiting_for
from rayrollout.controller.phases import ACTIVE, TERMINAL, VERBS, IllegalTransition, Phase, check
from rayrollout.controller.state import (
    Action,
    Candidate,
    Command,
    Decision,
    Observation,
    RolloutState,
)
from rayrollout.spec import RolloutSpec


def initial_state(spec: RolloutSpec, now: float, epoch: int = 0) -> RolloutState:
    """A rollout that has not started; ``epoch`` is the routing epoch currently in force."""
    return RolloutState(
        model=spec.model,
        stable=spec.stable.name,
        candidates=tuple(Candidate(c.name) for c in spec.candidates),
        weights={spec.stable.name: 100.0},
        epoch=epoch,
        phase_since=now,
    )


@dataclass
class _Step:
    """Accumulates one decision: the evolving state, its actions and reasons."""

    state: RolloutState
    spec: RolloutSpec
    now: float
    capacity: dict[str, int] = field(default_factory=dict)  # running replicas per version
    actions: list[Action] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    start_active: frozenset[str] = frozenset()  # candidates active when this decision began
    kind: str = ""  # the decision's own kind (``Decision.kind``), if it has one

    def __post_init__(self) -> None:
        self.start_active = frozenset(self.state.active())

    def go(self, dst: Phase, reason: str, **kw: object) -> None:
        """Enter ``dst`` now: the phase's counters and its progress deadline start afresh."""
        check(self.state.phase, dst)
        timed = dst in _TIMED and self.spec.strategy.progress_deadline_s is not None
        kw.setdefault("holding_since", self.now if timed else None)
        s = self.state.evolve(phase=dst, phase_since=self.now, **kw)
        self.state = s.evolve(phase_counts={"step_requests": s.step_requests,
                                            "shadow_compared": s.shadow_compared})
        self.reasons.append(reason)

    def routes(self, weights: dict[str, float], shadow: str | None = None,
               fraction: float = 0.0) -> None:
        s = self.state
        if weights == s.weights and shadow == s.shadow and fraction == s.shadow_fraction:
            return
        epoch = s.epoch + 1
        self.state = s.evolve(epoch=epoch, weights=weights, shadow=shadow,
                              shadow_fraction=fraction)
        self.actions.append(Action("routes", epoch=epoch, weights=weights, shadow=shadow,
                                   shadow_fraction=fraction))

    def notify(self, message: str) -> None:
        self.actions.append(Action("notify", message=message))

    def set_candidate(self, name: str, status: str, reason: str) -> None:
        cands = tuple(
            Candidate(c.name, status, reason) if c.name == name else c
            for c in self.state.candidates
        )
        self.state = self.state.evolve(candidates=cands)


def decide(
    state: RolloutState, spec: RolloutSpec, obs: Observation
) -> tuple[RolloutState, list[Action], Decision | None]:
    """The next state, the actions to take (in order), and the log entry if anything changed."""
    st = _Step(state, spec, obs.now, dict(obs.capacity))
    _reconcile(st, obs.router_epoch)
    if obs.command is not None:
        _command(st, obs.command)
    else:
        obs = replace(obs, results=_with_health(st.state, spec, obs))
        _tick(st, obs)
    if not st.actions and st.state.phase == state.phase and not st.reasons:
        return st.state, [], None
    new = st.state.evolve(seq=state.seq + 1)
    evidence = {c: [r.to_dict() for r in rs] for c, rs in obs.results.items()}
    decision = Decision(
        seq=new.seq,
        now=obs.now,
        phase_from=str(state.phase),
        phase_to=str(new.phase),
        step=new.step,
        epoch=new.epoch,
        actions=st.actions,
        reason="; ".join(st.reasons) or "no change",
        evidence=evidence,
        actor=obs.command.actor if obs.command else "controller",
        request=obs.command.request if obs.command else "",
        kind=st.kind,
    )
    return new, st.actions, decision


# -- ticks -----------------------------------------------------------------------------------


def _tick(st: _Step, obs: Observation) -> None:
    s = st.state
    if s.phase == Phase.PENDING:
        st.go(Phase.DEPLOYING, f"deploying {', '.join(s.active())}")
        _deploy(st, s.active())
        return
    _stable_health(st, obs.health)
    s = st.state
    if s.phase == Phase.PROMOTED:
        if s.retire_at is not None and obs.now >= s.retire_at:
            old = s.previous_stable
            st.go(Phase.COMPLETED, f"rollback window over: retiring {old}",
                  previous_stable=None, retire_at=None)
            if old:
                st.actions.append(Action("delete", version=old))
            _release_floor(st, st.state.stable)
        return
    if s.phase not in ACTIVE:
        return
    _count(st, obs)
    if _judge(st, obs) or st.state.phase not in ACTIVE:
        return
    s = st.state
    if s.pending is not None and s.phase != Phase.PAUSED:
        _move(st, s.pending)  # a move that passed, waiting for its replicas
        return
    if s.phase == Phase.DEPLOYING:
        _deploying(st, obs)
    elif s.phase == Phase.SHADOW:
        sh = st.spec.strategy.shadow
        assert sh is not None
        if (obs.now - s.phase_since >= sh.min_duration_s
                and s.shadow_compared >= sh.min_comparisons):
            _move(st, {"move": "step", "to": 0, "why": f"shadow done: {s.shadow_compared} "
                       "comparisons, no check failed"})
    elif s.phase == Phase.CANARY:
        _maybe_leave_step(st, obs)
    if (st.state.phase == s.phase and st.state.step == s.step and st.state.pending is None
            and s.phase in _TIMED):
        _deadline(st, obs)


def _deadline(st: _Step, obs: Observation) -> None:
    """Rule 8: pause a shadow phase or canary step held for longer than the deadline."""
    limit = st.spec.strategy.progress_deadline_s
    if limit is None:
        return
    s = st.state
    held = [e for e in waiting_for(s, st.spec, obs.results, st.now) if e["holds"]]
    if not held or s.holding_since is None:  # nothing holds it / it begins to hold now
        since = None if not held else st.now
        if s.holding_since != since:
            st.state = s.evolve(holding_since=since)
        return
    if st.now - s.holding_since <= limit:
        return
    where = (f"step {s.step + 1} ({st.spec.strategy.steps[s.step].weight:g}%)"
             if s.phase == Phase.CANARY else "the shadow phase")
    what = summary(held)
    st.kind = "deadline"
    st.go(Phase.PAUSED, f"progress deadline: {where} held for {st.now - s.holding_since:.0f} s "
          f"> progress_deadline_s={limit:g} by {what}; paused (resume for a fresh deadline, "
          "promote, or abort)", paused_from=s.phase)
    st.notify(f"{s.model}: paused by the progress deadline: {where} held for "
              f"{st.now - s.holding_since:.0f} s by {what}")


def _deploying(st: _Step, obs: Observation) -> None:
    failed = {v: e for v, e in obs.failed_deploys.items() if v in st.state.active()}
    for v, err in failed.items():
        st.set_candidate(v, "failed", f"deploy failed: {err}")
    if failed and not st.state.active():
        _rollback(st, f"deploy failed: {failed}")
        return
    for v, err in failed.items():  # the others go on; the failed app is cleaned up now
        st.reasons.append(f"{v} deploy failed: {err}")
        st.actions.append(Action("delete", version=v))
    if all(v in obs.ready for v in st.state.active()):
        _enter_first(st)


def _count(st: _Step, obs: Observation) -> None:
    s = st.state
    active = s.active()
    if s.phase == Phase.CANARY and active:
        new = min(obs.requests.get(c, 0) for c in active)
        st.state = s.evolve(step_requests=s.step_requests + new)
    if s.shadow:
        st.state = st.state.evolve(shadow_compared=st.state.shadow_compared + obs.shadow_compared)


def _judge(st: _Step, obs: Observation) -> bool:
    """Withdraw every candidate with a FAIL; roll back if none is left. True if it rolled back."""
    failed = []
    for name in st.state.active():
        bad = [r for r in obs.results.get(name, []) if r.verdict == Verdict.FAIL]
        if bad:
            why = "; ".join(f"{r.check}: {r.reason}" for r in bad)
            st.set_candidate(name, "failed", why)
            failed.append(f"{name} failed {why}")
    if not failed:
        return False
    if not st.state.active():
        _rollback(st, "; ".join(failed))
        return True
    st.reasons.extend(failed)
    _apply_step_table(st)
    for f in failed:
        name = f.split(" ", 1)[0]
        st.actions.append(Action("delete", version=name))
    return False


def _all_pass(results: dict[str, list[CheckResult]], active: list[str]) -> tuple[bool, str]:
    holding = []
    for name in active:
        rs = results.get(name, [])
        if not rs:
            holding.append(f"{name}: no results")
        holding += [f"{name}.{r.check} {r.verdict.name}" for r in rs if r.verdict != Verdict.PASS]
    return not holding, ", ".join(holding)


def _maybe_leave_step(st: _Step, obs: Observation) -> None:
    s = st.state
    step = st.spec.strategy.steps[s.step]
    need = st.spec.step_need(s.step)  # to catch what analysis.detect asks for
    if (obs.now - s.phase_since < step.min_duration_s
            or s.step_requests < max(step.min_requests, need)):
        return
    ok, _holding = _all_pass(obs.results, s.active())
    if not ok:
        return
    enough = f" (>= {need} to catch {st.spec.step_needs()[s.step][1]})" if need else ""
    why = (f"step {s.step + 1} ({step.weight:g}%) passed: {s.step_requests} requests{enough} in "
           f"{obs.now - s.phase_since:.0f} s, every check PASS")
    if step.approval:
        st.go(Phase.AWAITING_APPROVAL, why + "; waiting for approval")
        st.notify(f"{st.spec.model}: step {s.step + 1} waits for approval")
        return
    _advance(st, why)


def _advance(st: _Step, why: str) -> None:
    s = st.state
    nxt = s.step + 1
    if nxt < len(st.spec.strategy.steps):
        _move(st, {"move": "step", "to": nxt, "why": why})
    elif len(s.active()) == 1:
        _move(st, {"move": "promote", "to": s.active()[0], "why": why})
    else:
        if s.phase != Phase.AWAITING_APPROVAL:
            st.go(Phase.AWAITING_APPROVAL, why + f"; pick one of {s.active()} to promote")


# -- health and reconciliation ---------------------------------------------------------------

HEALTH = "health"  # the name of the check a candidate with no live replica fails
# Phases in which a candidate has been running (and takes traffic or mirrored requests).
_SERVING = frozenset({Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL})
# Phases the progress deadline applies to.
_TIMED = frozenset({Phase.SHADOW, Phase.CANARY})


def _with_health(s: RolloutState, spec: RolloutSpec, obs: Observation
                 ) -> dict[str, list[CheckResult]]:
    """The judges' results, plus a FAIL of the ``health`` check for each active candidate that
    has no live replica although it had them (it is serving: its app was RUNNING)."""
    serving = s.phase in _SERVING or (s.phase == Phase.PAUSED and s.paused_from in _SERVING)
    if obs.health is None or not serving:
        return obs.results
    out = dict(obs.results)
    for name in s.active():
        fact = obs.health.get(name)
        why = no_live_replica(spec, name, s.sizes, fact)
        if why is None or fact is None:
            continue
        running = int(fact.get("replicas", -1))
        out[name] = [*out.get(name, []), CheckResult(
            check=HEALTH, verdict=Verdict.FAIL, statistic="running_replicas",
            value=float(running) if running >= 0 else None,
            counts={"running_replicas": max(running, 0)}, reason=why)]
    return out


def _stable_health(st: _Step, health: dict[str, dict[str, Any]] | None) -> None:
    """Report a stable with no live replica (once, when it goes) and its recovery (once).
    Not while the rollout deploys: a start may have deployed the stable a moment ago, and its
    replicas starting are not replicas lost."""
    s = st.state
    if health is None or s.phase in TERMINAL or s.phase in (Phase.PENDING, Phase.DEPLOYING):
        return
    why = no_live_replica(st.spec, s.stable, s.sizes, health.get(s.stable))
    was = s.down.get(s.stable)
    if why is not None and was is None:
        st.state = s.evolve(down={**s.down, s.stable: why})
        st.reasons.append(f"{HEALTH}: stable {s.stable} has no live replica: {why} (reported, "
                          "not rolled back: it is the stable)")
        st.notify(f"{s.model}: stable {s.stable} has no live replica ({why})")
    elif why is None and was is not None:
        st.state = s.evolve(down={v: w for v, w in s.down.items() if v != s.stable})
        st.reasons.append(f"{HEALTH}: stable {s.stable} is live again (was: {was})")
        st.notify(f"{s.model}: stable {s.stable} is live again")


def _reconcile(st: _Step, router_epoch: int | None) -> None:
    """Routers at a newer epoch than the state: move above it and push the current table."""
    s = st.state
    if router_epoch is None or router_epoch <= s.epoch:
        return
    epoch = router_epoch + 1
    st.state = s.evolve(epoch=epoch)
    st.actions.append(Action("routes", epoch=epoch, weights=dict(s.weights), shadow=s.shadow,
                             shadow_fraction=s.shadow_fraction))
    st.reasons.append(f"reconciled: routers at epoch {router_epoch}, store at epoch {s.epoch} "
                      "(the store lost commits, or is an older copy); the table in the store "
                      f"is pushed again as epoch {epoch}")
    st.notify(f"{s.model}: routers were at epoch {router_epoch} but the store at {s.epoch}; "
              f"reconciled at epoch {epoch}")


# -- capacity --------------------------------------------------------------------------------


def _move(st: _Step, move: dict[str, Any]) -> None:
    """Enter step ``to`` or promote candidate ``to`` once the replicas it needs run."""
    if move["move"] == "step":
        i = int(move["to"])
        share = st.spec.strategy.steps[i].weight / 100.0
        sizes = {c: n for c in st.state.active()
                 if (n := share_size(st.spec, c, share)) is not None}
        shrink = _gate(st, sizes, move)
        if shrink is not None:
            _enter_step(st, i, move["why"])
            st.actions += shrink  # fewer replicas only once the traffic has moved down
    else:
        shrink = _gate(st, promotion_sizes(st.spec, move["to"], st.capacity), move)
        if shrink is not None:
            _promote(st, move["to"], move["why"])
            st.actions += shrink


def _gate(st: _Step, sizes: dict[str, int], move: dict[str, Any]) -> list[Action] | None:
    """Ask for ``sizes`` and say whether the move may go: None while it waits for replicas
    (every version must have its replicas running, unless ``capacity.wait`` is off), else the
    scale-downs to apply after it. Scale-ups are actions at once; a wait is logged once, when
    it begins."""
    s = st.state
    asked = dict(s.sizes)
    scaled, shrink = [], []
    waits = st.spec.strategy.capacity.wait and any(
        st.capacity.get(v, -1) < n for v, n in sizes.items())
    for v, n in sizes.items():
        if asked.get(v) == n:
            continue
        if v in asked and n < asked[v]:  # a scale-down waits for the move itself
            if not waits:
                shrink.append(Action("scale", version=v, replicas=n))
                scaled.append(f"{v} {asked[v]} -> {n}")
                asked[v] = n
            continue
        scaled.append(f"{v} {asked.get(v, '?')} -> {n}")
        asked[v] = n
        st.actions.append(Action("scale", version=v, replicas=n))
    if waits:
        if s.pending != move:
            have = ", ".join(f"{v} {max(st.capacity.get(v, 0), 0)} of {n}"
                             for v, n in sizes.items() if st.capacity.get(v, -1) < n)
            st.reasons.append(f"{move['why']}; waiting for capacity first (replicas running: "
                              f"{have})" + (f"; scaled {', '.join(scaled)}" if scaled else ""))
        st.state = s.evolve(sizes=asked, pending=move)
        return None
    if scaled:
        st.reasons.append(f"capacity: scaled {', '.join(scaled)} replicas")
    st.state = s.evolve(sizes=asked, pending=None)
    return shrink


def _deploy(st: _Step, names: list[str]) -> None:
    """Deploy candidates sized for the first share of traffic they get."""
    sh = st.spec.strategy.shadow
    share = sh.fraction if sh is not None else st.spec.strategy.steps[0].weight / 100.0
    sizes = dict(st.state.sizes)
    for name in names:
        n = share_size(st.spec, name, share)
        if n is not None:
            sizes[name] = n
        st.actions.append(Action("deploy", version=name, replicas=n))
    st.state = st.state.evolve(sizes=sizes)


def _release_floor(st: _Step, version: str) -> None:
    """An autoscaling version whose floor the rollout raised goes back to its own config."""
    if version in st.state.sizes and st.spec.version(version).autoscaling:
        sizes = {v: n for v, n in st.state.sizes.items() if v != version}
        st.state = st.state.evolve(sizes=sizes)
        st.actions.append(Action("scale", version=version))
        st.reasons.append(f"capacity: {version} autoscales on its own config again")


# -- transitions -----------------------------------------------------------------------------


def _enter_first(st: _Step) -> None:
    sh = st.spec.strategy.shadow
    if sh is not None:
        cand = st.state.active()[0]
        st.go(Phase.SHADOW, f"{cand} deployed: shadowing {sh.fraction:.0%} of requests",
              shadow_compared=0)
        st.routes(dict(st.state.weights), cand, sh.fraction)
    else:
        _enter_step(st, 0, f"{', '.join(st.state.active())} deployed")


def _enter_step(st: _Step, i: int, why: str) -> None:
    w = st.spec.strategy.steps[i].weight
    st.go(Phase.CANARY, f"{why}; step {i + 1}: {w:g}% to {', '.join(st.state.active())}",
          step=i, step_requests=0)
    _apply_step_table(st)


def _apply_step_table(st: _Step) -> None:
    s = st.state
    if s.phase not in (Phase.CANARY, Phase.AWAITING_APPROVAL, Phase.PAUSED) or s.step < 0:
        st.routes({s.stable: 100.0})
        return
    w = st.spec.strategy.steps[s.step].weight
    active = s.active()
    weights = {s.stable: 100.0 - w * len(active), **dict.fromkeys(active, w)}
    st.routes(weights)


def _rollback(st: _Step, why: str) -> None:
    s = st.state
    st.go(Phase.ROLLED_BACK, f"rolled back: {why}", paused_from=None, pending=None)
    st.routes({s.stable: 100.0})  # first: one table push, all weight to stable, shadow off
    for c in s.candidates:
        if c.status == "active":
            st.set_candidate(c.name, "withdrawn", why)
        if c.name in st.start_active:  # earlier withdrawals were deleted when they happened
            st.actions.append(Action("delete", version=c.name))
    st.notify(f"{s.model}: rolled back ({why})")


def _promote(st: _Step, name: str, why: str) -> None:
    s = st.state
    old = s.stable
    st.go(Phase.PROMOTED, f"{why}; promoted {name} to stable (was {old})",
          stable=name, previous_stable=old,
          retire_at=st.now + st.spec.rollback_window_s, paused_from=None, pending=None)
    st.set_candidate(name, "promoted", why)
    st.routes({name: 100.0})
    for other in st.state.active():
        st.set_candidate(other, "withdrawn", f"{name} was promoted")
        st.actions.append(Action("delete", version=other))
    st.notify(f"{s.model}: promoted {name}")


# -- commands --------------------------------------------------------------------------------


def refusal(state: RolloutState, spec: RolloutSpec, cmd: Command) -> str | None:
    """Why ``cmd`` cannot be applied to ``state`` now, or None if it can.

    The one rule for verbs: ``decide`` raises ``IllegalTransition`` with this reason, and
    ``allowed_verbs`` (the status page's buttons, the CLI's hints) lists the verbs it accepts."""
    s = state
    verb = VERBS.get(cmd.verb)
    if verb is None:
        return f"unknown verb {cmd.verb!r}; known: {', '.join(VERBS)}"
    if s.phase not in verb.phases:
        return verb.refused.format(phase=s.phase)
    active = s.active()
    last = s.step >= len(spec.strategy.steps) - 1
    if cmd.verb == "resume" and s.paused_from is None:
        return verb.refused.format(phase=s.phase)
    if cmd.verb == "approve" and last and len(active) > 1:
        return f"several candidates are active ({active}): promote one with candidate="
    if cmd.verb == "undo" and not s.previous_stable:
        return verb.refused.format(phase=s.phase)
    if cmd.verb == "promote":
        effective = s.paused_from if s.phase == Phase.PAUSED else s.phase
        if effective not in (Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL):
            return f"cannot promote in phase {s.phase} (paused from {effective})"
        if cmd.candidate is not None and cmd.candidate not in active:
            return f"{cmd.candidate!r} is not an active candidate: {active}"
        if cmd.full and cmd.candidate is None and len(active) > 1:
            return f"several candidates are active ({active}): name one"
    return None


def allowed_verbs(state: RolloutState, spec: RolloutSpec) -> list[str]:
    """The verbs ``decide`` accepts in ``state`` with their default arguments, in table order."""
    return [v for v in VERBS if refusal(state, spec, Command(v)) is None]


def _command(st: _Step, cmd: Command) -> None:
    s = st.state
    why_not = refusal(s, st.spec, cmd)
    if why_not is not None:
        raise IllegalTransition(why_not)
    who = f"{cmd.verb} by {cmd.actor}" + (f" ({cmd.reason})" if cmd.reason else "")
    if cmd.verb == "pause":
        st.go(Phase.PAUSED, who, paused_from=s.phase)
    elif cmd.verb == "resume":
        assert s.paused_from is not None
        st.go(s.paused_from, who, paused_from=None)
    elif cmd.verb == "approve":
        _advance(st, who)
    elif cmd.verb == "promote":
        _promote_cmd(st, cmd, who)
    elif cmd.verb == "abort":
        _rollback(st, who)
    elif cmd.verb == "undo":
        promoted, old = s.stable, s.previous_stable
        assert old is not None
        st.go(Phase.ROLLED_BACK, f"{who}: {old} is stable again", stable=old,
              previous_stable=None, retire_at=None)
        st.routes({old: 100.0})
        st.set_candidate(promoted, "withdrawn", who)
        st.actions.append(Action("delete", version=promoted))
        _release_floor(st, old)
    elif cmd.verb == "retry":
        cands = tuple(Candidate(c.name) for c in s.candidates)
        st.go(Phase.DEPLOYING, f"{who}: attempt {s.attempt + 1} with fresh judges and the full "
              "alpha (the false-rollback bound holds per attempt)", candidates=cands, step=-1,
              step_requests=0, attempt=s.attempt + 1, pending=None,
              sizes={v: n for v, n in s.sizes.items() if v == s.stable})
        _deploy(st, [c.name for c in cands])


def _promote_cmd(st: _Step, cmd: Command, who: str) -> None:
    s = st.state
    active = s.active()
    if s.phase == Phase.PAUSED:
        st.state = st.state.evolve(phase=s.paused_from or Phase.CANARY, paused_from=None)
    last = s.step >= len(st.spec.strategy.steps) - 1
    if cmd.full or (cmd.candidate and len(active) > 1 and last):
        name = cmd.candidate or active[0]
        _move(st, {"move": "promote", "to": name, "why": who})
        return
    if st.state.phase == Phase.SHADOW:
        _move(st, {"move": "step", "to": 0, "why": who})
    else:
        _advance(st, who)
