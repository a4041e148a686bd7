"""Training the transcriber: augmented utterances bucketed by length, CTC, Adam with a cosine schedule.

The defaults are `TranscriberTrain`'s, the settings `gru-suite train transcriber` fills.
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import tensorflow as tf

from apps.common.app import Fitting
from apps.common.audio import SAMPLE_RATE
from apps.common.errors import InputError
from apps.common.speech_features import mix_noise
from apps.transcriber.data import TranscribedSplit, TranscriptionData
from apps.transcriber.labels import LabelSet
from apps.transcriber.model import (
    OUTPUT_FRAME_SECONDS,
    CTCModel,
    build_acoustic_model,
    build_streaming_acoustic_model,
    output_frames,
)
from apps.transcriber.settings import TranscriberTrain

AUGMENTATION_SPEEDS = (0.9, 1.1)  # the speed perturbation of training utterances
# Half of a streaming model's training utterances start after up to this much silence (noise is mixed
# over it too): a microphone's stream seldom starts with the first word, and the features' running
# mean settles on the silence first. Trained without it, a streaming model lost the first word
# after 0.6 s of leading noise in 25% of utterances; with it, in 10%.
STREAMING_LEAD_IN_SECONDS = 0.6


def augment_utterance(
    waveform: tf.Tensor,
    noise: tf.Tensor,
    *,
    speed_range: tuple[float, float] = AUGMENTATION_SPEEDS,
    noise_probability: float = 0.8,
    snr_db_range: tuple[float, float] = (5.0, 30.0),
    max_lead_in: int = 0,
) -> tf.Tensor:
    """One training utterance (1-D, any length) -> a perturbed copy (tf.data map function).

    Speed perturbation (linear resampling by a random factor: tempo and pitch
    together), for half of them up to `max_lead_in` samples of silence
    before, and, with `noise_probability`, a random stretch of `noise`
    (repeated as needed) mixed in at a random signal-to-noise ratio.
    """
    length = tf.cast(tf.cast(tf.shape(waveform)[0], tf.float32) / tf.random.uniform([], *speed_range), tf.int32)
    waveform = tf.image.resize(waveform[tf.newaxis, tf.newaxis, :, tf.newaxis], [1, length])[0, 0, :, 0]
    if max_lead_in:
        lead_in = tf.random.uniform([], 0, max_lead_in + 1, tf.int32) * tf.cast(tf.random.uniform([]) < 0.5, tf.int32)
        waveform = tf.pad(waveform, [[lead_in, 0]])
        length += lead_in
    noise_length = tf.shape(noise)[0]
    repeated = tf.tile(noise, [length // noise_length + 2])
    start = tf.random.uniform([], 0, noise_length, tf.int32)
    return mix_noise(waveform, repeated[start : start + length], noise_probability, snr_db_range)


def utterance_dataset(
    split: TranscribedSplit, labels: LabelSet, batch_size: int, *, noise: np.ndarray | None = None, seed: int = 0,
    fixed_lengths: bool = False, max_lead_in: int = 0,
) -> tf.data.Dataset:
    """`({"waveform", "samples"}, labels)` batches of utterances of similar length.

    With `noise`, a training set: shuffled every epoch and augmented
    (`augment_utterance`, with `max_lead_in`). Utterances are bucketed by length so that little
    of a batch is padding; label ids are padded with -1. With `fixed_lengths`
    (for a step that XLA compiles), waveforms are padded to their bucket's
    boundary instead of the batch's longest, so an epoch has four lengths.
    """
    ids = labels.encode(split.transcripts)

    def examples():
        for waveform, label in zip(split.waveforms, ids):
            yield waveform, np.asarray(label, np.int32)

    dataset = tf.data.Dataset.from_generator(examples, output_signature=(
        tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)))
    dataset = dataset.cache()
    if noise is not None:
        noise_tensor = tf.constant(noise)
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True).map(
            lambda waveform, label: (augment_utterance(waveform, noise_tensor, max_lead_in=max_lead_in), label),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda waveform, label: ({"waveform": waveform, "samples": tf.shape(waveform)[0]}, label))
    lengths = np.array([len(waveform) for waveform in split.waveforms])
    boundaries = sorted({int(q) for q in np.quantile(lengths, [0.25, 0.5, 0.75])} - {0})
    if fixed_lengths:
        # The last bucket's boundary, which its waveforms are padded to (less one):
        # past the longest utterance, slowed down and led in by augmentation in training.
        slowest, lead_in = (AUGMENTATION_SPEEDS[0], max_lead_in) if noise is not None else (1.0, 0)
        boundaries.append(int(np.ceil(lengths.max() / slowest)) + lead_in + 2)
    return dataset.bucket_by_sequence_length(
        lambda inputs, label: inputs["samples"], boundaries, [batch_size] * (len(boundaries) + 1),
        padding_values=({"waveform": 0.0, "samples": 0}, -1), pad_to_bucket_boundary=fixed_lengths,
    ).prefetch(tf.data.AUTOTUNE)


def frames_needed(ids: list[int]) -> int:
    """Output frames CTC needs to emit label `ids`: one per label, and a blank between two equal ones."""
    return len(ids) + sum(first == second for first, second in zip(ids, ids[1:]))


def fitting_utterances(split: TranscribedSplit, labels: LabelSet, speed_up: float = 1.0,
                       streaming: bool = False) -> TranscribedSplit:
    """The utterances of `split` long enough for their transcripts, even sped up by `speed_up`
    (`streaming`: for the streaming model's frames).

    A transcript that needs more output frames than its audio gives has
    zero CTC probability: its loss is infinite and one such utterance turns
    the whole batch's gradients into NaN.
    """
    frames = output_frames([int(len(waveform) / speed_up) for waveform in split.waveforms], streaming).numpy()
    needed = [frames_needed(ids) for ids in labels.encode(split.transcripts)]
    return split.subset(index for index in range(len(split)) if needed[index] <= frames[index])


def train_transcriber(
    data: TranscriptionData, labels: LabelSet, config: TranscriberTrain, fitting: Fitting
) -> keras.Model:
    """Builds `build_acoustic_model` for `labels` in `fitting`'s scope and trains it with CTC on `data.train`.

    Adam with a cosine-decaying learning rate and gradients clipped to norm
    5 (CTC's early gradients are large); validates on `data.validation` if
    it has utterances. Utterances too short for their transcripts
    (`fitting_utterances`) are left out, with a message. Returns the acoustic model.
    """
    frame_ms = 1000 * OUTPUT_FRAME_SECONDS
    kept = {}
    for name, split, speed_up in (("training", data.train, AUGMENTATION_SPEEDS[1]),
                                  ("validation", data.validation, 1.0)):
        kept[name] = fitting_utterances(split, labels, speed_up, config.streaming)
        if len(kept[name]) < len(split):
            print(f"{data.name}: left out {len(split) - len(kept[name])} of the {len(split)} {name} "
                  f"utterances, too short for their transcripts (CTC needs {frame_ms:g} ms of audio "
                  "per label)", file=sys.stderr)
    if not len(kept["training"]):
        raise InputError(f"{data.name}: no training utterance is long enough for its transcript "
                         f"(CTC needs {frame_ms:g} ms of audio per label).")
    batch_size = config.batch_size
    steps = config.epochs * int(np.ceil(len(kept["training"]) / batch_size))
    with fitting.scope():
        build = build_streaming_acoustic_model if config.streaming else build_acoustic_model
        acoustic = build(labels.num_classes, config)
        model = CTCModel(acoustic, name="ctc")
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(steps, 1), alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0))
    fixed_lengths = fitting.compiles_with_xla(model)
    lead_in = int(STREAMING_LEAD_IN_SECONDS * SAMPLE_RATE) if config.streaming else 0
    train = utterance_dataset(kept["training"], labels, batch_size, noise=data.noise, seed=config.seed,
                              fixed_lengths=fixed_lengths, max_lead_in=lead_in)
    validation = utterance_dataset(kept["validation"], labels, batch_size, fixed_lengths=fixed_lengths) \
        if len(kept["validation"]) else None
    fitting.fit(model, train, epochs=config.epochs, validation_data=validation)
    return acoustic
