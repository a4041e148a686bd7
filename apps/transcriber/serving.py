"""What a transcriber export serves (`TranscriberServer`), and the client of a loaded one."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from apps.common.speech_features import FEATURES
from apps.transcriber.labels import DECODINGS, LabelSet
from apps.transcriber.model import ctc_decode, output_frames


def utterance_samples(waveform: tf.Tensor) -> tf.Tensor:
    """`[batch, samples]` zero-padded waveforms -> each row's length: up to its last non-zero sample."""
    positions = tf.range(1, tf.shape(waveform)[1] + 1)[tf.newaxis, :]
    return tf.reduce_max(tf.where(waveform != 0, positions, 0), axis=1)


class TranscriberServer(tf.Module):
    """What a transcriber export serves: any-length waveforms in, transcripts out.

    `serving_default` decodes with `decoding`; `greedy` and `beam` offer both.
    """

    def __init__(self, acoustic: keras.Model, labels: LabelSet, decoding: str = "beam",
                 beam_width: int = 16):
        super().__init__(name="transcriber_server")
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}.")
        if beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {beam_width}.")
        self.acoustic = acoustic
        self.labels = labels
        self.decoding = decoding
        self.beam_width = beam_width
        self.serve = self._endpoint(decoding)
        self.greedy = self._endpoint("greedy")
        self.beam = self._endpoint("beam")

    def logits_and_frames(self, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`[batch, samples]` float32 (zero-padded; non-finite samples count as 0) -> logits, frames."""
        waveform = tf.where(tf.math.is_finite(waveform), waveform, tf.zeros_like(waveform))
        # At least one window, so that every utterance, however short, has a frame.
        waveform = tf.pad(waveform, [[0, 0], [0, tf.maximum(0, FEATURES.frame_length - tf.shape(waveform)[1])]])
        samples = tf.maximum(utterance_samples(waveform), FEATURES.frame_length)
        logits = self.acoustic({"waveform": waveform, "samples": samples}, training=False)
        return tf.cast(logits, tf.float32), tf.minimum(output_frames(samples), tf.shape(logits)[1])

    def _endpoint(self, decoding: str):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        def transcribe(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
            """`waveform`: float32 `[batch, samples]`, 16 kHz mono, rows zero-padded to the longest."""
            def run() -> tuple[tf.Tensor, tf.Tensor]:
                logits, frames = self.logits_and_frames(waveform)
                return ctc_decode(logits, frames, self.labels, decoding, self.beam_width), frames

            # Keras's convolutions and the CTC decoders refuse an empty batch, so it never reaches them.
            transcript, frames = tf.cond(
                tf.shape(waveform)[0] > 0, run,
                lambda: (tf.zeros([0], tf.string), tf.zeros([0], tf.int32)),
            )
            return {"transcript": transcript, "frames": frames}

        return transcribe


def frame_log_probabilities(server: TranscriberServer):
    """The signature a LiteRT or ONNX file of the transcriber serves: `waveform` -> per-frame
    `log_probabilities` `[batch, time, classes]` and each row's `frames`. Neither format has
    CTC decoders or string joins, so the client decodes (`decoded_file_signature`)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def frames_of(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        logits, frames = server.logits_and_frames(waveform)
        return {"log_probabilities": tf.nn.log_softmax(logits), "frames": frames}

    return frames_of


def decoded_file_signature(run, labels: LabelSet, decoding: str, beam_width: int):
    """A file's `frame_log_probabilities` signature `run`, decoded as the SavedModel's signature is."""

    def transcribe(waveform) -> dict[str, tf.Tensor]:
        outputs = run(waveform=waveform)
        frames = outputs["frames"]
        transcript = ctc_decode(outputs["log_probabilities"], frames, labels, decoding, beam_width)
        return {"transcript": transcript, "frames": frames}

    return transcribe


def transcribe_batches(serve, waveforms: list[np.ndarray], batch_size: int = 32) -> list[str]:
    """What a transcriber signature says to each waveform, `batch_size` of similar length at a time."""
    order = np.argsort([len(waveform) for waveform in waveforms])
    transcripts = [""] * len(waveforms)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = np.zeros((len(rows), max(len(waveforms[i]) for i in rows)), np.float32)
        for row, index in enumerate(rows):
            batch[row, :len(waveforms[index])] = waveforms[index]
        outputs = serve(waveform=tf.constant(batch))["transcript"].numpy()
        for index, text in zip(rows, outputs):
            transcripts[index] = text.decode("utf-8")
    return transcripts


def error_rates(references: list[str], hypotheses: list[str]) -> tuple[float, float]:
    """Word and character error rates (jiwer) of `hypotheses` against `references`, pooled."""
    import jiwer

    return (jiwer.wer(references, hypotheses), jiwer.cer(references, hypotheses))
