"""gru_core converts to LiteRT with built-in ops only and to ONNX with the native GRU op, in
every configuration; each computes what Keras does at any batch size and length (run in
ai-edge-litert and ONNX Runtime)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gru_core import GRU
from gru_core import export_litert, export_onnx

FEATURES, UNITS = 5, 6


def _sequence_input():
    return keras.Input((None, FEATURES), name="sequence")


def _model(configuration: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    x = _sequence_input()
    if configuration == "last state":
        return keras.Model(x, GRU(UNITS)(x))
    if configuration == "return_sequences":
        return keras.Model(x, GRU(UNITS, return_sequences=True)(x))
    if configuration == "go_backwards":
        return keras.Model(x, GRU(UNITS, go_backwards=True, return_sequences=True)(x))
    if configuration == "masked":
        return keras.Model(x, GRU(UNITS, return_sequences=True)(keras.layers.Masking()(x)))
    if configuration == "masked, zero output":
        masked = keras.layers.Masking()(x)
        return keras.Model(x, GRU(UNITS, return_sequences=True, zero_output_for_mask=True)(masked))
    if configuration == "masked, last state":
        return keras.Model(x, GRU(UNITS, go_backwards=True)(keras.layers.Masking()(x)))
    if configuration == "bidirectional":
        masked = keras.layers.Masking()(x)
        return keras.Model(x, keras.layers.Bidirectional(GRU(UNITS, return_sequences=True))(masked))
    if configuration == "stacked":
        hidden = keras.layers.Bidirectional(GRU(UNITS, return_sequences=True))(x)
        return keras.Model(x, keras.layers.Dense(2)(GRU(UNITS, dropout=0.3, recurrent_dropout=0.3)(hidden)))
    if configuration == "initial and returned state":
        state = keras.Input((UNITS,), name="state")
        outputs, last = GRU(UNITS, return_sequences=True, return_state=True)(x, initial_state=state)
        return keras.Model([x, state], [outputs, last])
    raise ValueError(configuration)


MASKED = ("masked", "masked, zero output", "masked, last state", "bidirectional")
CONFIGURATIONS = ["last state", "return_sequences", "go_backwards", *MASKED, "stacked", "initial and returned state"]


def _uses_only_builtin_ops(path) -> bool:
    # A Flex (SELECT_TF_OPS) op is stored as a custom op named Flex...; LiteRT refuses it.
    return b"Flex" not in path.read_bytes()


def _feeds(configuration: str, input_count: int):
    """Inputs at three batch sizes and lengths; masked rows two steps shorter than the others."""
    rng = np.random.default_rng(1)
    for batch, length in [(1, 1), (3, 9), (2, 4)]:
        feeds = [rng.normal(size=(batch, length, FEATURES)).astype(np.float32)]
        if input_count == 2:
            feeds.append(rng.normal(size=(batch, UNITS)).astype(np.float32))
        if configuration in MASKED and length > 2:
            feeds[0][0, -2:] = 0.0
        yield feeds


def _assert_matches_keras(model, feeds, outputs):
    expected = model(feeds if len(feeds) == 2 else feeds[0])
    expected = [np.asarray(e) for e in (expected if isinstance(expected, list) else [expected])]
    for actual, wanted in zip(sorted(outputs, key=np.ndim), sorted(expected, key=np.ndim)):
        assert actual.shape == wanted.shape
        np.testing.assert_allclose(actual, wanted, atol=2e-6)


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_every_configuration_runs_in_litert_as_in_keras(configuration, tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the litert extra is not installed")
    model = _model(configuration)
    path = export_litert(model, tmp_path / "model.tflite")
    assert _uses_only_builtin_ops(path)
    interpreter = litert.Interpreter(model_path=str(path))
    inputs = sorted(interpreter.get_input_details(), key=lambda detail: -len(detail["shape"]))
    for feeds in _feeds(configuration, len(inputs)):
        for detail, feed in zip(inputs, feeds):
            interpreter.resize_tensor_input(detail["index"], feed.shape)
        interpreter.allocate_tensors()
        for detail, feed in zip(inputs, feeds):
            interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
        _assert_matches_keras(model, feeds, [interpreter.get_tensor(d["index"])
                                             for d in interpreter.get_output_details()])


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_every_configuration_runs_in_onnx_runtime_on_the_native_gru_op(configuration, tmp_path):
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    model = _model(configuration)
    path = export_onnx(model, tmp_path / "model.onnx")
    operators = [node.op_type for node in onnx.load(str(path)).graph.node]
    recurrent_layers = {"bidirectional": 2, "stacked": 3}.get(configuration, 1)
    assert operators.count("GRU") == recurrent_layers and "Loop" not in operators
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [item.name for item in sorted(session.get_inputs(), key=lambda item: -len(item.shape))]
    for feeds in _feeds(configuration, len(names)):
        _assert_matches_keras(model, feeds, session.run(None, dict(zip(names, feeds))))


def test_a_sequential_model_never_called_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    model = keras.Sequential([keras.Input((None, FEATURES)), GRU(UNITS), keras.layers.Dense(1)])
    session = onnxruntime.InferenceSession(str(export_onnx(model, tmp_path / "model.onnx")))
    x = np.random.default_rng(2).normal(size=(2, 5, FEATURES)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model(x), atol=2e-6)


def test_exports_refuse_a_path_without_their_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.tflite"):
        export_litert(_model("last state"), tmp_path / "model.bin")
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(_model("last state"), tmp_path / "model.bin")
