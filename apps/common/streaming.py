"""Causal speech models, built and run chunk by chunk with external state (both speech apps' `--streaming`).

A streaming model is the causal front end (`StreamingFeatures`, named
"features"), "feature_norm", convolution blocks "conv0", "conv1", … (each a
causal `Conv1D` with its "_norm" and "_relu"), unidirectional `gru_core.GRU`
layers "gru0", "gru1", … built with `return_state=True`, and the app's head.
`causal_blocks` and `causal_grus` build that middle; `stream_layers` runs it
on one chunk with the state of everything before it, as kws_streaming's
external-state mode does: the front end's state, the last `kernel_size - 1`
frames each convolution has seen, and each GRU's state
(`initial_stream_state`). A strided convolution keeps its alignment because
chunks hold whole multiples of the total stride (`check_chunk`).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.cells import recurrent_layer
from apps.common.speech_features import checked_waveform
from apps.common.streaming_features import HOP

CONV_WIDTH = 5
# The names of a streaming export's state tensors begin with it, in `stream`'s inputs and outputs.
STATE_PREFIX = "state_"
# The most streams one `initial_state` starts: more would only ask for memory the server lacks.
MAX_STREAMS = 65536
STREAM_COUNT_PROBLEM = f"batch_size: give 0 to {MAX_STREAMS} streams, got"


def causal_blocks(x, filters: int, strides: tuple[int, ...]):
    """Causal `Conv1D` blocks (width `CONV_WIDTH`, one per stride), each with batch norm and ReLU."""
    for block, stride in enumerate(strides):
        x = keras.layers.Conv1D(filters, CONV_WIDTH, strides=stride, padding="causal", use_bias=False,
                                name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{block}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{block}_relu")(x)
    return x


def causal_grus(x, units: int, layers: int, last_sequences: bool, between=None):
    """`layers` unidirectional `gru_core.GRU`s; the last returns its sequence only if `last_sequences`.
    `between(x, layer)`: what follows each layer (dropout)."""
    for layer in range(layers):
        sequences = last_sequences or layer < layers - 1
        x = recurrent_layer("gru", units, return_sequences=sequences, return_state=True, name=f"gru{layer}")(x)[0]
        if between is not None:
            x = between(x, layer)
    return x


def _convolutions(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith("conv") and "_" not in layer.name]


def gru_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith("gru")]


def chunk_hops(model: keras.Model) -> int:
    """The 10 ms hops a chunk of `model`'s holds a whole number of: its convolutions' total stride."""
    return math.prod(conv.strides[0] for conv in _convolutions(model))


def checked_stream_count(batch_size: tf.Tensor) -> tf.Tensor:
    """An `initial_state` signature's `batch_size`, after an in-graph check that it is 0 to
    `MAX_STREAMS`, whose error names it (not in a file, which has no assertion op)."""
    if tracing_for_a_file():
        return batch_size
    check = tf.debugging.Assert((batch_size >= 0) & (batch_size <= MAX_STREAMS),
                                [STREAM_COUNT_PROBLEM, batch_size])
    with tf.control_dependencies([check]):
        return tf.identity(batch_size)


def checked_state(state: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """A `stream` signature's model state, after in-graph checks that every value is finite, each
    failing with its input's name (not in a file, which has no assertion op)."""
    if tracing_for_a_file():
        return state
    return {name: tf.debugging.assert_all_finite(
        value, f"{STATE_PREFIX}{name}: a stream's state must be finite (send back what the last call returned)")
        for name, value in state.items()}


def initial_stream_state(model: keras.Model, batch_size: tf.Tensor | int) -> dict[str, tf.Tensor]:
    """The state of `batch_size` streams that have heard nothing: what `stream_layers` starts from."""
    features = model.get_layer("features")
    state = {f"features_{name}": value for name, value in features.initial_state(batch_size).items()}
    channels = features.config.num_cepstra
    for conv in _convolutions(model):
        state[conv.name] = tf.zeros([batch_size, conv.kernel_size[0] - 1, channels])
        channels = conv.filters
    for layer in gru_layers(model):
        state[layer.name] = tf.zeros([batch_size, layer.units])
    return state


def state_specs(model: keras.Model) -> list[tf.TensorSpec]:
    """A spec per tensor of `initial_stream_state`, in its order, named with `STATE_PREFIX`, any batch."""
    return [tf.TensorSpec([None, *value.shape[1:]], tf.float32, name=STATE_PREFIX + name)
            for name, value in initial_stream_state(model, 1).items()]


def prefixed(state: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """`state` under its exported names (`STATE_PREFIX` first)."""
    return {STATE_PREFIX + name: value for name, value in state.items()}


def stream_layers(model: keras.Model, chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
    """`[batch, samples]` (a non-empty whole number of `chunk_hops`) after `state` -> (the last GRU's
    output for the chunk, as the layer returns it, and the new state), in inference mode.

    Each convolution runs on its kept frames followed by the chunk's and keeps
    the outputs its causal padding did not make; each GRU starts from its state.
    """
    x, feature_state = model.get_layer("features").stream(
        chunk, {name[len("features_"):]: value for name, value in state.items() if name.startswith("features_")})
    new_state = {f"features_{name}": value for name, value in feature_state.items()}
    x = model.get_layer("feature_norm")(x, training=False)
    for conv in _convolutions(model):
        kept = conv.kernel_size[0] - 1
        buffered = tf.concat([state[conv.name], x], axis=1)
        new_state[conv.name] = buffered[:, -kept:]
        # The causal padding adds `kept` zeros before the buffer: its first outputs read them.
        x = conv(buffered)[:, kept // conv.strides[0]:]
        x = model.get_layer(f"{conv.name}_relu")(model.get_layer(f"{conv.name}_norm")(x, training=False))
    for layer in gru_layers(model):
        x, new_state[layer.name] = layer(x, initial_state=[state[layer.name]], training=False)
    return x, new_state


def has_audio(chunk: tf.Tensor) -> tf.Tensor:
    """Whether `chunk` has rows and samples, so the model runs on it: no frame changes no state, and
    Keras's convolutions mis-shape an empty batch."""
    shape = tf.shape(chunk)
    return tf.logical_and(shape[0] > 0, shape[1] > 0)


def partial_step_error(samples: int) -> str:
    """The one-line error for a chunk that is not a whole number of `samples`-sample steps."""
    milliseconds = samples * 10 // HOP  # a hop is 10 ms
    return f"waveform_chunk: a chunk holds a whole number of {samples}-sample ({milliseconds} ms) steps"


def check_chunk(chunk: tf.Tensor, hops: int) -> tf.Tensor:
    """`chunk`, after checking that its samples are finite and that it holds a whole number of `hops`
    10 ms hops (one-line errors)."""
    if tracing_for_a_file():  # neither format has an assertion op: the client checks
        return chunk
    chunk = checked_waveform(chunk, "waveform_chunk", allow_empty=True)
    samples = hops * HOP
    check = tf.debugging.assert_equal(tf.shape(chunk)[1] % samples, 0, message=partial_step_error(samples))
    with tf.control_dependencies([check]):
        return tf.identity(chunk)
