"""The HTTP ingress, without Ray: the router's routes (inference, feedback, metadata, health),
the admin API and the status page, as Starlette applications.

* ``router`` — ``Router``: splits, pins, validates and records; ``inference`` — its helpers
  (sticky keys, calling a version, error ids, the prediction summary); ``shadow`` — the mirror to a
  shadow version; ``platform`` — ``RouterPlatform``, what a router takes from the platform it
  runs on (versions, the control-plane port, the exporter).
* ``admin`` — ``AdminAPI``: the controller's verbs behind bearer tokens, and the page.
* ``versions`` — ``VersionClient`` (how the router calls a version) and ``LocalVersions``.
* ``http`` — strict JSON and the exception handlers of the one exception tree.

``rayrollout.serving.ingress`` runs the router as a Serve deployment; tests run it in-process.
"""
