"""How fast does a rollback take the candidate out of service, under load? And does anything fail?

One local Ray session (Serve's default proxy mode, in a subprocess like the other serving
benchmarks), the rayrollout router in front of ``v1`` (stable) and ``v2`` (candidate), 32
concurrent closed-loop HTTP clients in a separate client process for the whole run, and one
rollout driven through many cycles by the Python API:

    start → deploying → canary 30 % → dwell → abort()      (a rollback)    → retry → ...
                          canary 30 % → promote(full=True) → dwell → undo() (a rollback of a
                                                                             promotion) → retry

A rollback is a routing-table change first (the controller decides, persists, then pushes the
new table to every router replica with ``DeploymentHandle.broadcast("set_routes", table)``);
the candidate's app is deleted after the push. Per rollback it measures:

* **server side** (the headline): last arrival at a router of a request that the router sent to
  the candidate, minus the controller's decision time (the decision log entry's ``now``, from
  ``Rollout.history()``). Arrival times are the routers' own per-request events (``t``, set
  when the request reaches ``Router._infer``, right before it reads the table it will be routed
  with), read back from the controller's store (``Store.ticks(rollout)``: the tick inputs the
  controller persisted after draining every router replica with ``collect()``; reading
  ``collect()`` here would race the controller's drain and lose events);
* **client side**: last response carrying ``x-model-version: v2`` minus the moment ``abort()``
  (or ``undo()``) returned to the caller (and the same for the last candidate request *sent*);
* the verb's round trip and its parts (call → decision, decision → returned), and how many
  candidate requests were in flight at the decision.

Over the whole run it counts every non-200 response (split by the ``x-model-version`` that
answered, and by whether it fell in a rollback or a promotion window) and every request served
by a version that is not in the routing table of its epoch (``x-routing-epoch`` on the client
side, ``epoch`` in the router's events; tables from the decision log's ``routes`` actions).
After the cycles, still under load, it times no-op ``set_routes`` broadcasts of the table in
force (same epoch: ignored by the routers) to show what one push costs.

    python -m benchmarks.rollback_latency            # 20 aborts + 4 promote/undo, ~5.5 min
    python -m benchmarks.rollback_latency --quick    # 5 aborts + 2 promote/undo, ~3 min

Also reported: "decision -> last candidate call finished" (router arrival + the router-measured
version-call latency) and "stranded" candidate requests: ones that arrived around the rollback
and waited > 2 s for a replica of the candidate's app, which the rollback deletes right after
the table push (they are answered only when ``retry`` redeploys the candidate, or time out with
a 504 after the router's ``request_timeout_s``).
"""
