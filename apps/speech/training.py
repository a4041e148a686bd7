"""Training the word recogniser: augmented clips, Adam with a cosine schedule, resumable fits.

It takes `SpeechTrain`, the settings `gru-suite train speech` fills.
"""

from __future__ import annotations


import keras
import numpy as np
import tensorflow as tf

from apps.common.audio import SAMPLE_RATE
from apps.common.speech_features import FEATURES, change_speed, mix_noise
from apps.common.app import Fitting
from apps.common.training import set_seed
from apps.speech.data import AudioSplit, SpeechData
from apps.speech.model import build_model
from apps.speech.settings import SpeechTrain
from apps.speech.streaming import build_streaming_model


def augment_waveform(
    waveform: tf.Tensor,
    noise: tf.Tensor,
    *,
    max_shift: int = SAMPLE_RATE // 10,
    speed_range: tuple[float, float] = (0.85, 1.15),
    noise_probability: float = 0.8,
    snr_db_range: tuple[float, float] = (0.0, 25.0),
) -> tf.Tensor:
    """One training clip `[CLIP_SAMPLES]` -> a perturbed copy (tf.data map function).

    Speed perturbation (resampling by a random factor, which shifts tempo and
    pitch together), a random time shift of up to `max_shift` samples, and,
    with `noise_probability`, a random stretch of `noise` mixed in at a random
    signal-to-noise ratio in `snr_db_range`.
    """
    length = FEATURES.clip_samples
    waveform = change_speed(waveform[tf.newaxis], tf.random.uniform([], *speed_range), length)[0]
    shift = tf.random.uniform([], -max_shift, max_shift + 1, tf.int32)
    waveform = tf.roll(tf.pad(waveform, [[max_shift, max_shift]]), shift, 0)[
        max_shift : max_shift + length
    ]
    start = tf.random.uniform([], 0, tf.shape(noise)[0] - length + 1, tf.int32)
    return mix_noise(waveform, noise[start : start + length], noise_probability, snr_db_range)


def training_dataset(
    split: AudioSplit, noise: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented `(waveform, label)` batches, one pass per epoch."""
    noise_tensor = tf.constant(noise)
    return (
        tf.data.Dataset.from_tensor_slices((split.waveforms, split.labels))
        .shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        .map(
            lambda waveform, label: (augment_waveform(waveform, noise_tensor), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def train_speech_model(data: SpeechData, config: SpeechTrain, fitting: Fitting | None = None) -> keras.Model:
    """Builds and trains a model on `data.train` (validating on `data.validation` if any).

    Adam with a cosine-decaying learning rate; the model (`build_model`) is
    built in `fitting`'s strategy scope and fitted through it (resumable runs).
    Without `fitting`: the default strategy and no backups.
    """
    fitting = fitting or Fitting(config)
    set_seed(config.seed)
    steps = config.epochs * int(np.ceil(len(data.train) / config.batch_size))
    with fitting.scope():
        model = (build_streaming_model if config.streaming else build_model)(len(data.labels), config)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(steps, 1), alpha=0.02
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    validation = None
    if len(data.validation):
        validation = (data.validation.waveforms, data.validation.labels)
    fitting.fit(
        model,
        training_dataset(data.train, data.noise, config.batch_size, config.seed),
        epochs=config.epochs,
        validation_data=validation,
    )
    return model
