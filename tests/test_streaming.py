"""Streaming speech: the causal front end and both streaming models answer chunk by chunk what they
answer on the whole clip, an empty chunk changes nothing, and streams in one batch do not mix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from apps.common.speech_features import FEATURES
from apps.common.streaming_features import HOP, StreamingFeatures, initial_feature_state, stream_features
from apps import cli
from apps.common.errors import InputError
from apps.common.audio import load_audio
from apps.common.running import load_export, registered_app, train_app
from apps.common.settings import FORMAT_FILES
from apps.speech.settings import SpeechTrain
from apps.common.streaming import initial_stream_state
from apps.speech.streaming import build_streaming_model, stream_step
from apps.transcriber.app import EXAMPLE as TRANSCRIBER_EXAMPLE

CHUNKS = {"20 ms": 2 * HOP, "100 ms": 10 * HOP}


def _clips(batch: int = 2, samples: int = FEATURES.clip_samples, seed: int = 0) -> np.ndarray:
    """Noise with a louder tone burst in the middle, so the running floor and mean move."""
    rng = np.random.default_rng(seed)
    clips = rng.normal(0, 0.01, size=(batch, samples)).astype(np.float32)
    time = np.arange(samples) / FEATURES.sample_rate
    for row in range(batch):
        start, end = samples // 4, samples // 4 + samples // 3
        clips[row, start:end] += (0.5 + 0.2 * row) * np.sin(2 * np.pi * (300 + 150 * row) * time[start:end])
    return clips


def _in_chunks(step, clips: np.ndarray, chunk: int, state):
    """Runs `step(chunk, state) -> (outputs, state)` over `clips` cut into `chunk` samples."""
    outputs = []
    for start in range(0, clips.shape[1], chunk):
        output, state = step(tf.constant(clips[:, start:start + chunk]), state)
        outputs.append(output)
    return outputs, state


@pytest.mark.parametrize("chunk", sorted(CHUNKS.values()))
def test_features_in_chunks_equal_the_whole_clip(chunk):
    clips = _clips()
    whole, whole_state = stream_features(clips, initial_feature_state(2))
    assert whole.shape == (2, clips.shape[1] // HOP, FEATURES.num_cepstra)
    parts, state = _in_chunks(stream_features, clips, chunk, initial_feature_state(2))
    np.testing.assert_allclose(tf.concat(parts, axis=1).numpy(), whole.numpy(), rtol=1e-4, atol=1e-4)
    for name, value in whole_state.items():
        np.testing.assert_allclose(state[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_features_ignore_the_recording_level_and_look_only_back():
    clips = _clips()
    features, _ = stream_features(clips, initial_feature_state(2))
    louder, _ = stream_features(8 * clips, initial_feature_state(2))
    np.testing.assert_allclose(louder.numpy(), features.numpy(), atol=2e-3)
    changed = clips.copy()
    changed[:, 8000:] = 0.3
    later, _ = stream_features(changed, initial_feature_state(2))
    frames_before = 8000 // HOP  # frame t ends with sample 160·(t + 1)
    np.testing.assert_array_equal(later.numpy()[:, :frames_before], features.numpy()[:, :frames_before])
    assert not np.allclose(later.numpy()[:, frames_before:], features.numpy()[:, frames_before:])


def test_the_layer_pads_a_clip_to_whole_hops():
    layer = StreamingFeatures()
    clip = _clips(1, 1000)
    padded = np.pad(clip, [[0, 0], [0, 7 * HOP - 1000]])
    np.testing.assert_array_equal(layer(clip).numpy(), stream_features(padded, initial_feature_state(1))[0].numpy())
    assert layer.compute_output_shape((None, 1000)) == (None, 7, FEATURES.num_cepstra)


@pytest.fixture(scope="module")
def model():
    return build_streaming_model(4, SpeechTrain(units=8))


@pytest.mark.parametrize("chunk", sorted(CHUNKS.values()))
def test_the_model_in_chunks_answers_what_it_answers_on_the_clip(model, chunk):
    clips = _clips()
    whole = model(clips, training=False).numpy()
    once, _ = stream_step(model, tf.constant(clips), initial_stream_state(model, 2))
    np.testing.assert_allclose(once.numpy(), whole, rtol=1e-5, atol=1e-6)
    answers, _ = _in_chunks(lambda c, s: stream_step(model, c, s), clips, chunk, initial_stream_state(model, 2))
    np.testing.assert_allclose(answers[-1].numpy(), whole, rtol=1e-4, atol=1e-5)
    # After each chunk, the answer for the clip so far.
    half = clips.shape[1] // 2
    np.testing.assert_allclose(answers[half // chunk - 1].numpy(), model.get_layer("probabilities")(
        _last_state(model, clips[:, :half])).numpy(), rtol=1e-4, atol=1e-5)


def _last_state(model, clips):
    _, state = stream_step(model, tf.constant(clips), initial_stream_state(model, len(clips)))
    return state[[layer.name for layer in model.layers if layer.name.startswith("gru")][-1]]


def test_an_empty_chunk_changes_nothing_and_a_fresh_state_resets(model):
    clips = _clips()
    answer, state = stream_step(model, tf.constant(clips[:, :3200]), initial_stream_state(model, 2))
    again, unchanged = stream_step(model, tf.zeros([2, 0]), state)
    np.testing.assert_array_equal(again.numpy(), answer.numpy())
    for name, value in state.items():
        np.testing.assert_array_equal(unchanged[name].numpy(), value.numpy(), err_msg=name)
    fresh, _ = stream_step(model, tf.constant(clips[:, :3200]), initial_stream_state(model, 2))
    np.testing.assert_array_equal(fresh.numpy(), answer.numpy())


def test_streams_in_one_batch_do_not_mix(model):
    clips = _clips(2)
    together, _ = _in_chunks(lambda c, s: stream_step(model, c, s), clips, CHUNKS["100 ms"],
                             initial_stream_state(model, 2))
    for row in range(2):
        alone, _ = _in_chunks(lambda c, s: stream_step(model, c, s), clips[row:row + 1], CHUNKS["100 ms"],
                              initial_stream_state(model, 1))
        np.testing.assert_allclose(together[-1].numpy()[row], alone[-1].numpy()[0], rtol=1e-5, atol=1e-6)


# A client of the export that imports only TensorFlow: the version folder and a chunk length in argv,
# clips as JSON on stdin -> the label probabilities after each chunk, then those of one whole-clip call.
STREAM_CLIENT = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
stream, initial_state = loaded.signatures["stream"], loaded.signatures["initial_state"]
clips = np.asarray(json.loads(sys.stdin.read()), np.float32)
chunk = int(sys.argv[2])
state = initial_state(batch_size=tf.constant(len(clips)))
answers = []
for start in range(0, clips.shape[1], chunk):
    outputs = stream(waveform_chunk=tf.constant(clips[:, start:start + chunk]), **state)
    state = {name: value for name, value in outputs.items() if name.startswith("state_")}
    answers.append(outputs["probabilities"].numpy().tolist())
whole = stream(waveform_chunk=tf.constant(clips), **initial_state(batch_size=tf.constant(len(clips))))
print(json.dumps({"answers": answers, "whole": whole["probabilities"].numpy().tolist()}))
"""


@pytest.fixture(scope="module")
def streaming_export(smoke_variants) -> Path:
    """The shared tiny streaming word recogniser (read only: a test that converts it works on a copy)."""
    return smoke_variants["speech_streaming"].path


@pytest.mark.parametrize("chunk", sorted(CHUNKS.values()))
def test_the_export_streams_in_a_process_that_imports_only_tensorflow(streaming_export, chunk):
    clips = _clips()
    client = subprocess.run([sys.executable, "-c", STREAM_CLIENT, str(streaming_export), str(chunk)],
                            input=json.dumps(clips.tolist()), capture_output=True, text=True, check=True)
    answered = json.loads(client.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(answered["answers"][-1], answered["whole"], rtol=1e-4, atol=1e-5)
    assert len(answered["answers"]) == clips.shape[1] // chunk
    assert json.loads((streaming_export / "assets.extra" / "gru_suite.json").read_text())["streaming"] is True


def test_the_export_keeps_whole_clips_and_refuses_a_partial_hop(streaming_export):
    export = load_export(registered_app("speech"), streaming_export)
    clips = _clips()
    served = export.signature()(waveform=tf.constant(clips))["probabilities"].numpy()
    state = export.signature("initial_state")(batch_size=tf.constant(2))
    streamed = export.signature("stream")(waveform_chunk=tf.constant(clips), **state)["probabilities"].numpy()
    np.testing.assert_allclose(served, streamed, rtol=1e-4, atol=1e-5)  # a 1 s clip: nothing to cut or pad
    with pytest.raises(tf.errors.InvalidArgumentError, match="waveform_chunk: a chunk holds a whole number of 160-sample"):
        export.signature("stream")(waveform_chunk=tf.constant(clips[:, :100]), **state)
    nobody = export.signature("stream")(waveform_chunk=tf.zeros([0, 1600]),
                                        **export.signature("initial_state")(batch_size=tf.constant(0)))
    assert nobody["probabilities"].shape == (0, served.shape[1]) and nobody["label"].shape == (0,)


def test_streaming_refuses_what_it_cannot_stream():
    with pytest.raises(InputError, match="--cell: a --streaming model is built on gru_core.GRU"):
        cli.run(["train", "speech", "--streaming", "--cell", "lstm"])
    with pytest.raises(InputError, match="--test-speeds: a --streaming model answers"):
        cli.run(["train", "speech", "--streaming", "--test-speeds", "0.9,1,1.1"])


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
def test_stream_in_a_litert_or_onnx_file(streaming_export, tmp_path, file_format):
    pytest.importorskip({"litert": "ai_edge_litert", "onnx": "onnxruntime"}[file_format])
    version = tmp_path / "speech" / "1"
    shutil.copytree(streaming_export, version)
    cli.run(["export", "speech", "--model", str(version), "--format", file_format])
    app = registered_app("speech")
    saved, served = load_export(app, version), load_export(app, version / FORMAT_FILES[file_format])
    assert sorted(served.signatures) == ["initial_state", "serving_default", "stream"]
    clips = _clips()

    def streamed(export):
        state = export.signature("initial_state")(batch_size=tf.constant(2))
        answers = []
        for start in range(0, clips.shape[1], CHUNKS["100 ms"]):
            outputs = export.signature("stream")(waveform_chunk=clips[:, start:start + CHUNKS["100 ms"]], **state)
            state = {name: value for name, value in outputs.items() if name.startswith("state_")}
            answers.append(outputs["probabilities"].numpy())
        return np.stack(answers)

    np.testing.assert_allclose(streamed(served), streamed(saved), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def streaming_transcriber(tmp_path_factory):
    folder, cwd = tmp_path_factory.mktemp("streaming_transcriber"), Path.cwd()
    os.chdir(folder)
    try:
        report = train_app("transcriber", ["--streaming", "--epochs", "1", "--limit", "60", "--units", "8",
                                           "--conv-filters", "8", "--layers", "2", "--verbose", "0",
                                           "--export-dir", str(folder / "models"), "--no-log"])
    finally:
        os.chdir(cwd)
    return load_export(registered_app("transcriber"), Path(report.export_path))


def _streamed_transcripts(export, waveforms: np.ndarray, chunk: int) -> tuple[list[list[str]], dict]:
    state = export.signature("initial_state")(batch_size=tf.constant(len(waveforms)))
    transcripts = []
    for start in range(0, waveforms.shape[1], chunk):
        outputs = export.signature("stream")(waveform_chunk=tf.constant(waveforms[:, start:start + chunk]), **state)
        state = {name: value for name, value in outputs.items() if name.startswith("state_")}
        transcripts.append([text.decode() for text in outputs["transcript"].numpy()])
    return transcripts, state


def test_the_transcriber_streams_to_its_whole_clip_greedy_transcript(streaming_transcriber, capsys):
    example = load_audio(TRANSCRIBER_EXAMPLE)
    cli.run(["transcribe", "--stream", "--model", str(streaming_transcriber.path), str(TRANSCRIBER_EXAMPLE)])
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    greedy = streaming_transcriber.signature("greedy")(waveform=tf.constant(example[np.newaxis]))["transcript"]
    assert lines[-1] == greedy.numpy()[0].decode()
    assert len(lines) == len(set(lines))  # a line each time the transcript changes
    # Two utterances in one batch, in chunks of 20 ms, of 100 ms and whole: the same transcripts,
    # each what it gets alone, and an empty chunk changes nothing.
    clips = _clips(2, 32000)
    finals = []
    for chunk in (*sorted(CHUNKS.values()), clips.shape[1]):
        transcripts, state = _streamed_transcripts(streaming_transcriber, clips, chunk)
        finals.append(transcripts[-1])
    assert finals[0] == finals[1] == finals[2]
    assert finals[0] == [_streamed_transcripts(streaming_transcriber, clips[row:row + 1], 3200)[0][-1][0]
                         for row in range(2)]
    unchanged = streaming_transcriber.signature("stream")(waveform_chunk=tf.zeros([2, 0]), **state)
    for name, value in state.items():
        np.testing.assert_array_equal(unchanged[name].numpy(), value.numpy(), err_msg=name)
    with pytest.raises(tf.errors.InvalidArgumentError, match="a whole number of 320-sample \\(20 ms\\) steps"):
        streaming_transcriber.signature("stream")(waveform_chunk=tf.zeros([2, 160]), **state)
    nobody = streaming_transcriber.signature("stream")(
        waveform_chunk=tf.zeros([0, 1600]), **streaming_transcriber.signature("initial_state")(batch_size=tf.constant(0)))
    assert nobody["transcript"].shape == (0,) and nobody["chunk_labels"].shape == (0,)


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
def test_the_transcriber_streams_in_a_litert_or_onnx_file(streaming_transcriber, tmp_path, file_format, capsys):
    """The file streams log-probabilities and the model's state; the client decodes as the SavedModel."""
    pytest.importorskip({"litert": "ai_edge_litert", "onnx": "onnxruntime"}[file_format])
    version = tmp_path / "transcriber" / "1"
    shutil.copytree(streaming_transcriber.path, version)
    cli.run(["export", "transcriber", "--model", str(version), "--format", file_format])
    served = load_export(registered_app("transcriber"), version / FORMAT_FILES[file_format])
    assert sorted(served.signatures) == ["beam", "greedy", "initial_state", "serving_default", "stream"]
    clips = _clips(2, 16000)
    transcripts, state = _streamed_transcripts(served, clips, CHUNKS["100 ms"])
    expected, expected_state = _streamed_transcripts(streaming_transcriber, clips, CHUNKS["100 ms"])
    assert transcripts == expected
    _assert_same_state(state, expected_state, atol=1e-4)
    unchanged = served.signature("stream")(waveform_chunk=np.zeros([2, 0], np.float32), **state)
    _assert_same_state({name: unchanged[name] for name in state}, state, atol=0)
    with pytest.raises(InputError, match="waveform_chunk: a chunk holds a whole number of 320-sample"):
        served.signature("stream")(waveform_chunk=np.zeros([2, 160], np.float32), **state)
    nobody = served.signature("stream")(waveform_chunk=np.zeros([0, 1600], np.float32),
                                        **served.signature("initial_state")(batch_size=tf.constant(0)))
    assert nobody["transcript"].shape == (0,) and nobody["state_labels"].shape == (0,)
    capsys.readouterr()
    cli.run(["transcribe", "--stream", "--model", str(version / FORMAT_FILES[file_format]), str(TRANSCRIBER_EXAMPLE)])
    greedy = streaming_transcriber.signature("greedy")(waveform=tf.constant(load_audio(TRANSCRIBER_EXAMPLE)[np.newaxis]))
    assert capsys.readouterr().out.rstrip("\n").split("\n")[-1] == greedy["transcript"].numpy()[0].decode()


def _assert_same_state(state: dict, expected: dict, atol: float) -> None:
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        if value.dtype == tf.string:
            np.testing.assert_array_equal(state[name].numpy(), value.numpy(), err_msg=name)
        else:
            np.testing.assert_allclose(state[name].numpy(), value.numpy(), rtol=1e-4, atol=atol, err_msg=name)


def test_a_stream_client_takes_audio_in_any_pieces_and_at_any_rate(streaming_transcriber):
    """What the page's live microphone feeds: uneven pieces, at 48 kHz, as 16-bit stereo PCM."""
    import soxr

    from apps.common.stream_client import StreamClient, mono_float
    from apps.transcriber.serving import STREAM_STEP

    clip = _clips(1, 24000)[0]
    whole = StreamClient(streaming_transcriber, STREAM_STEP)
    whole.feed(clip, last=True)
    pieces = StreamClient(streaming_transcriber, STREAM_STEP)
    for start, end in [(0, 7), (7, 4000), (4000, 4001), (4001, 24000)]:
        pieces.feed(clip[start:end])
    assert len(pieces.heard()) == 24000 - 24000 % STREAM_STEP
    pieces.finish()
    assert len(pieces.heard()) == len(whole.heard()) == 24000 + -24000 % STREAM_STEP
    np.testing.assert_array_equal(whole.heard()[:24000], clip)
    _assert_same_state(pieces.state, whole.state, atol=1e-5)
    with pytest.raises(InputError, match="this stream has ended"):
        pieces.feed(clip[:320])

    # 48 kHz in pieces is resampled as one stream: as the whole clip resampled at once.
    fast = soxr.resample(clip, 16000, 48000).astype(np.float32)
    pcm = np.round(np.stack([fast, fast], axis=1) * 32767).astype(np.int16)
    live = StreamClient(streaming_transcriber, STREAM_STEP, rate=48000)
    for start in range(0, len(pcm), 4801):
        live.feed(mono_float(pcm[start:start + 4801]))
    live.finish()
    at_once = StreamClient(streaming_transcriber, STREAM_STEP, rate=48000)
    at_once.feed(mono_float(pcm), last=True)
    assert len(live.heard()) == len(at_once.heard())
    _assert_same_state(live.state, at_once.state, atol=1e-4)
    with pytest.raises(InputError, match="expected \\[samples\\] or \\[samples, channels\\]"):
        mono_float(np.zeros((2, 2, 2)))


def test_transcribe_stream_needs_a_streaming_export(smoke_exports):
    with pytest.raises(InputError, match="--stream: .* has no stream signature"):
        cli.run(["transcribe", "--stream", "--model", str(smoke_exports["transcriber"].path), str(TRANSCRIBER_EXAMPLE)])
