"""What a word-recogniser export serves, and how a client of a loaded export reads it."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.speech_features import FEATURES, change_speed, checked_waveform, fix_length
from apps.common.streaming import (STATE_PREFIX, check_chunk, checked_state, checked_stream_count, chunk_hops,
                                   initial_stream_state, prefixed, state_specs)
from apps.speech.streaming import stream_step


def speed_averaged_probabilities(
    model: keras.Model, waveforms: tf.Tensor, speeds: tuple[float, ...] = (1.0,)
) -> tf.Tensor:
    """The model's label probabilities, averaged over copies played at `speeds`.

    `waveforms` are `[batch, CLIP_SAMPLES]`. With several speeds the
    log-probabilities are averaged (a product of experts) and renormalised;
    each copy plays the voice a little higher or lower, which helps with a
    speaker whose voice lies outside those trained on.
    """
    if speeds == (1.0,):
        return model(waveforms, training=False)
    log_probabilities = [
        tf.math.log(model(change_speed(waveforms, speed), training=False) + 1e-7)
        for speed in speeds
    ]
    return tf.nn.softmax(tf.add_n(log_probabilities) / len(speeds))


class SpeechServer(tf.Module):
    """What an export serves: any-length waveforms in, labels and probabilities out.

    `speeds`: the model is run on the clip played at each of these speeds and
    the results averaged (`speed_averaged_probabilities`); `(1.0,)` runs it once.
    """

    def __init__(self, model: keras.Model, labels: list[str], speeds: tuple[float, ...] = (1.0,)):
        super().__init__(name="speech_server")
        if not speeds or any(speed <= 0 for speed in speeds):
            raise ValueError(f"speeds must be positive factors, got {speeds}.")
        self.model = model
        self.labels = tf.constant(labels)
        self.speeds = tuple(float(speed) for speed in speeds)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        """`waveform`: float32 `[batch, samples]`, 16 kHz mono, any length but none; finite samples."""
        clips = fix_length(checked_waveform(waveform, "waveform"), FEATURES.clip_samples)
        if tracing_for_a_file():
            # tf2onnx converts no GRU inside a branch: a LiteRT or ONNX file has no empty-batch guard.
            probabilities = speed_averaged_probabilities(self.model, clips, self.speeds)
        else:
            # Keras's convolutions mis-shape an empty batch, so it never reaches the model.
            probabilities = tf.cond(
                tf.shape(clips)[0] > 0,
                lambda: speed_averaged_probabilities(self.model, clips, self.speeds),
                lambda: tf.zeros([0, self.labels.shape[0]]),
            )
        label = tf.gather(self.labels, tf.argmax(probabilities, axis=-1))
        return {"label": label, "probabilities": probabilities}

    def endpoints(self) -> dict[str, Callable]:
        """The export's signatures, by name."""
        return {"serving_default": self.serve}


class StreamingSpeechServer(SpeechServer):
    """A streaming model's export: `serving_default` on whole clips, and `stream` and `initial_state`.

    External state, as kws_streaming's external-state mode: `initial_state`
    (`batch_size`, int32 scalar) gives every state tensor, named `state_…`;
    `stream` takes `waveform_chunk` (float32 `[batch, samples]`, 16 kHz, a
    whole number of 10 ms hops) and those tensors, and returns `label` and
    `probabilities` for the audio so far and the new state under the same
    names, to send with the next chunk.
    """

    def __init__(self, model: keras.Model, labels: list[str]):
        super().__init__(model, labels)
        specs = state_specs(model)
        names = [spec.name[len(STATE_PREFIX):] for spec in specs]

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        def initial_state(batch_size):
            return prefixed(initial_stream_state(model, checked_stream_count(batch_size)))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform_chunk"), *specs])
        def stream(waveform_chunk, *states):
            chunk = check_chunk(waveform_chunk, chunk_hops(model))
            probabilities, state = stream_step(model, chunk, checked_state(dict(zip(names, states))))
            return {"probabilities": probabilities, "label": tf.gather(self.labels, tf.argmax(probabilities, -1)),
                    **prefixed(state)}

        self.initial_state, self.stream = initial_state, stream

    def endpoints(self) -> dict[str, Callable]:
        return {**super().endpoints(), "stream": self.stream, "initial_state": self.initial_state}


def speech_server(model: keras.Model, labels: list[str], test_speeds: tuple[float, ...] = (1.0,),
                  streaming: bool = False) -> SpeechServer:
    """The server of a model trained with `--streaming` or without."""
    return StreamingSpeechServer(model, labels) if streaming else SpeechServer(model, labels, test_speeds)


def served_probabilities(serve, waveforms: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The label probabilities a speech `serving_default` gives `waveforms`, `batch_size` clips at a time."""
    return np.concatenate([
        serve(waveform=tf.constant(waveforms[start:start + batch_size]))["probabilities"].numpy()
        for start in range(0, len(waveforms), batch_size)
    ])
