"""A bounded soak: fixed-rate load for minutes through back-to-back rollouts and rollbacks.

One local Ray session (Serve's default proxy mode, in a subprocess like the other serving
benchmarks), the rayrollout router in front of the digits models, and an **open-loop** client
in its own process: requests are *scheduled* at a fixed rate (default 40/s, loopback only,
held-out digits from ``models/heldout.npz``), each is sent when its time comes whatever the
server is doing, and the true label of every answered request is posted back to the router's
feedback route in batches. Meanwhile the driver runs rollouts back to back, one cycle being

    v1 -> v2            promoted    (canary 50 %, errors judged)
    v2 -> v2-regressed  rolled back (canary 50 %, the accuracy judge on the posted labels; an
                                     abort() only if no judge fires within --detect-timeout-s)
    v2 -> v1            promoted    (back where the cycle started)

and a sampler records every ``--sample-s`` seconds: the resident memory (RSS, via psutil) of the
rayrollout controller actor, every router replica and every version replica (and of Serve's own
controller and proxy), their PIDs taken from Ray's actor table; the controller store's size
(SQLite file + WAL + shared memory); and the event buffers' high-water marks.

**Event buffers.** The router does not export the depth of its ``Recorder`` buffers. They fill
between two ``collect()`` calls of the controller and are emptied by each, so the number of
events one tick drained *is* the buffer's depth just before that drain, i.e. its high-water mark
over that tick (exact with one router replica; with several, the tick's sum bounds each one).
The controller persists every tick's drained events in its store, so the sampler reads them
there (read-only, new ticks since the last sample), with the labelled-event buffer and the
controller's own arrival-order hold (``held`` in the rollout's judge state). Events lost to a
full buffer show as requests counted in a tick's aggregates without an event.

At the end it prints, per long-lived process, RSS at start / end / max with the end/start ratio
and a growth flag, the version replicas' incarnations, throughput, p50/p99, errors by version
and kind, rollouts by outcome, the store's size and the buffers' high-water marks, and writes
``benchmarks/results/soak.json``.

    python -m benchmarks.soak             # 600 s at 40 req/s, ~11.5 min
    python -m benchmarks.soak --quick     # 60 s, ~2 min: a smoke run
"""
