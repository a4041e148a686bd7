"""Causal speech features: computed chunk by chunk exactly as over the whole clip.

The whole-clip front end (`apps.common.speech_features`) looks at the whole
clip three times: it scales it to unit peak, floors the log-mel values 40 dB
below the clip's loudest, and subtracts the mean over the clip's speech
frames. None of that can be known while the audio is still arriving, so the
streaming front end replaces each with what the frames so far tell:

1. no peak scaling: a gain only adds a constant to every log-mel value,
   which steps 2 and 3 take away again;
2. the log-mel values are floored `dynamic_range` below the loudest frame
   so far (a running maximum);
3. the running mean of the floored values is subtracted: an exponential
   moving average with time constant `1 / MEAN_RATE` frames, corrected for
   its start as Adam corrects its moments (the first frames are normalised
   by their own mean, not by a mean that starts at zero);
4. the first `num_cepstra` coefficients of the orthonormal DCT-II.

Framing is causal too: frame t covers the 512 samples that end with sample
160·(t + 1), the stream starting after 352 samples of silence, so each 10 ms
hop (`HOP` samples) completes exactly one frame, and a chunk holds a whole
number of hops. The state carried from chunk to chunk
(`initial_feature_state`) is the last 352 samples, the running maximum, the
running mean's sum and its decay so far; `stream_features` on a clip cut
into chunks gives the values it gives on the whole clip, to float32 rounding.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from apps.common.speech_features import FEATURES, FeatureConfig, SpeechFeatures, dct_matrix, log_mel_of_frames

HOP = FEATURES.frame_step
# Weight of each new frame in the running mean: a time constant of 50 frames (0.5 s).
MEAN_RATE = 0.02
# The running maximum before any frame: below any log-mel value.
_NO_FRAME_YET = -1e9


def initial_feature_state(batch_size: tf.Tensor | int, config: FeatureConfig = FEATURES) -> dict[str, tf.Tensor]:
    """The state of `batch_size` streams that have heard nothing yet."""
    return {
        "history": tf.zeros([batch_size, config.frame_length - config.frame_step]),
        "loudest": tf.fill([batch_size, 1], _NO_FRAME_YET),
        "mean_sum": tf.zeros([batch_size, config.num_mel_bins]),
        "mean_decay": tf.ones([batch_size, 1]),
    }


def stream_features(
    chunk: tf.Tensor, state: dict[str, tf.Tensor], config: FeatureConfig = FEATURES
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """`[batch, samples]` (a whole number of hops) and the state -> (`[batch, samples / hop,
    num_cepstra]` features, the new state). An empty chunk gives no frames and the same state."""
    chunk = tf.convert_to_tensor(chunk, tf.float32)
    buffered = tf.concat([state["history"], chunk], axis=1)
    frames = tf.signal.frame(buffered, config.frame_length, config.frame_step)
    count = tf.shape(frames)[1]
    log_mel = log_mel_of_frames(frames, config)

    # Step 2: the loudest frame up to and including each frame.
    loudness = tf.reduce_max(log_mel, axis=2)  # [batch, frames]
    positions = tf.range(count)
    # LiteRT has no strided slice that adds an axis, so every new axis here is `expand_dims`.
    earlier = tf.expand_dims(positions, 0) <= tf.expand_dims(positions, 1)  # [t, k]: k <= t
    loudest_so_far = tf.maximum(
        state["loudest"],
        tf.reduce_max(tf.where(tf.expand_dims(earlier, 0), tf.expand_dims(loudness, 1), _NO_FRAME_YET), axis=2),
    )
    floored = tf.maximum(log_mel, tf.expand_dims(loudest_so_far, -1) - config.dynamic_range)

    # Step 3: m_t = β·m_{t-1} + α·x_t, so m_t = β^(t+1)·m_{-1} + Σ_{k<=t} α·β^(t-k)·x_k.
    keep = 1.0 - MEAN_RATE
    steps = tf.range(1, count + 1, dtype=tf.float32)
    lags = tf.expand_dims(steps, 1) - tf.expand_dims(steps, 0)
    weights = tf.where(earlier, MEAN_RATE * tf.pow(keep, tf.maximum(lags, 0.0)), 0.0)
    decay = tf.pow(keep, steps)  # β^(t+1) for the chunk's frames t = 0 … count - 1
    mean_sums = (tf.einsum("tk,bkf->btf", weights, floored)
                 + tf.reshape(decay, [1, -1, 1]) * tf.expand_dims(state["mean_sum"], 1))
    mean_decays = state["mean_decay"] * tf.expand_dims(decay, 0)  # [batch, frames]: what of the sum is start
    means = mean_sums / tf.expand_dims(1.0 - mean_decays, -1)
    features = tf.tensordot(floored - means, dct_matrix(config.num_mel_bins, config.num_cepstra), 1)

    # The state after the chunk's last frame (the state itself after no frame).
    frames_heard = tf.cast(count, tf.float32)
    new_state = {
        "history": buffered[:, -(config.frame_length - config.frame_step):],
        "loudest": tf.maximum(state["loudest"], tf.reduce_max(
            tf.concat([loudness, tf.fill([tf.shape(loudness)[0], 1], _NO_FRAME_YET)], 1), axis=1, keepdims=True)),
        "mean_sum": tf.einsum("k,bkf->bf", MEAN_RATE * tf.pow(keep, frames_heard - steps), floored)
        + tf.pow(keep, frames_heard) * state["mean_sum"],
        "mean_decay": state["mean_decay"] * tf.pow(keep, frames_heard),
    }
    return features, new_state


@keras.saving.register_keras_serializable(package="speech")
class StreamingFeatures(SpeechFeatures):
    """Raw waveforms -> causal MFCC features (`stream_features`), inside the model.

    Called on whole clips (training, `serving_default`) it streams each from
    the start in one chunk, the clip zero-padded to a whole number of hops;
    `stream` takes one chunk and the state of what came before. The arguments
    are `SpeechFeatures`'.
    """

    def initial_state(self, batch_size: tf.Tensor | int) -> dict[str, tf.Tensor]:
        return initial_feature_state(batch_size, self.config)

    def stream(self, chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return stream_features(chunk, state, self.config)

    def call(self, waveforms, samples=None):
        if samples is not None:
            raise ValueError("StreamingFeatures takes no `samples`: its frames never look ahead.")
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        missing = -tf.shape(waveforms)[1] % self.config.frame_step
        padded = tf.pad(waveforms, [[0, 0], [0, missing]])
        return stream_features(padded, self.initial_state(tf.shape(waveforms)[0]), self.config)[0]

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else -(-samples // self.config.frame_step)
        return (input_shape[0], frames, self.config.num_cepstra)
