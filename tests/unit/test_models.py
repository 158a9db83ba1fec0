"""The example models in ``models/`` match their manifest and keep their accuracy ordering."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rayrollout.runtime import TensorSpec, load_runtime

MODELS = Path(__file__).resolve().parents[2] / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text())
ARTIFACTS: dict[str, dict] = MANIFEST["artifacts"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(MODELS / MANIFEST["heldout"]["file"])
    return data["X"], data["y"]


@pytest.fixture(scope="module")
def accuracies(heldout: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    X, y = heldout
    out = {}
    for name, entry in ARTIFACTS.items():
        rt = load_runtime(entry["runtime"], str(MODELS / entry["file"]))
        out[name] = float(np.mean(rt.predict({"input": X})["label"] == y))
    return out


def test_manifest_lists_the_expected_models() -> None:
    assert set(ARTIFACTS) == {"v1", "v2", "v2-torch", "v2-regressed", "v3-mlp", "faulty"}
    assert {e["runtime"] for e in ARTIFACTS.values()} == {"onnx", "torchscript"}


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_artifact_exists_is_small_and_matches_its_sha256(name: str) -> None:
    entry = ARTIFACTS[name]
    path = MODELS / entry["file"]
    assert path.is_file()
    # v3-mlp (512-512 hidden units) is the one model with some weight: ~1.2 MB
    assert path.stat().st_size == entry["size_bytes"] < (2_000_000 if name == "v3-mlp" else 100_000)
    assert _sha256(path) == entry["sha256"]


def test_heldout_split_matches_manifest(heldout: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = heldout
    assert _sha256(MODELS / MANIFEST["heldout"]["file"]) == MANIFEST["heldout"]["sha256"]
    assert X.dtype == np.float32 and y.dtype == np.int64
    n, d = MANIFEST["dataset"]["n_heldout"], MANIFEST["dataset"]["n_features"]
    assert X.shape == (n, d) and y.shape == (n,)
    assert set(np.unique(y)) == set(range(MANIFEST["dataset"]["n_classes"]))


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_loaded_signature_and_outputs_match_manifest(
    name: str, heldout: tuple[np.ndarray, np.ndarray]
) -> None:
    entry = ARTIFACTS[name]
    rt = load_runtime(entry["runtime"], str(MODELS / entry["file"]))
    assert rt.kind == entry["runtime"]
    sig = rt.signature
    assert [t.to_dict() for t in sig.inputs] == entry["inputs"]
    assert [t.to_dict() for t in sig.outputs] == entry["outputs"]
    assert sig.task == entry["task"]

    X, _ = heldout
    out = rt.predict({"input": X[:17]})
    assert list(out) == [o["name"] for o in entry["outputs"]]
    for spec in sig.outputs:
        _assert_conforms(out[spec.name], spec, batch=17)
    probs = out["probabilities"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["label"], probs.argmax(axis=1))


def _assert_conforms(arr: np.ndarray, spec: TensorSpec, batch: int) -> None:
    assert arr.dtype == spec.dtype
    assert len(arr.shape) == len(spec.shape)
    assert arr.shape[0] == batch
    for got, want in zip(arr.shape[1:], spec.shape[1:], strict=True):
        assert want in (-1, got)


def test_recorded_accuracies_are_reproduced(accuracies: dict[str, float]) -> None:
    for name, acc in accuracies.items():
        assert acc == pytest.approx(ARTIFACTS[name]["heldout_accuracy"], abs=1e-6), name


def test_accuracy_ordering_v2_beats_v1_beats_regressed(accuracies: dict[str, float]) -> None:
    # The demos rely on this: v2 is a real improvement, v2-regressed a real regression.
    assert accuracies["v2"] >= accuracies["v1"] + 0.02
    assert accuracies["v1"] >= accuracies["v2-regressed"] + 0.02
    assert 0.95 <= accuracies["v2-torch"] <= 1.0
    assert accuracies["v3-mlp"] >= accuracies["v2"]


def test_faulty_model_raises_only_on_negative_pixels() -> None:
    from rayrollout.runtime import PredictError, load_runtime

    entry = ARTIFACTS["faulty"]
    rt = load_runtime("torchscript", str(MODELS / entry["file"]))
    x = np.zeros((2, 64), dtype=np.float32)
    assert rt.predict({"input": x})["label"].shape == (2,)
    x[1, 3] = -1.0
    with pytest.raises(PredictError, match="negative pixel"):
        rt.predict({"input": x})
