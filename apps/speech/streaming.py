"""The streaming word recogniser: causal features and convolutions, unidirectional GRUs, state carried.

`build_streaming_model` is `gru-suite train speech --streaming`'s model: the
causal front end (`apps.common.streaming_features`), causal convolutions
(stride 1) and stacked unidirectional `gru_core.GRU` layers, trained on whole
clips like the bidirectional model. `stream_step` runs the same layers on
one chunk of audio with the state of everything before it, as kws_streaming's
external-state mode does: the front end's state, the last `kernel_size - 1`
frames each convolution has seen, and each GRU's state. After any chunk the
label probabilities are those of the whole clip so far.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.cells import recurrent_layer
from apps.common.speech_features import FEATURES, SpecAugment
from apps.common.streaming_features import HOP, StreamingFeatures
from apps.speech.settings import SpeechTrain

CONV_BLOCKS = 2
CONV_WIDTH = 5


def build_streaming_model(num_labels: int, config: SpeechTrain, *, recurrent_layers: int = 2,
                          conv_filters: int = 64, dropout: float = 0.2) -> keras.Model:
    """Waveform `[batch, CLIP_SAMPLES]` -> label probabilities `[batch, num_labels]`, causally.

    Streaming features, batch normalization, SpecAugment (training only),
    `CONV_BLOCKS` causal Conv1D blocks (width `CONV_WIDTH`, stride 1),
    `recurrent_layers` unidirectional `gru_core.GRU` layers (the last returns
    its final state), dropout and a softmax. From `config`: units, the mel
    band and the seed.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}.")
    if config.units < 1 or recurrent_layers < 1 or conv_filters < 1:
        raise ValueError("units, recurrent_layers and conv_filters must be positive.")
    waveforms = keras.Input((FEATURES.clip_samples,), name="waveform")
    x = StreamingFeatures(config.min_frequency, config.max_frequency, name="features")(waveforms)
    x = keras.layers.BatchNormalization(name="feature_norm")(x)
    x = SpecAugment(seed=config.seed, name="spec_augment")(x)
    for block in range(CONV_BLOCKS):
        x = keras.layers.Conv1D(conv_filters, CONV_WIDTH, padding="causal", use_bias=False, name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{block}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{block}_relu")(x)
    for layer in range(recurrent_layers):
        x = recurrent_layer("gru", config.units, return_sequences=layer < recurrent_layers - 1,
                            return_state=True, name=f"gru{layer}")(x)[0]
    x = keras.layers.Dropout(dropout, seed=config.seed, name="dropout")(x)
    probabilities = keras.layers.Dense(num_labels, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(waveforms, probabilities, name="speech_streaming_gru")


def _gru_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith("gru")]


def initial_stream_state(model: keras.Model, batch_size: tf.Tensor | int) -> dict[str, tf.Tensor]:
    """The state of `batch_size` streams that have heard nothing: what `stream_step` starts from."""
    features = model.get_layer("features")
    state = {f"features_{name}": value for name, value in features.initial_state(batch_size).items()}
    for block in range(CONV_BLOCKS):
        conv = model.get_layer(f"conv{block}")
        state[f"conv{block}"] = tf.zeros([batch_size, conv.kernel_size[0] - 1, features.config.num_cepstra
                                          if block == 0 else model.get_layer(f"conv{block - 1}").filters])
    for layer in _gru_layers(model):
        state[layer.name] = tf.zeros([batch_size, layer.units])
    return state


def stream_step(model: keras.Model, chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
    """`[batch, samples]` (whole 10 ms hops) after `state` -> (label probabilities, the new state).

    The layers of a `build_streaming_model` model in inference mode, on the
    chunk's frames only: each convolution sees its kept frames before them and
    drops the outputs that its causal padding made, each GRU starts from its state.
    An empty chunk keeps the state and answers from it (not in a LiteRT or ONNX
    file: tf2onnx converts no GRU inside a branch, so a file takes whole hops only).
    """
    if tracing_for_a_file():
        return _step(model, chunk, state)
    last_gru = _gru_layers(model)[-1].name
    return tf.cond(
        tf.shape(chunk)[1] > 0,
        lambda: _step(model, chunk, state),
        lambda: (model.get_layer("probabilities")(state[last_gru]), dict(state)),
    )


def _step(model: keras.Model, chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
    features = model.get_layer("features")
    x, feature_state = features.stream(
        chunk, {name[len("features_"):]: value for name, value in state.items() if name.startswith("features_")})
    new_state = {f"features_{name}": value for name, value in feature_state.items()}
    x = model.get_layer("feature_norm")(x, training=False)
    for block in range(CONV_BLOCKS):
        conv = model.get_layer(f"conv{block}")
        kept = conv.kernel_size[0] - 1
        buffered = tf.concat([state[f"conv{block}"], x], axis=1)
        new_state[f"conv{block}"] = buffered[:, -kept:]
        x = conv(buffered)[:, kept:]
        x = model.get_layer(f"conv{block}_relu")(model.get_layer(f"conv{block}_norm")(x, training=False))
    for layer in _gru_layers(model):
        sequence, last_state = layer(x, initial_state=[state[layer.name]], training=False)
        # The state is the last output, and over no frames it is the state before them.
        new_state[layer.name] = last_state
        x = sequence if layer.return_sequences else last_state
    return model.get_layer("probabilities")(x), new_state


def check_chunk(chunk: tf.Tensor) -> tf.Tensor:
    """`chunk`, after checking that it holds a whole number of 10 ms hops (a one-line error otherwise)."""
    if tracing_for_a_file():  # neither format has an assertion op: the client checks
        return chunk
    samples = tf.shape(chunk)[1]
    check = tf.debugging.assert_equal(
        samples % HOP, 0, message=f"waveform_chunk: a chunk holds a whole number of {HOP}-sample (10 ms) hops")
    with tf.control_dependencies([check]):
        return tf.identity(chunk)
