"""The shell: the only package that imports Ray.

* ``app`` — the Serve application builders named by configs (``build_ingress`` for any
  number of models, ``build_rollout`` and ``build_router`` for one, ``build_version``) and
  ``deploy``.
* ``ingress`` — the one ingress of every model as a Serve deployment (``serve.ingress`` of the
  gateway's Starlette app), with the catalog of models added at run time.
* ``version`` — ``ModelVersion``: one version's replicas, with dynamic batching.
* ``handles`` — the router's calls to versions through deployment handles.
* ``port`` — ``RayServePort``: the control plane's port on a real Ray Serve.
* ``actor`` — ``ControllerActor``: the named, detached Ray actor around the controller, and
  where it is placed.
* ``exporter`` — the router's aggregates as Prometheus metrics through Ray's metrics agent.
* ``local`` — an embedded local Ray with Serve, for the demo.
"""
