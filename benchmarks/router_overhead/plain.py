"""The baseline deployment (imported by its Serve replica, so it imports little)."""

from __future__ import annotations

from typing import Any

from benchmarks.router_overhead.config import MODEL


class PlainOnnx:
    """The baseline: a minimal JSON-in, JSON-out ingress running onnxruntime in the handler."""

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(
            path, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.names = [o.name for o in self.sess.get_outputs()]

    async def __call__(self, request: Any) -> dict[str, Any]:
        import numpy as np

        doc = await request.json()
        x = np.asarray(doc["instances"], dtype=np.float32)
        outs = dict(zip(self.names, self.sess.run(self.names, {"input": x}), strict=True))
        return {
            "model": MODEL,
            "predictions": outs["label"].tolist(),
            "outputs": {k: v.tolist() for k, v in outs.items()},
        }
