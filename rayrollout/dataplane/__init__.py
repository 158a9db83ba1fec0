"""The data plane's pure code: what happens to every request, with no Ray and no HTTP server.

* ``routing`` — the immutable ``RoutingTable`` and the policies that pick a version (pin,
  sticky key, weighted draw).
* ``protocol`` — wire formats (``/v1`` JSON, Open Inference Protocol v2 with binary tensors) and
  input validation against a model's signature; ``tensors`` — one input to an array, refusing
  what its datatype cannot hold (out-of-range integers, overflowing floats, odd shapes).
* ``events`` — the per-request records the judges consume (request, shadow, labelled).
* ``aggregates`` — the router's mergeable counters and bounded event buffer (``Recorder``).
* ``feedback`` — joining posted labels to served requests.
* ``compare`` — shadow-vs-primary disagreement.
* ``metrics`` — every Prometheus metric, its labels and buckets, declared once.

Modules import one another directly (``from rayrollout.dataplane.routing import ...``); this
package file re-exports nothing, so importing one module never loads the others.
"""
