"""Runtimes: signatures, batch prediction, the registry, fakes, devices and threads."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

try:
    import torch
except ImportError:  # the "torch" extra is optional; ONNX tests still run without it
    torch = None  # type: ignore[assignment]

from rayrollout.runtime import (
    DeviceUnavailableError,
    ModelLoadError,
    ModelRuntime,
    ModelSignature,
    PredictError,
    TensorSpec,
    known_kinds,
    load_runtime,
    summarize_prediction,
)
from rayrollout.runtime.fake import FailingRuntime, FakeRuntime, classifier_signature
from rayrollout.runtime.onnx import OnnxRuntime

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
V1 = ARTIFACTS / "v1.onnx"
TORCH_MODEL = ARTIFACTS / "v2-torch.pt"
CUDA_ONNX = "CUDAExecutionProvider" in ort.get_available_providers()
CUDA_TORCH = torch is not None and torch.cuda.is_available()
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _onnx_model(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """x: double [batch, 3] -> y = x (double), n = int32 [batch, 3], dims named or unknown."""
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT32, [None, 3])
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("Cast", ["x"], ["n"], to=TensorProto.INT32),
        ],
        "tiny",
        [x],
        [y, n],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


# --- ONNX -------------------------------------------------------------------------------


def test_onnx_signature_maps_types_and_dynamic_dims(tmp_path: Path) -> None:
    rt = OnnxRuntime(_onnx_model(tmp_path / "m.onnx"))
    assert rt.signature == ModelSignature(
        inputs=(TensorSpec("x", "FP64", (-1, 3)),),
        outputs=(TensorSpec("y", "FP64", (-1, 3)), TensorSpec("n", "INT32", (-1, 3))),
        task="classification",
    )


def test_onnx_task_comes_from_metadata_or_argument(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path / "m.onnx", {"rayrollout.task": "regression"})
    assert OnnxRuntime(path).signature.task == "regression"
    assert OnnxRuntime(path, task="classification").signature.task == "classification"
    with pytest.raises(ValueError, match="task"):
        OnnxRuntime(path, task="ranking")


def test_onnx_unsupported_type_is_a_load_error(tmp_path: Path) -> None:
    s = helper.make_tensor_value_info("s", TensorProto.STRING, [None])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"])],
        "g",
        [s],
        [helper.make_tensor_value_info("t", TensorProto.STRING, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "s.onnx"))
    with pytest.raises(ModelLoadError, match=r"tensor\(string\)"):
        OnnxRuntime(tmp_path / "s.onnx")


def test_onnx_corrupt_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match=r"bad\.onnx"):
        OnnxRuntime(bad)


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_batch_predict_shapes_and_dtypes(batch: int) -> None:
    rt = load_runtime("onnx", str(V1))
    assert isinstance(rt, ModelRuntime)
    x = np.random.default_rng(0).uniform(0, 16, size=(batch, 64))  # float64: cast to FP32
    out = rt.predict({"input": x})
    assert list(out) == ["label", "probabilities"]
    assert out["label"].dtype == np.int64 and out["label"].shape == (batch,)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (batch, 10)


def test_onnx_missing_input_is_bad_input_not_model_failure() -> None:
    rt = load_runtime("onnx", str(V1))
    with pytest.raises(ValueError, match="missing model inputs"):
        rt.predict({"x": np.zeros((1, 64), np.float32)})


def test_onnx_model_failure_is_a_predict_error() -> None:
    rt = load_runtime("onnx", str(V1))
    with pytest.raises(PredictError, match=r"v1\.onnx"):
        rt.predict({"input": np.zeros((2, 63), np.float32)})


def test_onnx_thread_settings_reach_the_session() -> None:
    rt = OnnxRuntime(V1, intra_op_threads=2, inter_op_threads=3)
    opts = rt._session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 3)
    assert OnnxRuntime(V1)._session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="thread"):
        OnnxRuntime(V1, intra_op_threads=-1)


@pytest.mark.skipif(CUDA_ONNX, reason="CUDAExecutionProvider present")
def test_onnx_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="CUDAExecutionProvider"):
        load_runtime("onnx", str(V1), device="cuda")


@pytest.mark.skipif(not CUDA_ONNX, reason="needs onnxruntime-gpu and a GPU")
def test_onnx_cuda_runs_on_the_gpu() -> None:
    rt = load_runtime("onnx", str(V1), device="cuda")
    assert rt.device == "cuda"
    assert rt.predict({"input": np.zeros((3, 64), np.float32)})["label"].shape == (3,)


# --- TorchScript --------------------------------------------------------------------------


@pytest.fixture
def restore_torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_signature_from_sidecar_and_predict() -> None:
    rt = load_runtime("torchscript", str(TORCH_MODEL))
    sidecar = json.loads(Path(str(TORCH_MODEL) + ".json").read_text())
    assert rt.signature.to_dict() == sidecar
    out = rt.predict({"input": np.ones((5, 64), np.float64)})
    assert out["label"].dtype == np.int64 and out["label"].shape == (5,)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (5, 10)


@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_signature_from_input_spec_and_output_names() -> None:
    from rayrollout.runtime.torchscript import TorchScriptRuntime

    rt = TorchScriptRuntime(
        TORCH_MODEL,
        input_spec=[{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        output_names=["cls", "probs"],
    )
    assert rt.signature.inputs == (TensorSpec("pixels", "FP32", (-1, 64)),)
    assert rt.signature.outputs == (
        TensorSpec("cls", "INT64", (-1,)),
        TensorSpec("probs", "FP32", (-1, 10)),
    )
    assert set(rt.predict({"pixels": np.zeros((2, 64), np.float32)})) == {"cls", "probs"}


@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_without_spec_or_sidecar_is_a_load_error(tmp_path: Path) -> None:
    from rayrollout.runtime.torchscript import TorchScriptRuntime

    lone = tmp_path / "lone.pt"
    lone.write_bytes(TORCH_MODEL.read_bytes())
    with pytest.raises(ModelLoadError, match="sidecar"):
        TorchScriptRuntime(lone)
    with pytest.raises(ValueError, match="output_names"):
        TorchScriptRuntime(TORCH_MODEL, output_names=["only-one"])
    bad = [{"name": "input", "datatype": "FP128", "shape": [-1, 64]}]
    with pytest.raises(ValueError, match="FP128"):
        TorchScriptRuntime(TORCH_MODEL, input_spec=bad, output_spec=bad)
    with pytest.raises(ValueError, match="task"):
        TorchScriptRuntime(TORCH_MODEL, task="ranking")


@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_model_failure_is_a_predict_error() -> None:
    rt = load_runtime("torchscript", str(TORCH_MODEL))
    with pytest.raises(PredictError, match=r"v2-torch\.pt"):
        rt.predict({"input": np.zeros((2, 63), np.float32)})


@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_thread_setting() -> None:
    rt = load_runtime("torchscript", str(TORCH_MODEL), num_threads=2)
    assert rt.num_threads == 2 and torch.get_num_threads() == 2  # type: ignore[attr-defined]
    load_runtime("torchscript", str(TORCH_MODEL))
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="num_threads"):
        load_runtime("torchscript", str(TORCH_MODEL), num_threads=0)


@needs_torch
@pytest.mark.skipif(CUDA_TORCH, reason="CUDA present")
def test_torchscript_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        load_runtime("torchscript", str(TORCH_MODEL), device="cuda")


@pytest.mark.skipif(not CUDA_TORCH, reason="needs a CUDA build of torch and a GPU")
@needs_torch
@pytest.mark.usefixtures("restore_torch_threads")
def test_torchscript_cuda_runs_on_the_gpu() -> None:
    rt = load_runtime("torchscript", str(TORCH_MODEL), device="cuda")
    out = rt.predict({"input": np.zeros((3, 64), np.float32)})
    assert isinstance(out["probabilities"], np.ndarray) and out["label"].shape == (3,)


# --- registry -----------------------------------------------------------------------------


def test_unknown_kind_names_the_kind_and_the_known_kinds() -> None:
    with pytest.raises(ValueError, match=r"'tensorflow'.*\['onnx', 'python', 'torchscript'\]"):
        load_runtime("tensorflow", str(V1))
    assert known_kinds() == ["onnx", "python", "torchscript"]


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])  # fails before importing torch
def test_missing_file_names_the_path(kind: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError, match=r"nope\.bin"):
        load_runtime(kind, str(missing))


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="device"):
        load_runtime("onnx", str(V1), device="tpu")


def test_onnx_users_do_not_import_torch() -> None:
    code = (
        "import sys; from rayrollout.runtime import load_runtime; "
        f"load_runtime('onnx', {str(V1)!r}); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# --- fakes --------------------------------------------------------------------------------


def test_fake_runtime_answers_with_its_function_and_counts_calls() -> None:
    sig = classifier_signature(n_features=4, n_classes=3)
    rt = FakeRuntime(sig)
    assert isinstance(rt, ModelRuntime) and rt.signature is sig
    out = rt.predict({"input": np.array([[0, 5, 1, 9], [7, 0, 0, 0]])})
    np.testing.assert_array_equal(out["label"], [1, 0])
    assert out["probabilities"].shape == (2, 3)
    custom = FakeRuntime(sig, fn=lambda inp: {"label": np.zeros(len(inp["input"]), np.int64)})
    custom.predict({"input": np.zeros((4, 4))})
    assert (rt.calls, rt.batches, custom.batches) == (1, [2], [4])
    with pytest.raises(ValueError, match="missing model inputs"):
        rt.predict({})


def test_failing_runtime_raises_a_model_failure() -> None:
    rt = FailingRuntime()
    assert isinstance(rt, ModelRuntime)
    with pytest.raises(PredictError):
        rt.predict({"input": np.zeros((1, 4))})
    boom = FailingRuntime(error=RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        boom.predict({"input": np.zeros((1, 4))})
    assert boom.calls == 1


# --- summary ------------------------------------------------------------------------------


def test_summary_classification_uses_label_then_argmax() -> None:
    probs = np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)
    with_label: dict[str, np.ndarray] = {
        "label": np.array([1, 0], np.int64),
        "probabilities": probs,
    }
    got = summarize_prediction(with_label, "classification")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [1.0, 0.0])
    np.testing.assert_array_equal(summarize_prediction({"scores": probs}, "classification"), [1, 0])


def test_summary_regression_takes_first_value_per_row() -> None:
    out = {"y": np.array([[2.5, 9.0], [-1.0, 3.0]]), "z": np.zeros((2, 2))}
    np.testing.assert_array_equal(summarize_prediction(out, "regression"), [2.5, -1.0])
    np.testing.assert_array_equal(
        summarize_prediction({"y": np.array([0.5, 1.5], np.float32)}, "regression"), [0.5, 1.5]
    )


def test_summary_rejects_unknown_task_and_empty_outputs() -> None:
    with pytest.raises(ValueError, match="ranking"):
        summarize_prediction({"y": np.zeros(1)}, "ranking")
    with pytest.raises(ValueError, match="no outputs"):
        summarize_prediction({}, "regression")
