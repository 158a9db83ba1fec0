"""Build the example models that demos and tests roll out, deterministically.

Run from the repository root::

    python models/build_models.py            # writes models/artifacts/, heldout.npz, manifest.json
    python models/build_models.py --check    # rebuild into a temp dir and compare with the tree
    python models/build_models.py --only sklearn           # only the joblib examples (below)
    python models/build_models.py --only sklearn --check   # ... and compare only those

Data: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, 64 features in 0..16, 10
classes); no download. A fixed-seed stratified split keeps 30% as the held-out set, saved as
``models/heldout.npz`` (``X`` float32, ``y`` int64) for demo traffic and accuracy checks.

Artifacts (all take ``input`` FP32 [-1, 64], all give ``label`` INT64 [-1] and
``probabilities`` FP32 [-1, 10]):

* ``v1``           baseline: a heavily regularised logistic regression on raw pixels (ONNX).
* ``v2``           better: standardised features + logistic regression (ONNX).
* ``v2-torch``     a small PyTorch MLP, TorchScript, with a ``.pt.json`` signature sidecar.
* ``v2-regressed`` v2's recipe trained on corrupted labels (a bad labelling batch that relabels
  half the 3s as 5s and half the 8s as 1s): a candidate with a real regression (ONNX).
* ``v3-mlp``       standardised features + a 512-512 MLP (ONNX, ~1.2 MB): a little more accurate
  and ~15x the compute per row of v2 (~6 us against ~0.4 us on one core), the size of model a
  serving path is built for; the throughput benchmark serves it beside v2.

Served by user code in ``examples/`` (``runtime: python`` with
``examples.sklearn_runtime:SklearnRuntime``, or the ``examples.digits_app`` Serve app), saved
with joblib and listed under ``examples`` in the manifest:

* ``sklearn-digits``           v2's recipe as a scikit-learn pipeline (``.joblib``).
* ``sklearn-digits-regressed`` the same recipe trained with a class-index mapping bug that swaps
  classes 1<->8 and 3<->5: as confident as the good one, wrong on about 40% of digits.

``--only sklearn`` builds just these two and updates only their part of the manifest, leaving
every other file as it is (the other artifacts' training is not bit-for-bit reproducible
across machines: rebuilding them here may change their bytes, not their accuracy).

Every random draw takes a fixed seed, so rebuilding gives the same accuracies and, with the
pinned library versions, the same bytes (``--check`` verifies both).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20240611
N_FEATURES = 64
N_CLASSES = 10
HERE = Path(__file__).resolve().parent

IO_SPEC = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, N_CLASSES]},
    ],
    "task": "classification",
}

# The class-index mapping bug behind sklearn-digits-regressed: these classes swap labels.
SWAPPED = ((1, 8), (3, 5))
SKLEARN_RUNTIME = "examples.sklearn_runtime:SklearnRuntime"

# The "bad labelling batch" behind v2-regressed: these fractions of each true class are
# relabelled to the mapped class in the training data only.
CORRUPTION = {3: (5, 0.5), 8: (1, 0.5)}


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y.astype(np.int64), test_size=0.3, random_state=SEED, stratify=y
    )
    return X_train, X_test, y_train, y_test


def corrupt_labels(y: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    out = y.copy()
    for src, (dst, frac) in CORRUPTION.items():
        idx = np.flatnonzero(y == src)
        pick = rng.choice(idx, size=round(frac * idx.size), replace=False)
        out[pick] = dst
    return out


def swap_labels(y: np.ndarray) -> np.ndarray:
    out = y.copy()
    for a, b in SWAPPED:
        out[y == a], out[y == b] = b, a
    return out


def make_v1() -> Any:
    from sklearn.linear_model import LogisticRegression

    # Limited capacity on purpose: strong L2 penalty on unscaled pixels.
    return LogisticRegression(C=1e-4, max_iter=2000)


def make_v2() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=0.1, max_iter=2000))]
    )


def make_v3_mlp() -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(hidden_layer_sizes=(512, 512), max_iter=200, random_state=SEED)
    return Pipeline([("scale", StandardScaler()), ("clf", mlp)])


RECIPES = {
    "v1": "LogisticRegression(C=1e-4, max_iter=2000) on raw pixels",
    "v2": "StandardScaler + LogisticRegression(C=0.1, max_iter=2000)",
    "v2-regressed": "v2 recipe on training labels with 50% of 3->5 and 8->1 relabelled "
    f"(numpy default_rng({SEED}))",
    "v2-torch": "torch MLP 64-64-10 (x/16 -> Linear -> ReLU -> Linear), Adam lr=0.01, "
    f"300 full-batch epochs, torch.manual_seed({SEED}), torch.jit.script",
    "v3-mlp": "StandardScaler + MLPClassifier(hidden_layer_sizes=(512, 512), max_iter=200, "
    f"random_state={SEED}) (adam, stops on tol)",
    "faulty": "v2-torch's network behind a guard that raises on any negative pixel "
    "(for tests and drills of the model-failure path)",
    "sklearn-digits": "v2 recipe (StandardScaler + LogisticRegression(C=0.1, max_iter=2000)), "
    "saved with joblib.dump",
    "sklearn-digits-regressed": "v2 recipe on training labels with classes 1<->8 and 3<->5 "
    "swapped (a class-index mapping bug), saved with joblib.dump",
}
SKLEARN = ("sklearn-digits", "sklearn-digits-regressed")


def to_onnx_bytes(model: Any, name: str) -> bytes:
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={id(_final_estimator(model)): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
        final_types=None,
    )
    outs = {o.name: o for o in onx.graph.output}
    # skl2onnx names them "label"/"probabilities" or "output_label"/"output_probability"
    # depending on version and entry point; pin the names we serve.
    renames = {"output_label": "label", "output_probability": "probabilities"}
    for old, new in renames.items():
        if old not in outs:
            continue
        for node in onx.graph.node:
            node.output[:] = [new if o == old else o for o in node.output]
        outs[old].name = new
    if sorted(o.name for o in onx.graph.output) != ["label", "probabilities"]:
        raise RuntimeError(f"unexpected skl2onnx outputs {[o.name for o in onx.graph.output]}")
    # Make the output shapes explicit: label [N], probabilities [N, n_classes].
    for o in onx.graph.output:
        dims = o.type.tensor_type.shape.dim
        del dims[:]
        batch = dims.add()
        batch.dim_param = "N"
        if o.name == "probabilities":
            dims.add().dim_value = N_CLASSES
    onx.graph.name = name
    onx.doc_string = RECIPES[name]
    onnx.helper.set_model_props(onx, {"rayrollout.task": "classification", "rayrollout.name": name})
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def _final_estimator(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


# The TorchScript module's source. It is compiled under a fixed file name rather than defined
# in this file because TorchScript stores the defining file's absolute path in its debug info:
# the saved bytes would otherwise depend on where the checkout lives.
TORCH_MODULE_SRC = '''
import torch
from torch import nn


class DigitsMLP(nn.Module):
    """The served module: raw pixels in, (label, probabilities) out.

    Plain parameters rather than ``nn.Linear`` children: ``nn.Linear``'s TorchScript code
    lists its constants in set order, which varies with PYTHONHASHSEED and would make the
    saved bytes differ between runs.
    """

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.w1 = nn.Parameter(net[0].weight.detach().clone(), requires_grad=False)
        self.b1 = nn.Parameter(net[0].bias.detach().clone(), requires_grad=False)
        self.w2 = nn.Parameter(net[2].weight.detach().clone(), requires_grad=False)
        self.b2 = nn.Parameter(net[2].bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.relu(nn.functional.linear(x / 16.0, self.w1, self.b1))
        probs = torch.softmax(nn.functional.linear(hidden, self.w2, self.b2), dim=1)
        return torch.argmax(probs, dim=1), probs


class FaultyMLP(nn.Module):
    """The same network, but it raises on a negative pixel (real digits are 0..16).

    A real model with a real failure mode, for tests and drills of the 5xx path.
    """

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.inner = DigitsMLP(net)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if bool((x < 0).any()):
            raise RuntimeError("faulty model: negative pixel value")
        return self.inner(x)
'''
TORCH_MODULE_FILE = "rayrollout_models/digits_mlp.py"


def _define_digits_mlp() -> Any:
    import linecache
    import types

    module = types.ModuleType("rayrollout_models_digits_mlp")
    module.__file__ = TORCH_MODULE_FILE
    sys.modules[module.__name__] = module
    # inspect.getsource (used by torch.jit.script) reads sources through linecache.
    lines = TORCH_MODULE_SRC.splitlines(keepends=True)
    linecache.cache[TORCH_MODULE_FILE] = (len(TORCH_MODULE_SRC), None, lines, TORCH_MODULE_FILE)
    exec(compile(TORCH_MODULE_SRC, TORCH_MODULE_FILE, "exec"), module.__dict__)
    return module


def train_torch(X: np.ndarray, y: np.ndarray, path: Path, faulty: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    mod = _define_digits_mlp()
    net = nn.Sequential(nn.Linear(N_FEATURES, 64), nn.ReLU(), nn.Linear(64, N_CLASSES))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(X / 16.0), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()
    torch.jit.save(torch.jit.script(mod.DigitsMLP(net).eval()), str(path))
    torch.jit.save(torch.jit.script(mod.FaultyMLP(net).eval()), str(faulty))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def accuracy(kind: str, path: Path, X: np.ndarray, y: np.ndarray) -> float:
    # Measure through the runtime the server uses, so the manifest states what serving sees.
    sys.path.insert(0, str(HERE.parent))
    from rayrollout.runtime import load_runtime

    options = {"runtime_class": SKLEARN_RUNTIME} if kind == "python" else {}
    rt = load_runtime(kind, str(path), **options)
    out = rt.predict({"input": X})
    return float(np.mean(out["label"] == y))


def train_sklearn(X: np.ndarray, y: np.ndarray, art_dir: Path) -> dict[str, tuple[str, Path]]:
    """The joblib examples, fitted on one BLAS thread (a reduction's order then depends on
    nothing but the data)."""
    import joblib
    from threadpoolctl import threadpool_limits

    specs: dict[str, tuple[str, Path]] = {}
    with threadpool_limits(limits=1):
        for name, labels in [("sklearn-digits", y), ("sklearn-digits-regressed", swap_labels(y))]:
            path = art_dir / f"{name}.joblib"
            joblib.dump(make_v2().fit(X, labels), path)
            specs[name] = ("python", path)
    return specs


def entries(specs: dict[str, tuple[str, Path]], out_dir: Path, X: np.ndarray,
            y: np.ndarray) -> dict[str, Any]:
    """The manifest entry of each artifact: file, runtime, sha256, size, signature, held-out
    accuracy, recipe."""
    artifacts: dict[str, Any] = {}
    for name, (kind, path) in specs.items():
        entry: dict[str, Any] = {
            "file": str(path.relative_to(out_dir)),
            "runtime": kind,
            "sha256": sha256(path),
            "size_bytes": path.stat().st_size,
            "inputs": IO_SPEC["inputs"],
            "outputs": IO_SPEC["outputs"],
            "task": IO_SPEC["task"],
            "heldout_accuracy": round(accuracy(kind, path, X, y), 6),
            "recipe": RECIPES[name],
        }
        if kind == "torchscript":
            entry["signature_file"] = entry["file"] + ".json"
        if kind == "python":
            entry["runtime_class"] = SKLEARN_RUNTIME
        artifacts[name] = entry
    return artifacts


def examples_section(out_dir: Path) -> dict[str, Any]:
    """The manifest's ``examples``: the joblib artifacts served by ``examples/`` code, with the
    versions that wrote them (a pickle loads reliably only with the scikit-learn that wrote it)."""
    X_train, X_test, y_train, y_test = load_split()
    art_dir = out_dir / "artifacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    specs = train_sklearn(X_train, y_train, art_dir)
    return {"built_with": _versions(["numpy", "scikit-learn", "joblib"]),
            "artifacts": entries(specs, out_dir, X_test, y_test)}


def build(out_dir: Path) -> dict[str, Any]:
    X_train, X_test, y_train, y_test = load_split()
    art_dir = out_dir / "artifacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    heldout = out_dir / "heldout.npz"
    # numpy writes zip entries with a fixed timestamp, so the bytes are reproducible.
    np.savez_compressed(heldout, X=X_test, y=y_test)

    specs: dict[str, tuple[str, Path]] = {}
    for name, model, labels in [
        ("v1", make_v1(), y_train),
        ("v2", make_v2(), y_train),
        ("v2-regressed", make_v2(), corrupt_labels(y_train)),
        ("v3-mlp", make_v3_mlp(), y_train),
    ]:
        model.fit(X_train, labels)
        path = art_dir / f"{name}.onnx"
        path.write_bytes(to_onnx_bytes(model, name))
        specs[name] = ("onnx", path)

    pt, faulty = art_dir / "v2-torch.pt", art_dir / "faulty.pt"
    train_torch(X_train, y_train, pt, faulty)
    for p in (pt, faulty):
        Path(str(p) + ".json").write_text(json.dumps(IO_SPEC, indent=2) + "\n")
    specs["v2-torch"] = ("torchscript", pt)
    specs["faulty"] = ("torchscript", faulty)

    manifest = {
        "dataset": {
            "source": "sklearn.datasets.load_digits",
            "split": f"train_test_split(test_size=0.3, stratify=y, random_state={SEED})",
            "n_train": len(y_train),
            "n_heldout": len(y_test),
            "n_features": N_FEATURES,
            "n_classes": N_CLASSES,
        },
        "heldout": {"file": "heldout.npz", "sha256": sha256(heldout)},
        "built_with": _versions(),
        "artifacts": entries(specs, out_dir, X_test, y_test),
        "examples": examples_section(out_dir),
    }
    write_manifest(out_dir, manifest)
    return manifest


def build_sklearn(out_dir: Path) -> dict[str, Any]:
    """Only the joblib examples: their files and the manifest's ``examples``; every other file
    and manifest entry stays byte for byte as it was."""
    path = out_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest["examples"] = examples_section(out_dir)
    write_manifest(out_dir, manifest)
    return manifest


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _versions(pkgs: list[str] | None = None) -> dict[str, str]:
    from importlib.metadata import version

    pkgs = pkgs or ["numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "torch"]
    return {p: version(p) for p in pkgs}


def _files(root: Path, only: str | None = None) -> dict[str, bytes]:
    if only == "sklearn":
        doc = json.loads((root / "manifest.json").read_text()).get("examples")
        files = {f"artifacts/{n}.joblib" for n in SKLEARN}
        out = {n: (root / n).read_bytes() for n in sorted(files) if (root / n).is_file()}
        out["manifest.json#examples"] = json.dumps(doc, indent=2).encode()
        return out
    names = ["manifest.json", "heldout.npz"]
    names += [str(p.relative_to(root)) for p in sorted((root / "artifacts").iterdir())]
    return {n: (root / n).read_bytes() for n in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output directory (default: models/)"
    )
    parser.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare")
    parser.add_argument("--only", choices=["sklearn"], default=None,
                        help="build (or check) only these artifacts; the rest is left alone")
    args = parser.parse_args(argv)
    make = build_sklearn if args.only == "sklearn" else build
    if not args.check:
        manifest = make(args.out)
        built = {} if args.only else dict(manifest["artifacts"])
        for name, a in {**built, **manifest["examples"]["artifacts"]}.items():
            print(f"{name:26s} acc={a['heldout_accuracy']:.4f} size={a['size_bytes']} B")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        make(Path(tmp))
        new, old = _files(Path(tmp), args.only), _files(args.out, args.only)
    differ = sorted(n for n in new.keys() | old.keys() if new.get(n) != old.get(n))
    print("byte-identical" if not differ else f"differ: {differ}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
