"""The transcriber: utterances of any length -> text, with a stacked bidirectional GRU and CTC.

The acoustic model (`build_acoustic_model`) shares the word recogniser's
features (`apps.common.speech_features.speech_features`): MFCCs computed in the graph
from the raw waveform. A convolutional front end halves the frame rate
(20 ms per output frame), stacked bidirectional recurrent layers read the
utterance both ways, and a dense layer gives, per frame, logits over
`ALPHABET` plus the CTC blank (the last class, as
`tf.nn.ctc_beam_search_decoder` requires). `CTCModel` trains it with
`tf.nn.ctc_loss`; `ctc_decode` (greedy or beam search) turns its frames into
text inside the graph (`apps.transcriber.serving`), so the export serves raw
waveforms and returns text.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.common.audio import SAMPLE_RATE
from apps.common.cells import recurrent_layer
from apps.common.speech_features import FEATURES, SpecAugment, SpeechFeatures
from apps.common.streaming import causal_blocks, causal_grus
from apps.common.streaming_features import StreamingFeatures
from apps.transcriber.labels import DECODINGS, LabelSet
from apps.transcriber.settings import TranscriberTrain

TIME_STRIDE = 2  # feature frames per output frame
OUTPUT_FRAME_SECONDS = TIME_STRIDE * FEATURES.frame_step / SAMPLE_RATE


def feature_frames(samples: tf.Tensor, streaming: bool = False) -> tf.Tensor:
    """Feature frames of waveforms `samples` long: `speech_features` has no centring, so none below one
    window; the streaming front end (`StreamingFeatures`) has one per 10 ms hop begun."""
    samples = tf.convert_to_tensor(samples, tf.int32)
    if streaming:
        return (samples + FEATURES.frame_step - 1) // FEATURES.frame_step
    return tf.maximum(0, (samples - FEATURES.frame_length) // FEATURES.frame_step + 1)


def output_frames(samples: tf.Tensor, streaming: bool = False) -> tf.Tensor:
    """Frames of label logits for waveforms `samples` long: at most this many characters."""
    return (feature_frames(samples, streaming) + TIME_STRIDE - 1) // TIME_STRIDE


def is_streaming(acoustic: keras.Model) -> bool:
    """Whether `acoustic` is `build_streaming_acoustic_model`'s, with the causal front end."""
    return isinstance(acoustic.get_layer("features"), StreamingFeatures)


@keras.saving.register_keras_serializable(package="speech")
class FrameMask(keras.layers.Layer):
    """`[frames, samples]` -> `[batch, time]` bool: True for the frames a waveform of `samples`
    samples fills (the rest of the row is padding of a shorter utterance).

    Args:
        time_stride: feature frames per frame of `frames` (1: feature frames;
            `TIME_STRIDE`: output frames).
    """

    def __init__(self, time_stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        if time_stride < 1:
            raise ValueError(f"time_stride must be at least 1, got {time_stride}.")
        self.time_stride = time_stride

    def call(self, inputs):
        frames, samples = inputs
        own = (feature_frames(samples) + self.time_stride - 1) // self.time_stride
        return tf.sequence_mask(own, tf.shape(frames)[1])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2])

    def get_config(self):
        return {**super().get_config(), "time_stride": self.time_stride}


def _zero_padding(x, samples, time_stride: int, name: str):
    """`x` with the frames that lie in a row's padding set to zero, so that a
    convolution sees the same edge whether or not the utterance was padded."""
    valid = FrameMask(time_stride, name=name)([x, samples])
    # expand_dims, not [..., None]: LiteRT has no strided slice that adds an axis.
    return x * keras.ops.cast(keras.ops.expand_dims(valid, -1), x.dtype)


def build_acoustic_model(num_classes: int, config: TranscriberTrain) -> keras.Model:
    """`{"waveform": [batch, samples], "samples": [batch]}` -> logits `[batch, frames, num_classes]`.

    `waveform` holds 16 kHz mono utterances padded with zeros to the longest;
    `samples` says how long each one really is, so padding is masked out of
    the features, the convolutions and the recurrent layers (both directions
    start at the utterance's own end): an utterance is transcribed the same
    alone or in a batch.
    MFCC features (mel filters from `config.min_frequency` to
    `config.max_frequency` Hz), batch normalization, SpecAugment (training
    only), two Conv1D blocks of `config.conv_filters` (kernel 5; the first of
    stride `TIME_STRIDE`), then `config.layers` bidirectional `config.cell`
    layers of `config.units` each with `config.dropout` between them, and a
    dense layer of `num_classes` logits (the last one the blank).
    """
    cell, units, recurrent_layers = config.cell, config.units, config.layers
    conv_filters, dropout, seed = config.conv_filters, config.dropout, config.seed
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (a label and the blank), got {num_classes}.")
    if units < 1 or recurrent_layers < 1 or conv_filters < 1:
        raise ValueError("units, recurrent_layers and conv_filters must be positive.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    waveform = keras.Input((None,), name="waveform")
    samples = keras.Input((), dtype="int32", name="samples")
    x = SpeechFeatures(config.min_frequency, config.max_frequency, name="features")(waveform, samples=samples)
    x = keras.layers.BatchNormalization(name="feature_norm")(x)
    x = SpecAugment(max_time=8, seed=seed, name="spec_augment")(x)
    for block, stride in enumerate((TIME_STRIDE, 1)):
        x = _zero_padding(x, samples, TIME_STRIDE ** block, f"conv{block}_frames")
        # Two frames of zeros each side, whatever the length: "same" padding of a strided
        # convolution would shift the frames by one in batches of odd length.
        x = keras.layers.ZeroPadding1D(2, name=f"conv{block}_padding")(x)
        x = keras.layers.Conv1D(
            conv_filters, 5, strides=stride, padding="valid", use_bias=False, name=f"conv{block}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"conv{block}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{block}_relu")(x)
    mask = FrameMask(TIME_STRIDE, name="frame_mask")([x, samples])
    for layer in range(recurrent_layers):
        recurrent = recurrent_layer(cell, units, return_sequences=True, name=f"{cell}{layer}")
        x = keras.layers.Bidirectional(recurrent, name=f"bidirectional_{cell}{layer}")(x, mask=mask)
        x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout{layer}")(x)
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model({"waveform": waveform, "samples": samples}, logits, name=f"transcriber_{cell}")


def build_streaming_acoustic_model(num_classes: int, config: TranscriberTrain) -> keras.Model:
    """`build_acoustic_model`'s inputs and outputs, causally: `gru-suite train transcriber --streaming`.

    The streaming front end (`StreamingFeatures`), batch normalization,
    SpecAugment (training only), two causal Conv1D blocks (the first of
    stride `TIME_STRIDE`), `config.layers` unidirectional `gru_core.GRU`
    layers with dropout between them, and the logits. Nothing looks ahead, so
    a row's zero padding changes none of its own frames and `samples` is
    needed only to count them (`output_frames(samples, streaming=True)`).
    `apps.common.streaming.stream_layers` runs it chunk by chunk.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (a label and the blank), got {num_classes}.")
    if config.units < 1 or config.layers < 1 or config.conv_filters < 1:
        raise ValueError("units, layers and conv_filters must be positive.")
    waveform = keras.Input((None,), name="waveform")
    samples = keras.Input((), dtype="int32", name="samples")
    x = StreamingFeatures(config.min_frequency, config.max_frequency, name="features")(waveform)
    x = keras.layers.BatchNormalization(name="feature_norm")(x)
    x = SpecAugment(max_time=8, seed=config.seed, name="spec_augment")(x)
    x = causal_blocks(x, config.conv_filters, strides=(TIME_STRIDE, 1))
    x = causal_grus(x, config.units, config.layers, last_sequences=True, between=lambda x, layer: keras.layers.Dropout(
        config.dropout, seed=config.seed, name=f"dropout{layer}")(x))
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model({"waveform": waveform, "samples": samples}, logits, name="transcriber_streaming_gru")


class CTCModel(keras.Model):
    """An acoustic model trained with CTC: `fit` takes `(inputs, labels)`.

    Only for training: the acoustic model inside is what is exported.

    `labels`: int32 `[batch, max_length]` ids (`LabelSet.encode`), padded
    with -1; the blank is the last class. The loss is `tf.nn.ctc_loss` over each utterance's own output
    frames (`output_frames` of its `samples`), averaged over the batch.
    """

    def __init__(self, acoustic: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.acoustic = acoustic
        self.streaming = is_streaming(acoustic)
        # Built now, as fit's backups require: one window of silence.
        self({"waveform": tf.zeros([1, FEATURES.frame_length]), "samples": tf.constant([FEATURES.frame_length])})

    def call(self, inputs, training=None):
        return self.acoustic(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        label_length = tf.reduce_sum(tf.cast(y >= 0, tf.int32), axis=1)
        losses = tf.nn.ctc_loss(
            labels=tf.maximum(y, 0), logits=tf.cast(y_pred, tf.float32), label_length=label_length,
            logit_length=output_frames(x["samples"], self.streaming), logits_time_major=False, blank_index=-1,
        )
        return tf.reduce_mean(losses)


def ctc_decode(logits: tf.Tensor, frames: tf.Tensor, labels: LabelSet, decoding: str = "greedy",
               beam_width: int = 16) -> tf.Tensor:
    """Per-frame logits `[batch, time, labels.num_classes]` -> transcripts `[batch]` (strings).

    `frames` `[batch]`: how many frames of each row to read. Greedy decoding
    takes the likeliest class of every frame, merges repeats and drops
    blanks; beam search (`tf.nn.ctc_beam_search_decoder`, `beam_width`
    prefixes) finds the likeliest label sequence summed over its alignments.
    Tokens are joined by `labels.separator`; runs of spaces become one and
    the ends are trimmed.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}.")
    time_major = tf.transpose(tf.nn.log_softmax(tf.cast(logits, tf.float32)), [1, 0, 2])
    frames = tf.cast(frames, tf.int32)
    blank = labels.num_classes - 1
    if decoding == "greedy":
        decoded, _ = tf.nn.ctc_greedy_decoder(time_major, frames, merge_repeated=True, blank_index=blank)
    else:
        decoded, _ = tf.nn.ctc_beam_search_decoder(time_major, frames, beam_width=beam_width, top_paths=1)
    ids = tf.sparse.to_dense(decoded[0], default_value=blank)
    # The decoders size the dense rows to the longest output; pad a batch none of them reached.
    ids = tf.pad(ids, [[0, tf.shape(logits)[0] - tf.shape(ids)[0]], [0, 0]], constant_values=blank)
    tokens = tf.constant(list(labels.tokens) + [""])  # "" for the blank, which pads the rows
    text = tf.strings.reduce_join(tf.gather(tokens, ids), axis=1, separator=labels.separator)
    return tf.strings.strip(tf.strings.regex_replace(text, " +", " "))
