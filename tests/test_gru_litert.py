"""gru_core converts to LiteRT with built-in ops only, in every configuration, and the
flatbuffer computes what Keras does at any batch size and length (run in ai-edge-litert)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gru_core import GRU
from gru_core.export import export_litert

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the litert extra is not installed")

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


CONFIGURATIONS = ["last state", "return_sequences", "go_backwards", "masked", "bidirectional", "stacked",
                  "initial and returned state"]


def _uses_only_builtin_ops(path) -> bool:
    # A Flex (SELECT_TF_OPS) op is stored as a custom op named Flex...; LiteRT refuses it.
    return b"Flex" not in path.read_bytes()


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_every_configuration_runs_in_litert_as_in_keras(configuration, tmp_path):
    model = _model(configuration)
    path = export_litert(model, tmp_path / "model.tflite")
    assert _uses_only_builtin_ops(path)
    interpreter = litert.Interpreter(model_path=str(path))
    inputs = sorted(interpreter.get_input_details(), key=lambda detail: -len(detail["shape"]))
    rng = np.random.default_rng(1)
    for batch, length in [(1, 1), (3, 9), (2, 4)]:
        feeds = [rng.normal(size=(batch, length, FEATURES)).astype(np.float32)]
        if len(inputs) == 2:
            feeds.append(rng.normal(size=(batch, UNITS)).astype(np.float32))
        if configuration in ("masked", "bidirectional") and length > 2:
            feeds[0][0, -2:] = 0.0  # the first row is two steps shorter
        for detail, feed in zip(inputs, feeds):
            interpreter.resize_tensor_input(detail["index"], feed.shape)
        interpreter.allocate_tensors()
        for detail, feed in zip(inputs, feeds):
            interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
        got = sorted((interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()),
                     key=lambda array: array.ndim)
        expected = model(feeds if len(feeds) == 2 else feeds[0])
        expected = sorted((np.asarray(e) for e in (expected if isinstance(expected, list) else [expected])),
                          key=lambda array: array.ndim)
        for actual, wanted in zip(got, expected):
            assert actual.shape == wanted.shape
            np.testing.assert_allclose(actual, wanted, atol=2e-6)


def test_export_litert_refuses_a_path_without_the_tflite_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.tflite"):
        export_litert(_model("last state"), tmp_path / "model.bin")
