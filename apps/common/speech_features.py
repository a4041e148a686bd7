"""The speech apps' shared front end: MFCC features in TensorFlow ops, inside the model.

The features are defined once, by `FEATURES` and `speech_features`, and
computed inside the model from the raw waveform, so training, evaluation and
the exported SavedModel all see the same thing. Their log-mel stage,
`log_mel_spectrogram`, matches `librosa.feature.melspectrogram(y, sr=16000,
n_fft=512, hop_length=160, win_length=512, window="hann", center=False,
power=2.0, n_mels=40, fmin=20, fmax=7600, htk=True, norm=None)` followed by
`log(mel + 1e-6)` within 0.05 (natural log) per value: the short-time
Fourier transforms agree to float32 round-off, and the only difference is
that `tf.signal.linear_to_mel_weight_matrix` draws its triangular filters
linearly on the mel scale, librosa linearly in hertz (the weights differ by
less than 0.01).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.audio import CLIP_SAMPLES, MAX_SAMPLE, SAMPLE_RATE
from apps.common.config import Config, ConfigError, Number, setting
from apps.common.errors import InputError


@dataclass(frozen=True)
class FeatureConfig:
    """Every parameter of the log-mel features, in one place."""

    sample_rate: int = SAMPLE_RATE
    clip_samples: int = CLIP_SAMPLES
    frame_length: int = 512  # 32 ms Hann window, also the FFT size
    frame_step: int = 160  # 10 ms hop
    num_mel_bins: int = 40
    lower_hertz: float = 20.0
    upper_hertz: float = 7600.0
    log_offset: float = 1e-6
    dynamic_range: float = 9.2  # natural log, 40 dB: quieter mel values are raised to this floor
    speech_floor: float = 7.0  # frames within this of the loudest (30 dB) count as speech
    num_cepstra: int = 13  # MFCCs kept

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step

    @property
    def feature_shape(self) -> tuple[int, int]:
        return (self.num_frames, self.num_cepstra)

    def librosa_arguments(self) -> dict:
        """The `librosa.feature.melspectrogram` arguments these features match."""
        return dict(
            sr=self.sample_rate,
            n_fft=self.frame_length,
            hop_length=self.frame_step,
            win_length=self.frame_length,
            window="hann",
            center=False,
            power=2.0,
            n_mels=self.num_mel_bins,
            fmin=self.lower_hertz,
            fmax=self.upper_hertz,
            htk=True,
            norm=None,
        )


FEATURES = FeatureConfig()
# Why the speech apps fit on TensorFlow only (`App.tensorflow_only`).
FRONT_END_IN_TENSORFLOW = (
    "its audio front end (waveform to log-mel features, SpecAugment) runs inside the Keras model, "
    "so the export takes raw audio, and it is written in tf.signal ops, not keras.ops yet"
)


def _fourier_bases(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The Hann-windowed real DFT as two `[frame_length, frame_length // 2 + 1]` matrices."""
    n = np.arange(config.frame_length)[:, None]
    k = np.arange(config.frame_length // 2 + 1)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / config.frame_length)  # periodic Hann, as in stft
    angle = 2 * np.pi * n * k / config.frame_length
    return (window * np.cos(angle)).astype(np.float32), (window * np.sin(angle)).astype(np.float32)


def dct_matrix(size: int, kept: int) -> np.ndarray:
    """Orthonormal DCT-II, `[size, kept]`: `x @ matrix` is `tf.signal.dct(x, 2, norm="ortho")[..., :kept]`."""
    n = np.arange(size)[:, None]
    k = np.arange(kept)[None, :]
    matrix = np.sqrt(2.0 / size) * np.cos(np.pi * (2 * n + 1) * k / (2 * size))
    matrix[:, 0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def log_mel_spectrogram(waveforms: tf.Tensor, config: FeatureConfig = FEATURES) -> tf.Tensor:
    """`[batch, samples]` float32 -> `[batch, frames, num_mel_bins]` natural-log mel power.

    Traced for a LiteRT or ONNX file, which take none of TensorFlow's complex FFT
    tensors, the spectrum is two matrix products with the same values (to float32
    rounding; `log_mel_of_frames`); so is the DCT in `speech_features`.
    """
    if tracing_for_a_file():
        return log_mel_of_frames(tf.signal.frame(waveforms, config.frame_length, config.frame_step), config)
    stft = tf.signal.stft(
        waveforms,
        frame_length=config.frame_length,
        frame_step=config.frame_step,
        fft_length=config.frame_length,
        window_fn=tf.signal.hann_window,  # periodic, as librosa's "hann"
    )
    return _log_mel(tf.square(tf.abs(stft)), config)


def log_mel_of_frames(frames: tf.Tensor, config: FeatureConfig = FEATURES) -> tf.Tensor:
    """`[..., frame_length]` samples -> `[..., num_mel_bins]` natural-log mel power, the spectrum
    as matrix products with the Hann-windowed DFT (ops every runtime has)."""
    cosine, sine = _fourier_bases(config)
    return _log_mel(tf.square(tf.tensordot(frames, cosine, 1)) + tf.square(tf.tensordot(frames, sine, 1)), config)


def _log_mel(power: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=config.num_mel_bins,
        num_spectrogram_bins=config.frame_length // 2 + 1,
        sample_rate=config.sample_rate,
        lower_edge_hertz=config.lower_hertz,
        upper_edge_hertz=config.upper_hertz,
    )
    return tf.math.log(tf.tensordot(power, mel_matrix, 1) + config.log_offset)


def waveform_problem(name: str, empty: bool) -> str:
    """The one-line error for a waveform input `name` that has rows but no samples (`empty`), or a
    sample that is not a number within ±`MAX_SAMPLE`."""
    if empty:
        return f"{name}: a waveform needs at least one sample (its rows have none)"
    return (f"{name}: every sample must be finite and within ±{MAX_SAMPLE} (found NaN, inf or a larger one; "
            "audio is read as floats in [-1, 1])")


def checked_waveform(waveform: tf.Tensor, name: str, allow_empty: bool = False) -> tf.Tensor:
    """`waveform` (`[batch, samples]`) after in-graph checks that fail naming the input `name`:
    every sample a number within ±`MAX_SAMPLE` and, unless `allow_empty` (a stream's chunk, where
    no samples keep the state), samples in a batch that has rows. Neither a LiteRT nor an ONNX
    file has an assertion op: their clients check (`check_waveform`)."""
    if tracing_for_a_file():
        return waveform
    shape = tf.shape(waveform)
    checks = [tf.debugging.Assert(tf.reduce_all(tf.abs(waveform) <= MAX_SAMPLE),  # false for NaN
                                  [waveform_problem(name, empty=False)])]
    if not allow_empty:
        checks.append(tf.debugging.Assert(tf.logical_or(shape[0] == 0, shape[1] > 0),
                                          [waveform_problem(name, empty=True)]))
    with tf.control_dependencies(checks):
        return tf.identity(waveform)


def check_waveform(waveform: np.ndarray, name: str, allow_empty: bool = False) -> None:
    """`checked_waveform`'s checks, for a client of a LiteRT or ONNX file (an `InputError`)."""
    if not (np.abs(waveform) <= MAX_SAMPLE).all():
        raise InputError(waveform_problem(name, empty=False))
    if not allow_empty and waveform.ndim == 2 and len(waveform) and not waveform.shape[1]:
        raise InputError(waveform_problem(name, empty=True))


def waveform_checked(function: Callable, name: str, allow_empty: bool = False) -> Callable:
    """A file's signature `function` that runs `check_waveform` on its input `name` first."""

    def checked(**inputs: Any) -> dict[str, tf.Tensor]:
        if name in inputs:
            check_waveform(np.asarray(inputs[name], np.float32), name, allow_empty)
        return function(**inputs)

    return checked


def fix_length(waveforms: tf.Tensor, length: int = CLIP_SAMPLES) -> tf.Tensor:
    """`[batch, any]` -> `[batch, length]`, as `apps.common.audio.fix_length` does per clip.

    Shorter waveforms are centred between zeros; longer ones keep their
    loudest `length`-sample window. Non-finite samples become zeros.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    waveforms = tf.where(tf.math.is_finite(waveforms), waveforms, tf.zeros_like(waveforms))
    # Centred between zeros up to `length`; then the loudest `length` samples, which for a
    # padded clip is all of it. One path, no tf.cond: LiteRT prepares both branches of one.
    missing = tf.maximum(length - tf.shape(waveforms)[1], 0)
    waveforms = tf.pad(waveforms, [[0, 0], [missing // 2, missing - missing // 2]])
    # float64 keeps the window sums exact enough to compare; LiteRT and ONNX files use float32.
    energy = tf.cumsum(tf.square(tf.cast(waveforms, tf.float32 if tracing_for_a_file() else tf.float64)), axis=1)
    energy = tf.pad(energy, [[0, 0], [1, 0]])
    start = tf.argmax(energy[:, length:] - energy[:, :-length], axis=1, output_type=tf.int32)
    indices = tf.expand_dims(start, 1) + tf.expand_dims(tf.range(length), 0)
    fixed = tf.gather(waveforms, indices, batch_dims=1)
    return tf.reshape(fixed, [-1, length])  # the static shape (LiteRT has no EnsureShape)


def speech_frames(log_mel: tf.Tensor, floor: float = FEATURES.speech_floor) -> tf.Tensor:
    """`[batch, frames, 1]` 1.0 where a frame's total log energy is within `floor`
    (natural log, about 30 dB) of the clip's loudest frame, else 0.0."""
    energy = tf.reduce_logsumexp(log_mel, axis=2, keepdims=True)
    return tf.cast(energy > tf.reduce_max(energy, axis=1, keepdims=True) - floor, log_mel.dtype)


def subtract_speech_mean(features: tf.Tensor, speech: tf.Tensor) -> tf.Tensor:
    """Per-utterance mean normalization of `[batch, frames, bins]` features.

    Subtracts, per clip and bin, the mean over the `speech` frames (see
    `speech_frames`), so the padding around a short word does not count. This
    removes what a microphone and room add to every frame, which is much of
    what differs between recording sessions and speakers.
    """
    mean = tf.reduce_sum(features * speech, axis=1, keepdims=True) / tf.maximum(
        tf.reduce_sum(speech, axis=1, keepdims=True), 1.0
    )
    return features - mean


def speech_features(
    waveforms: tf.Tensor, config: FeatureConfig = FEATURES, samples: tf.Tensor | None = None
) -> tf.Tensor:
    """`[batch, samples]` raw waveforms -> `[batch, frames, num_cepstra]`: the model's input.

    `samples` `[batch]`, for rows zero-padded to the longest of a batch: each
    row's own length, so that its padding never counts as speech in step 4
    (the frames of the padding themselves are computed, and meaningless).

    1. each clip is scaled to unit peak (clips quieter than 1e-4, digital
       silence, are left as they are), so the recording level does not matter;
    2. `log_mel_spectrogram`;
    3. values more than `dynamic_range` below the clip's loudest are raised to
       that floor, so recordings with different noise floors look alike;
    4. `subtract_speech_mean` (per-utterance mean normalization) over the
       frames `speech_frames` finds in the log-mel values before step 3;
    5. the first `num_cepstra` coefficients of the orthonormal DCT-II: MFCCs,
       which keep the spectral envelope and drop the pitch harmonics.

    Against librosa: `librosa.feature.mfcc(S=..., n_mfcc=13, dct_type=2,
    norm="ortho")` of the same steps applied to librosa's mel spectrogram
    (see tests/test_speech.py).
    """
    peak = tf.reduce_max(tf.abs(waveforms), axis=1, keepdims=True)
    log_mel = log_mel_spectrogram(waveforms / tf.maximum(peak, 1e-4), config)
    speech = speech_frames(log_mel, config.speech_floor)
    if samples is not None:
        own = (tf.cast(samples, tf.int32) - config.frame_length) // config.frame_step + 1
        speech *= tf.expand_dims(tf.sequence_mask(own, tf.shape(log_mel)[1], log_mel.dtype), -1)
    top = tf.reduce_max(log_mel, axis=[1, 2], keepdims=True)
    log_mel = subtract_speech_mean(tf.maximum(log_mel, top - config.dynamic_range), speech)
    if tracing_for_a_file():
        return tf.tensordot(log_mel, dct_matrix(config.num_mel_bins, config.num_cepstra), 1)
    return tf.signal.dct(log_mel, type=2, norm="ortho")[..., : config.num_cepstra]


def check_mel_band(lower_hertz: float, upper_hertz: float) -> None:
    """Raises ValueError unless 0 <= lower_hertz < upper_hertz <= half the sample rate."""
    nyquist = FEATURES.sample_rate / 2
    if not 0 <= lower_hertz < upper_hertz <= nyquist:
        raise ValueError(
            "The mel filter band needs 0 <= lower_hertz < upper_hertz <= "
            f"{nyquist:g} Hz (half the {FEATURES.sample_rate} Hz sample rate), got "
            f"lower_hertz={lower_hertz:g}, upper_hertz={upper_hertz:g}."
        )


@dataclasses.dataclass(frozen=True)
class MelBandSettings(Config):
    """`--min-frequency` and `--max-frequency`: the band of the features' mel filters, checked together."""

    min_frequency: float = setting(
        FEATURES.lower_hertz, "bottom of the features' mel filter bank; 100 leaves out hum and the "
        "lowest pitch, which microphones record differently", check=Number(float, 0.0, SAMPLE_RATE / 2),
        metavar="HZ", group="model")
    max_frequency: float = setting(
        FEATURES.upper_hertz, "top of the features' mel filter bank; 4000 for audio recorded at "
        "8 kHz (FSDD, telephone speech)", check=Number(float, 0.0, SAMPLE_RATE / 2),
        metavar="HZ", group="model")

    def check(self) -> None:
        super().check()
        try:
            check_mel_band(self.min_frequency, self.max_frequency)
        except ValueError as error:
            raise ConfigError(["min_frequency", "max_frequency"], str(error)) from None


@keras.saving.register_keras_serializable(package="speech")
class SpeechFeatures(keras.layers.Layer):
    """Raw waveforms -> MFCC features (`speech_features`), inside the model.

    Args:
        lower_hertz: the bottom of the mel filter bank.
        upper_hertz: its top. The defaults cover 16 kHz audio; for recordings
            made at 8 kHz (telephone band, FSDD) 4000 keeps every filter where
            the recordings have sound instead of spending a quarter of them on
            an empty band. Raising `lower_hertz` to about 100 leaves out the
            mains hum and the bottom of the voice's pitch range, which
            microphones record very differently.

    It computes in float32 under any dtype policy: an FFT takes no 16-bit
    floats, and log-mel energies span more than float16 holds.
    """

    def __init__(
        self,
        lower_hertz: float = FEATURES.lower_hertz,
        upper_hertz: float = FEATURES.upper_hertz,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        check_mel_band(lower_hertz, upper_hertz)
        self.lower_hertz, self.upper_hertz = float(lower_hertz), float(upper_hertz)
        self.config = replace(FEATURES, lower_hertz=self.lower_hertz, upper_hertz=self.upper_hertz)

    def call(self, waveforms, samples=None):
        """`samples`: each row's own length, when rows are zero-padded (see `speech_features`)."""
        return speech_features(waveforms, self.config, samples)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else max(0, 1 + (samples - self.config.frame_length) // self.config.frame_step)
        return (input_shape[0], frames, self.config.num_cepstra)

    def get_config(self):
        return {
            **super().get_config(),
            "lower_hertz": self.lower_hertz,
            "upper_hertz": self.upper_hertz,
        }


@keras.saving.register_keras_serializable(package="speech")
class SpecAugment(keras.layers.Layer):
    """SpecAugment-style masking (Park et al. 2019), active in training only.

    Zeroes `time_masks` random spans of up to `max_time` frames and
    `frequency_masks` spans of up to `max_frequency` feature bins (here
    cepstral coefficients) in every example (zero is the mean after the
    preceding batch normalization).
    """

    def __init__(
        self, time_masks=2, max_time=10, frequency_masks=2, max_frequency=6, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.time_masks, self.max_time = time_masks, max_time
        self.frequency_masks, self.max_frequency = frequency_masks, max_frequency
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch: tf.Tensor, size: tf.Tensor, count: int, max_width: int) -> tf.Tensor:
        """`[batch, size]` bool, True where any of `count` random spans covers a position."""
        keep = tf.ones([batch, size], tf.bool)
        positions = tf.range(size)[tf.newaxis, :]
        for _ in range(count):
            width = keras.random.randint([batch, 1], 0, max_width + 1, seed=self.seed_generator)
            room = tf.cast(tf.maximum(size - width + 1, 1), tf.float32)
            start = tf.cast(
                keras.random.uniform([batch, 1], seed=self.seed_generator) * room, tf.int32
            )
            keep &= (positions < start) | (positions >= start + width)
        return keep

    def call(self, features, training=None):
        if not training:
            return features
        shape = tf.shape(features)
        keep_time = self._mask(shape[0], shape[1], self.time_masks, self.max_time)
        keep_frequency = self._mask(shape[0], shape[2], self.frequency_masks, self.max_frequency)
        keep = keep_time[:, :, tf.newaxis] & keep_frequency[:, tf.newaxis, :]
        return tf.where(keep, features, tf.zeros_like(features))

    def get_config(self):
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "max_time": self.max_time,
            "frequency_masks": self.frequency_masks,
            "max_frequency": self.max_frequency,
            "seed": self.seed,
        }


def change_speed(waveforms: tf.Tensor, factor: float | tf.Tensor, length: int = CLIP_SAMPLES) -> tf.Tensor:
    """`[batch, samples]` clips played `factor` times as fast, as `[batch, length]` clips.

    Resampling by linear interpolation shifts tempo and pitch (and the
    formants) together, as playing a tape faster does.
    """
    stretched = tf.cast(tf.cast(tf.shape(waveforms)[1], tf.float32) / factor, tf.int32)
    resampled = tf.image.resize(waveforms[:, tf.newaxis, :, tf.newaxis], [1, stretched])
    return fix_length(resampled[:, 0, :, 0], length)


def mix_noise(
    waveform: tf.Tensor, noise: tf.Tensor, probability: float, snr_db_range: tuple[float, float]
) -> tf.Tensor:
    """`waveform` with, at `probability`, `noise` (as long) mixed in at a random
    signal-to-noise ratio in `snr_db_range` (tf.data map code)."""
    snr_db = tf.random.uniform([], *snr_db_range)
    signal_power = tf.reduce_mean(tf.square(waveform)) + 1e-10
    noise_power = tf.reduce_mean(tf.square(noise)) + 1e-10
    gain = tf.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    mix = tf.cast(tf.random.uniform([]) < probability, tf.float32)
    return waveform + mix * gain * noise
