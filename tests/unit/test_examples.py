"""The bring-your-own-model examples without Ray: ``examples.sklearn_runtime.SklearnRuntime``
(a ``runtime: python`` class) and the ``TensorModel`` deployment of ``examples.digits_app``,
on the held-out digits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from pydantic import ValidationError

from examples.digits_app import SklearnDigits, app_builder, digits_deployment
from examples.sklearn_runtime import SklearnRuntime
from rayrollout.errors import DeviceUnavailableError, ModelLoadError, PredictError
from rayrollout.runtime import ModelRuntime, ModelSignature, load_runtime
from rayrollout.spec import VersionSpec
from rayrollout.spec.serving import project_root

MODELS = Path(__file__).resolve().parents[2] / "models"
EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (MODELS / "manifest.json").read_text())["examples"]["artifacts"]
GOOD = MODELS / "artifacts" / "sklearn-digits.joblib"
REGRESSED = MODELS / "artifacts" / "sklearn-digits-regressed.joblib"
RUNTIME_CLASS = "examples.sklearn_runtime:SklearnRuntime"


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(MODELS / "heldout.npz")
    return data["X"], data["y"]


def accuracy(out: dict[str, np.ndarray], y: np.ndarray) -> float:
    return float(np.mean(out["label"] == y))


def check_outputs(out: dict[str, np.ndarray], rows: int) -> None:
    assert list(out) == ["label", "probabilities"]
    assert out["label"].dtype == np.int64 and out["label"].shape == (rows,)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (rows, 10)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["label"], out["probabilities"].argmax(axis=1))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_artifacts_match_the_manifest(name: str, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    entry = EXAMPLES[name]
    path = MODELS / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert path.stat().st_size == entry["size_bytes"] < 100_000
    rt = load_runtime(entry["runtime"], path, runtime_class=entry["runtime_class"])
    assert rt.signature.to_dict() == {k: entry[k] for k in ("inputs", "outputs", "task")}
    X, y = heldout
    assert accuracy(rt.predict({"input": X}), y) == pytest.approx(entry["heldout_accuracy"],
                                                                  abs=1e-6)


def test_sklearn_runtime_serves_the_heldout_digits(heldout: tuple[np.ndarray, np.ndarray]
                                                   ) -> None:
    X, y = heldout
    good, bad = SklearnRuntime(GOOD), SklearnRuntime(REGRESSED)
    assert isinstance(good, ModelRuntime) and good.kind == "python" and good.device == "cpu"
    sig = good.signature
    assert isinstance(sig, ModelSignature) and sig.task == "classification"
    assert [t.to_dict() for t in sig.inputs] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert [t.to_dict() for t in sig.outputs] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    out_good, out_bad = good.predict({"input": X}), bad.predict({"input": X})
    check_outputs(out_good, len(X))
    check_outputs(out_bad, len(X))
    assert accuracy(out_good, y) >= 0.95
    assert accuracy(out_good, y) >= accuracy(out_bad, y) + 0.3
    # The regression is a swap of two pairs of classes: wrong where the shadow check looks.
    disagree = out_good["label"] != out_bad["label"]
    assert 0.3 <= disagree.mean() <= 0.5
    assert np.isin(y[disagree], [1, 3, 5, 8]).mean() >= 0.9
    # A batch and its rows one by one give the same answers.
    one = [good.predict({"input": X[i:i + 1]})["label"][0] for i in range(20)]
    np.testing.assert_array_equal(one, out_good["label"][:20])


def test_load_runtime_builds_the_class_with_its_args(heldout: tuple[np.ndarray, np.ndarray]
                                                     ) -> None:
    X, y = heldout
    rt = load_runtime("python", GOOD, runtime_class=RUNTIME_CLASS, threads=2)
    assert isinstance(rt, SklearnRuntime) and rt.path == str(GOOD)
    assert accuracy(rt.predict({"input": X}), y) == pytest.approx(
        EXAMPLES["sklearn-digits"]["heldout_accuracy"], abs=1e-6)
    with pytest.raises(TypeError, match="colour"):  # an unknown runtime_args key
        load_runtime("python", GOOD, runtime_class=RUNTIME_CLASS, colour="blue")
    with pytest.raises(ValueError, match="threads"):
        load_runtime("python", GOOD, runtime_class=RUNTIME_CLASS, threads=0)


def test_a_version_spec_names_the_runtime_class() -> None:
    v = VersionSpec.model_validate({"name": "v2-sklearn", "runtime": "python",
                                    "runtime_class": RUNTIME_CLASS, "artifact": str(GOOD),
                                    "runtime_args": {"threads": 1}})
    cfg = v.for_model("digits")
    assert cfg.artifact_path() == GOOD and cfg.runtime_class == RUNTIME_CLASS


def test_sklearn_runtime_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="needs an artifact"):
        SklearnRuntime(None)
    with pytest.raises(DeviceUnavailableError, match="CPU only"):
        SklearnRuntime(GOOD, device="cuda")
    from sklearn.preprocessing import StandardScaler

    scaler = tmp_path / "scaler.joblib"
    joblib.dump(StandardScaler().fit(np.eye(3)), scaler)
    with pytest.raises(ModelLoadError, match="not a fitted classifier"):
        SklearnRuntime(scaler)
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="cannot load"):
        SklearnRuntime(garbage)


def test_sklearn_runtime_tells_bad_input_from_a_model_failure() -> None:
    rt = SklearnRuntime(GOOD)
    with pytest.raises(ValueError, match="missing model input 'input'"):
        rt.predict({"x": np.zeros((1, 64), np.float32)})
    with pytest.raises(ValueError, match=r"shape \[rows, 64\], got \[2, 63\]"):
        rt.predict({"input": np.zeros((2, 63), np.float32)})
    with pytest.raises(PredictError, match="predict_proba failed"):  # NaN: the model raises
        rt.predict({"input": np.full((1, 64), np.nan, np.float32)})


def test_tensor_model_deployment_predicts_a_batch(heldout: tuple[np.ndarray, np.ndarray]
                                                  ) -> None:
    X, y = heldout
    assert digits_deployment.func_or_class is SklearnDigits
    assert digits_deployment.name == "SklearnDigits"
    model = SklearnDigits(str(GOOD))
    assert model.signature() == SklearnRuntime(GOOD).signature.to_dict()
    out = model.predict_batch({"input": X})
    check_outputs(out, len(X))
    assert accuracy(out, y) == pytest.approx(EXAMPLES["sklearn-digits"]["heldout_accuracy"],
                                             abs=1e-6)
    # (``predict``, its batching, needs a Serve replica: tests/integration/test_user_versions.py)


def test_tensor_model_refuses_a_model_unlike_its_declaration(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    narrow = tmp_path / "narrow.joblib"  # 32 features and 3 classes, not 64 and 10
    joblib.dump(LogisticRegression().fit(rng.normal(size=(30, 32)), np.arange(30) % 3), narrow)
    with pytest.raises(ModelLoadError, match="not the declared"):
        SklearnDigits(str(narrow))


def test_app_builder_resolves_the_artifact_and_checks_its_args(tmp_path: Path) -> None:
    from ray.serve import Application

    app = app_builder({"artifact": "models/artifacts/sklearn-digits.joblib"})
    assert isinstance(app, Application)
    dep = app._bound_deployment
    assert dep.init_args == (str(project_root() / "models/artifacts/sklearn-digits.joblib"),)
    assert dep.init_kwargs == {"max_batch_size": 32}
    assert dep.num_replicas == 1  # left to Serve's default: the version sets its own
    with pytest.raises(ValidationError, match="colour"):
        app_builder({"artifact": str(GOOD), "colour": "blue"})
    with pytest.raises(ValidationError, match="artifact"):
        app_builder({})
    with pytest.raises(FileNotFoundError, match=r"missing\.joblib"):
        app_builder({"artifact": str(tmp_path / "missing.joblib")})
