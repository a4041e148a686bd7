"""One stream through an export's `stream` signature, fed audio as it arrives.

A streaming export (`gru-suite train speech|transcriber --streaming`) takes
chunks of a whole number of steps and carries everything else in its state
(`apps.common.streaming`). `StreamClient` is the caller's side of that: it
keeps the state between calls, holds back the samples of a step not yet
complete, resamples audio that arrives at another rate as one continuous
stream, and pads the last step with silence when the audio ends. Both
`gru-suite transcribe --stream` and the demo page's live microphone use it.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

from apps.common.app import Export
from apps.common.audio import SAMPLE_RATE
from apps.common.errors import InputError
from apps.common.streaming import STATE_PREFIX

# `StreamClient.heard` keeps this much of the latest audio (64 kB a second).
KEPT_SECONDS = 600


def mono_float(samples: np.ndarray) -> np.ndarray:
    """Audio as a recorder hands it over (integer PCM or float, `[samples]` or `[samples, channels]`)
    -> float32 mono in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise InputError(f"audio: expected [samples] or [samples, channels], got shape {samples.shape}.")
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(np.iinfo(samples.dtype).max + 1)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32)
    return np.where(np.isfinite(samples), samples, 0).astype(np.float32)


class StreamClient:
    """A single stream (batch 1) of `export`'s `stream` signature.

    Args:
        export: a streaming export (it has `stream` and `initial_state`).
        step: the samples (at `SAMPLE_RATE`) a chunk holds a whole number of.
        rate: the sample rate audio will arrive at; resampled to `SAMPLE_RATE`
            as one stream (soxr), so chunk edges leave no trace.
    """

    def __init__(self, export: Export, step: int, rate: int = SAMPLE_RATE):
        if "stream" not in export.signatures:
            raise InputError(f"{export.path}: the export has no stream signature "
                             "(train it with --streaming).")
        if rate <= 0:
            raise InputError(f"audio: the sample rate must be positive, got {rate}.")
        self._stream = export.signature("stream")
        self.state = dict(export.signature("initial_state")(batch_size=tf.constant(1)))
        self.step = step
        self.rate = rate
        self._pending = np.zeros(0, np.float32)
        self._resampler = None
        if rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        self.outputs: dict[str, np.ndarray] | None = None  # the last call's outputs, without the state
        self.finished = False  # `last` was fed: the stream has ended
        self._heard: collections.deque[np.ndarray] = collections.deque()  # the last `KEPT_SECONDS` fed
        self._kept = 0

    def feed(self, samples: np.ndarray, last: bool = False) -> dict[str, np.ndarray] | None:
        """Adds `samples` (at `rate`, mono float) and runs the whole steps they complete. With `last`,
        the audio has ended: the rest is padded with zeros to a whole step and run too.

        Returns the outputs of this call's chunk (without the state), or None if no step was complete.
        """
        if self.finished:
            raise InputError("audio: this stream has ended; start a new one.")
        self.finished = last
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=last)
        pending = np.concatenate([self._pending, samples])
        if last:
            pending = np.pad(pending, (0, -len(pending) % self.step))
        whole = len(pending) - len(pending) % self.step
        chunk, self._pending = pending[:whole], pending[whole:]
        if not whole:
            return None
        self._heard.append(chunk)
        self._kept += whole
        while self._kept - len(self._heard[0]) >= KEPT_SECONDS * SAMPLE_RATE:
            self._kept -= len(self._heard.popleft())
        outputs = self._stream(waveform_chunk=tf.constant(chunk[np.newaxis]), **self.state)
        self.state = {name: value for name, value in outputs.items() if name.startswith(STATE_PREFIX)}
        self.outputs = {name: value.numpy() for name, value in outputs.items() if not name.startswith(STATE_PREFIX)}
        return self.outputs

    def heard(self) -> np.ndarray:
        """The audio the model has heard (the last `KEPT_SECONDS` of it), at `SAMPLE_RATE`, with the
        last step's padding."""
        return np.concatenate([np.zeros(0, np.float32), *self._heard])

    def finish(self) -> dict[str, np.ndarray] | None:
        """Ends the stream: runs what is held back (see `feed`)."""
        return self.feed(np.zeros(0, np.float32), last=True)
