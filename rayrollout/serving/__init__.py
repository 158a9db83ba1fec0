"""The shell: the only package that imports Ray.

* ``app`` — the Serve application builders named by configs (``build_version``,
  ``build_router``, ``build_rollout``) and ``deploy``.
* ``ingress`` — the router as a Serve deployment (``serve.ingress`` of its Starlette app).
* ``version`` — ``ModelVersion``: one version's replicas, with dynamic batching.
* ``handles`` — the router's calls to versions through deployment handles.
* ``port`` — ``RayServePort``: the control plane's port on a real Ray Serve.
* ``actor`` — ``ControllerActor``: the named, detached Ray actor around the controller.
* ``exporter`` — the router's aggregates as Prometheus metrics through Ray's metrics agent.
* ``local`` — an embedded local Ray with Serve, for the demo.
"""
