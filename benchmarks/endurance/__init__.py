"""The long forms of the load and chaos integration tests, which CI runs in a short form.

``python -m benchmarks.endurance`` runs ``tests/integration/test_load.py`` (a rollback and a
promotion under 32 concurrent clients, each rollout >= 60 s) and the controller-kill test of
``tests/integration/test_chaos.py`` (11 kills in one rollout: one while it deploys, five in
each of two 30 s canary steps) with ``RAYROLLOUT_LONG_FORM=1``: the same test code and the same
assertions as in CI, with more clients, longer steps and more faults. It reports what each
test measured (requests sent, received and recorded by the controller, failed requests, seconds
for a killed controller to answer again) and writes ``results/endurance.json``.
"""
