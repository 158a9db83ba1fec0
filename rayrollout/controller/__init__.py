"""The control plane without Ray: the phase table, the pure ``decide()``, the controller core
that judges, decides and persists, the durable store, and ``RolloutController``, which runs
rollouts tick by tick through the ``ServePort`` (``rayrollout.controller.port``).

* ``phases`` — phases, allowed transitions, verbs and the phases each verb is accepted in.
* ``state`` — the rollout's state, the tick's observation, actions and log entries (values).
* ``decide`` — ``decide(state, spec, observation) -> (state, actions, decision)``: pure.
* ``core`` — judges + ``decide`` + the store for one rollout; ``replay_rollout``.
* ``store`` — SQLite: state, judge states, tick inputs and the hash-chained decision log.
* ``controller`` — ``RolloutController`` (verbs, ``step()``) and ``run_loop``.
* ``port`` / ``fake`` — what the controller asks of Ray Serve, and an in-memory Ray Serve.

Nothing here imports Ray, reads a clock it was not given, or draws random numbers; the
import contracts in ``pyproject.toml`` check the first.
"""
