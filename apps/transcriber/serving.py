"""What a transcriber export serves (`TranscriberServer`), and the client of a loaded one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gru_core.tracing import tracing_for_a_file

from apps.common.app import Export
from apps.common.audio import SAMPLE_RATE, read_audio_files
from apps.common.errors import InputError
from apps.common.speech_features import FEATURES, check_waveform, checked_waveform
from apps.common.stream_client import StreamClient
from apps.transcriber.labels import DECODINGS, LabelSet
from apps.common.streaming import (
    MAX_STREAMS,
    STATE_PREFIX,
    STREAM_COUNT_PROBLEM,
    check_chunk,
    checked_state,
    checked_stream_count,
    chunk_hops,
    has_audio,
    initial_stream_state,
    partial_step_error,
    prefixed,
    state_specs,
    stream_layers,
)
from apps.transcriber.model import TIME_STRIDE, ctc_decode, is_streaming, output_frames


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

    def endpoints(self) -> dict[str, Callable]:
        """The export's signatures, by name."""
        return {"serving_default": self.serve, "greedy": self.greedy, "beam": self.beam}

    def file_endpoints(self) -> dict[str, Callable]:
        """What a LiteRT or ONNX file of the export serves: `frame_log_probabilities`."""
        return {"serving_default": frame_log_probabilities(self)}

    def logits_and_frames(self, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`[batch, samples]` float32 (zero-padded; non-finite samples count as 0) -> logits, frames."""
        waveform = tf.where(tf.math.is_finite(waveform), waveform, tf.zeros_like(waveform))
        # At least one window, so that every utterance, however short, has a frame.
        waveform = tf.pad(waveform, [[0, 0], [0, tf.maximum(0, FEATURES.frame_length - tf.shape(waveform)[1])]])
        samples = tf.maximum(utterance_samples(waveform), FEATURES.frame_length)
        logits = self.acoustic({"waveform": waveform, "samples": samples}, training=False)
        frames = output_frames(samples, is_streaming(self.acoustic))
        return tf.cast(logits, tf.float32), tf.minimum(frames, tf.shape(logits)[1])

    def _endpoint(self, decoding: str):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        def transcribe(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
            """`waveform`: float32 `[batch, samples]`, 16 kHz mono, rows zero-padded to the longest;
            finite samples, and at least one."""
            checked = checked_waveform(waveform, "waveform")

            def run() -> tuple[tf.Tensor, tf.Tensor]:
                logits, frames = self.logits_and_frames(checked)
                return ctc_decode(logits, frames, self.labels, decoding, self.beam_width), frames

            # Keras's convolutions and the CTC decoders refuse an empty batch, so it never reaches them.
            transcript, frames = tf.cond(
                tf.shape(waveform)[0] > 0, run,
                lambda: (tf.zeros([0], tf.string), tf.zeros([0], tf.int32)),
            )
            return {"transcript": transcript, "frames": frames}

        return transcribe


def decoder_initial_state(labels: LabelSet, batch_size: tf.Tensor | int) -> dict[str, tf.Tensor]:
    """The greedy decoder's part of a stream's state, before any frame: no last label, no labels."""
    return prefixed({"last_label": tf.fill([batch_size], labels.num_classes - 1), "labels": tf.fill([batch_size], "")})


def continue_greedy(logits: tf.Tensor, last_label: tf.Tensor, labels_so_far: tf.Tensor,
                    labels: LabelSet) -> dict[str, tf.Tensor]:
    """Greedy CTC over a chunk's `[batch, frames, classes]` scores, continuing from the label before
    the chunk: `chunk_labels` (what it adds), `transcript` (all so far) and the decoder's new state."""
    blank = labels.num_classes - 1
    tokens = tf.constant(list(labels.tokens) + [""])
    ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    history = tf.concat([tf.expand_dims(last_label, 1), ids], axis=1)
    new_labels = (ids != blank) & (ids != history[:, :-1])
    added = tf.strings.reduce_join(tf.ragged.boolean_mask(tf.gather(tokens, ids), new_labels), axis=1,
                                   separator=labels.separator)
    joined = tf.where((labels_so_far != "") & (added != ""),
                      tf.strings.join([labels_so_far, added], separator=labels.separator), labels_so_far + added)
    return {"chunk_labels": added, "transcript": tf.strings.strip(tf.strings.regex_replace(joined, " +", " ")),
            **prefixed({"last_label": history[:, -1], "labels": joined})}


class StreamingTranscriberServer(TranscriberServer):
    """A streaming transcriber's export: `TranscriberServer`'s signatures, and `stream` and `initial_state`.

    External state, as in the word recogniser's (`apps.speech.serving`):
    `initial_state` (`batch_size`) gives every state tensor, named `state_…`;
    `stream` takes `waveform_chunk` (float32 `[batch, samples]`, a whole
    number of 20 ms steps: the first convolution's stride) and the state,
    and returns `chunk_labels` (the greedy CTC labels the chunk added),
    `transcript` (greedy, all the audio so far) and the new state, which
    carries the decoder's last label (`state_last_label`, so a label
    repeated across two chunks is merged as in one) and the labels so far
    (`state_labels`). Streamed to its end, the transcript is the `greedy`
    signature's for the whole clip.

    A LiteRT or ONNX file holds no strings: `file_endpoints` stream the
    acoustic model's log-probabilities and state, and the client decodes
    (`streamed_file_signatures`).
    """

    def __init__(self, acoustic: keras.Model, labels: LabelSet, decoding: str = "beam", beam_width: int = 16):
        super().__init__(acoustic, labels, decoding, beam_width)
        model_specs = state_specs(acoustic)
        decoder_specs = [tf.TensorSpec([None], tf.int32, name=STATE_PREFIX + "last_label"),
                         tf.TensorSpec([None], tf.string, name=STATE_PREFIX + "labels")]
        model_names = [spec.name[len(STATE_PREFIX):] for spec in model_specs]

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        def initial_model_state(batch_size):
            return prefixed(initial_stream_state(acoustic, batch_size))

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        def initial_state(batch_size):
            batch_size = checked_stream_count(batch_size)
            return {**initial_model_state(batch_size), **decoder_initial_state(labels, batch_size)}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform_chunk"),
                                      *model_specs, *decoder_specs])
        def stream(waveform_chunk, *values):
            logits, new_state = self._stream_logits(waveform_chunk, dict(zip(model_names, values)))
            last_label, labels_so_far = values[len(model_names):]
            return {**continue_greedy(logits, last_label, labels_so_far, labels), **prefixed(new_state)}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform_chunk"), *model_specs])
        def stream_log_probabilities(waveform_chunk, *values):
            logits, new_state = self._stream_logits(waveform_chunk, dict(zip(model_names, values)))
            return {"log_probabilities": tf.nn.log_softmax(logits), **prefixed(new_state)}

        self.initial_state, self.stream = initial_state, stream
        self.initial_model_state, self.stream_log_probabilities = initial_model_state, stream_log_probabilities

    def _stream_logits(self, waveform_chunk: tf.Tensor, state: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict]:
        """The acoustic model's logits for a chunk after `state`, and its new state. An empty chunk or
        batch gives no frames and keeps the state (not in a file: neither format converts the branch)."""
        acoustic = self.acoustic
        chunk, state = check_chunk(waveform_chunk, chunk_hops(acoustic)), checked_state(state)

        def step():
            outputs, new_state = stream_layers(acoustic, chunk, state)
            return acoustic.get_layer("logits")(outputs), new_state

        if tracing_for_a_file():
            return step()
        return tf.cond(has_audio(chunk), step,
                       lambda: (tf.zeros([tf.shape(chunk)[0], 0, self.labels.num_classes]), dict(state)))

    def endpoints(self) -> dict[str, Callable]:
        return {**super().endpoints(), "stream": self.stream, "initial_state": self.initial_state}

    def file_endpoints(self) -> dict[str, Callable]:
        """`frame_log_probabilities`, and `stream` and `initial_state` without the decoder
        (the chunk's per-frame log-probabilities out)."""
        return {**super().file_endpoints(), "stream": self.stream_log_probabilities,
                "initial_state": self.initial_model_state}


def transcriber_server(acoustic: keras.Model, labels: LabelSet, decoding: str, beam_width: int,
                       streaming: bool) -> TranscriberServer:
    """The server of an acoustic model trained with `--streaming` or without."""
    server_class = StreamingTranscriberServer if streaming else TranscriberServer
    return server_class(acoustic, labels, decoding, beam_width)


def frame_log_probabilities(server: TranscriberServer):
    """The signature a LiteRT or ONNX file of the transcriber serves: `waveform` -> per-frame
    `log_probabilities` `[batch, time, classes]` and each row's `frames`. Neither format has
    CTC decoders or string joins, so the client decodes (`decoded_file_signature`)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def frames_of(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        logits, frames = server.logits_and_frames(waveform)
        return {"log_probabilities": tf.nn.log_softmax(logits), "frames": frames}

    return frames_of


def streamed_file_signatures(stream_run, initial_run, labels: LabelSet) -> dict[str, Callable]:
    """A file's acoustic `stream` and `initial_state` (`file_endpoints`) as the SavedModel's: the
    greedy decoder runs here (`continue_greedy`), its state beside the model's. Like the SavedModel's,
    an empty chunk keeps the state and a chunk of part of a step is refused."""

    def initial_state(batch_size) -> dict[str, tf.Tensor]:
        # LiteRT refuses to make a tensor with no rows: an empty batch's state is one row's, cut to none.
        rows = int(batch_size)
        if not 0 <= rows <= MAX_STREAMS:
            raise InputError(f"{STREAM_COUNT_PROBLEM} {rows}.")
        model_state = {name: value[:rows] for name, value in initial_run(batch_size=max(rows, 1)).items()}
        return {**model_state, **decoder_initial_state(labels, rows)}

    def stream(waveform_chunk, **state) -> dict[str, tf.Tensor]:
        missing = [name for name in (f"{STATE_PREFIX}last_label", f"{STATE_PREFIX}labels") if name not in state]
        if missing:
            raise InputError(f"stream: missing input {', '.join(missing)}.")
        decoder = {name: state.pop(STATE_PREFIX + name) for name in ("last_label", "labels")}
        chunk = np.asarray(waveform_chunk, np.float32)
        check_waveform(chunk, "waveform_chunk", allow_empty=True)
        if chunk.ndim == 2 and chunk.shape[1] % STREAM_STEP:
            raise InputError(f"{partial_step_error(STREAM_STEP)}, got {chunk.shape[1]}.")
        if chunk.ndim == 2 and not chunk.shape[1]:
            outputs = {"log_probabilities": tf.zeros([len(chunk), 0, labels.num_classes]),
                       **{name: tf.constant(value) for name, value in state.items()}}
        else:
            outputs = stream_run(waveform_chunk=chunk, **state)
        return {**continue_greedy(outputs.pop("log_probabilities"), decoder["last_label"], decoder["labels"], labels),
                **outputs}

    return {"stream": stream, "initial_state": initial_state}


def decoded_file_signature(run, labels: LabelSet, decoding: str, beam_width: int):
    """A file's `frame_log_probabilities` signature `run`, decoded as the SavedModel's signature is."""

    def transcribe(waveform) -> dict[str, tf.Tensor]:
        check_waveform(np.asarray(waveform, np.float32), "waveform")
        outputs = run(waveform=waveform)
        frames = outputs["frames"]
        if not len(frames):  # the CTC decoders refuse an empty batch, as in the SavedModel's signature
            return {"transcript": tf.zeros([0], tf.string), "frames": frames}
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


# `gru-suite transcribe --stream` reads its files in chunks this long.
STREAM_CHUNK_SECONDS = 0.1
# A chunk of `stream` holds a whole number of these samples: one output frame (20 ms).
STREAM_STEP = TIME_STRIDE * FEATURES.frame_step


def stream_files(export: Export, files: tuple[Path, ...]) -> list[dict]:
    """`gru-suite transcribe --stream`: each file through the export's `stream` signature in
    `STREAM_CHUNK_SECONDS` chunks, printing the transcript each time it changes (with the file's
    name before it when there are several). The last line of each is its whole-clip greedy transcript.

    A file's end is padded with zeros to a whole 20 ms step, which adds no output frame. A bad file
    is reported and skipped; the command fails only if every file is bad.
    """
    if "stream" not in export.signatures:
        raise InputError(f"--stream: {export.path} has no stream signature "
                         "(train it with `gru-suite train transcriber --streaming`).")
    chunk = int(round(STREAM_CHUNK_SECONDS * SAMPLE_RATE / STREAM_STEP)) * STREAM_STEP
    results, readable = read_audio_files(files)
    for index, waveform in readable.items():
        if len(files) > 1:
            print(f"{files[index]}:")
        client = StreamClient(export, STREAM_STEP)
        shown = None
        for start in range(0, len(waveform), chunk):
            outputs = client.feed(waveform[start:start + chunk], last=start + chunk >= len(waveform))
            if outputs is None:
                continue
            transcript = outputs["transcript"][0].decode("utf-8")
            if transcript != (shown or ""):
                print(transcript, flush=True)
                shown = transcript
        if shown is None:  # nothing was heard: the one line is the empty transcript
            print("", flush=True)
        results[index]["transcript"] = shown or ""
    return results


def error_rates(references: list[str], hypotheses: list[str]) -> tuple[float, float]:
    """Word and character error rates (jiwer) of `hypotheses` against `references`, pooled."""
    import jiwer

    return (jiwer.wer(references, hypotheses), jiwer.cer(references, hypotheses))
