"""The streaming word recogniser: `gru-suite train speech --streaming`'s model and its step.

`build_streaming_model` is the causal front end, causal convolutions (stride
1) and stacked unidirectional `gru_core.GRU` layers (`apps.common.streaming`),
trained on whole clips like the bidirectional model; its head reads the last
GRU's final state. `stream_step` runs it on one chunk of audio with the state
of everything before it: after any chunk the label probabilities are those
of the whole clip so far.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.speech_features import FEATURES, SpecAugment
from apps.common.streaming import causal_blocks, causal_grus, gru_layers, has_audio, stream_layers
from apps.common.streaming_features import StreamingFeatures
from apps.speech.settings import SpeechTrain


def build_streaming_model(num_labels: int, config: SpeechTrain, *, recurrent_layers: int = 2,
                          conv_filters: int = 64, dropout: float = 0.2) -> keras.Model:
    """Waveform `[batch, CLIP_SAMPLES]` -> label probabilities `[batch, num_labels]`, causally.

    Streaming features, batch normalization, SpecAugment (training only), two
    causal Conv1D blocks (stride 1), `recurrent_layers` unidirectional
    `gru_core.GRU` layers (the last returns its final state), dropout and a
    softmax. From `config`: units, the mel band and the seed.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}.")
    if config.units < 1 or recurrent_layers < 1 or conv_filters < 1:
        raise ValueError("units, recurrent_layers and conv_filters must be positive.")
    waveforms = keras.Input((FEATURES.clip_samples,), name="waveform")
    x = StreamingFeatures(config.min_frequency, config.max_frequency, name="features")(waveforms)
    x = keras.layers.BatchNormalization(name="feature_norm")(x)
    x = SpecAugment(seed=config.seed, name="spec_augment")(x)
    x = causal_blocks(x, conv_filters, strides=(1, 1))
    x = causal_grus(x, config.units, recurrent_layers, last_sequences=False)
    x = keras.layers.Dropout(dropout, seed=config.seed, name="dropout")(x)
    probabilities = keras.layers.Dense(num_labels, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(waveforms, probabilities, name="speech_streaming_gru")


def stream_step(model: keras.Model, chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
    """`[batch, samples]` (whole 10 ms hops) after `state` -> (label probabilities, the new state).

    An empty chunk or batch keeps the state and answers from it (not in a
    LiteRT or ONNX file: tf2onnx converts no GRU inside a branch, so a file
    takes non-empty chunks only).
    """
    def step():
        last_output, new_state = stream_layers(model, chunk, state)
        return model.get_layer("probabilities")(last_output), new_state

    if tracing_for_a_file():
        return step()
    last_gru = gru_layers(model)[-1].name
    return tf.cond(has_audio(chunk), step,
                   lambda: (model.get_layer("probabilities")(state[last_gru]), dict(state)))
