"""Rows per second of one ONNX version served through the router, against onnxruntime in-process.

Two models, in turn: ``v2.onnx`` (a logistic regression: ~0.4 us a row on one core, the worst
case for any serving path) and ``v3-mlp.onnx`` (a 512-512 MLP: ~6 us a row).

Served: the model as one version (100% weight) behind the rayrollout router, dynamic batching
from the version's default config (``max_batch_size`` 32, ``batch_wait_timeout_s`` 0.002),
loaded over HTTP by a closed-loop client. Cells, in this order, per model, in one Ray session
per mode:

* ``json``: ``/v1`` predict, ``{"instances": [...]}``: 64 concurrent single-row requests (the
  worst case: per-request overhead against a model of a few us a row), and 32-row requests
  at c=8;
* ``binary``: what a batch-scoring user sends: OIP ``/v2/models/{model}/infer`` with the
  binary tensor extension (``Inference-Header-Content-Length``, ``binary_data_size``; FP32
  little-endian rows) asking for binary outputs (``binary_data_output``), over a sweep of rows
  per request (default 1, 32, 256, 1024, 4096) at concurrency 8.

The router's ``max_body_bytes`` / ``max_batch_rows`` are raised to fit the largest request. The
version is deployed from a subclass of ``ModelVersion`` that only counts the batch sizes (rows
per model call) ``@serve.batch`` formed, so the in-process figure is taken on exactly those.

In-process, on the same runtime object the version uses (``load_runtime("onnx", <model>.onnx,
intra_op_threads=1)``: one core, as the served version's session), two ways:

* ``model @ formed batches, right after`` (the headline ratio's denominator): in the worker,
  right after each served cell, with the Ray session idle, ``predict`` replays that cell's
  batch-size mix for a few seconds; rows / elapsed, like the served figure, under the same
  machine load (this 2-core box is shared; loads move by 2x within minutes);
* ``model @ formed batches, best-of`` (conservative): in the parent after all workers, no Ray
  running, every size timed in best-of-15 short rounds interleaved across sizes (the model on a
  quiet core);
* ``sweep``: ``predict`` at batch sizes 1..32 (best-of);
* ``pipeline`` (single-row JSON cells): per request ``decode_v1`` + ``predict`` +
  ``encode_v1`` on the same batches: how much of the gap is the JSON protocol;
* ``oip`` (binary cells): ``decode_v2`` + ``predict`` + ``encode_v2`` (binary out) of one
  request of that many rows: what the binary protocol costs without HTTP and Ray.

    python -m benchmarks.inference_throughput            # ~9 min: modes proxy and direct-tuned
    python -m benchmarks.inference_throughput --quick    # ~3 min: proxy mode only, 4 s cells
"""
