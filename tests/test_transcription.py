"""The transcriber: CTC decoding, label sets, the digits set, its training data and its export."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from apps import cli
from apps.common.audio import load_audio, SAMPLE_RATE
from apps.common.errors import InputError
from apps.common.running import load_export, registered_app
from apps.registry import load_app_packages
from apps.transcriber.app import EXAMPLE
from apps.transcriber.data import TranscribedSplit
from apps.transcriber.labels import CHARACTERS, DIGIT_LABELS, label_set_for
from apps.transcriber.model import build_acoustic_model, ctc_decode, output_frames
from apps.transcriber.serving import TranscriberServer, transcribe_batches, utterance_samples
from apps.transcriber.settings import MAX_SECONDS, TranscriberTrain
from apps.transcriber.training import fitting_utterances, utterance_dataset

APP = registered_app("transcriber")


def _frames(labels, path: list[str], confidence: float = 10.0) -> tf.Tensor:
    """One-row logits whose likeliest class per frame spells `path` ("-" is the blank)."""
    blank = labels.num_classes - 1
    ids = [blank if token == "-" else labels.tokens.index(token) for token in path]
    return tf.one_hot([ids], labels.num_classes) * confidence


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_decoding_merges_repeats_and_drops_blanks(decoding):
    logits = _frames(CHARACTERS, list("hh-e-ll-l-oo"))
    assert ctc_decode(logits, [12], CHARACTERS, decoding).numpy().tolist() == [b"hello"]
    words = _frames(DIGIT_LABELS, ["four", "four", "-", "four", "two", "-", "-"])
    assert ctc_decode(words, [7], DIGIT_LABELS, decoding).numpy().tolist() == [b"four four two"]


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_decoding_reads_only_each_rows_own_frames(decoding):
    logits = tf.concat([_frames(CHARACTERS, list("ab-c")), _frames(CHARACTERS, list("-a--"))], axis=0)
    decoded = ctc_decode(logits, [2, 4], CHARACTERS, decoding).numpy().tolist()
    assert decoded == [b"ab", b"a"]


def test_spaces_collapse_and_ends_are_trimmed():
    logits = _frames(CHARACTERS, list(" a- -  b "))
    assert ctc_decode(logits, [9], CHARACTERS).numpy().tolist() == [b"a b"]


def test_beam_search_sums_alignments_where_greedy_takes_the_best_path():
    # Per frame: P(a) = 0.4, P(blank) = 0.6, twice. The best path is blank-blank
    # (0.36, greedy says ""), but "a" has three alignments (a-, -a, aa: 0.64).
    probabilities = np.zeros((1, 2, CHARACTERS.num_classes), np.float32) + 1e-6
    probabilities[0, :, CHARACTERS.tokens.index("a")] = 0.4
    probabilities[0, :, -1] = 0.6
    logits = tf.math.log(tf.constant(probabilities))
    assert ctc_decode(logits, [2], CHARACTERS, "greedy").numpy().tolist() == [b""]
    assert ctc_decode(logits, [2], CHARACTERS, "beam").numpy().tolist() == [b"a"]


def test_label_sets():
    assert label_set_for(["three one", "nine"]) is DIGIT_LABELS
    assert label_set_for(["three one", "hello"]) is CHARACTERS
    assert label_set_for(["three one"], "characters") is CHARACTERS
    with pytest.raises(ValueError, match="digit words"):
        label_set_for(["hello"], "digits")
    assert DIGIT_LABELS.encode(["two zero"]) == [[2, 0]]
    assert CHARACTERS.encode(["a b"]) == [[2, 0, 3]]


def test_utterance_lengths_and_frames():
    waveform = np.zeros((2, 3000), np.float32)
    waveform[0, :1200] = 0.5
    waveform[1, 2999] = -0.1
    assert utterance_samples(tf.constant(waveform)).numpy().tolist() == [1200, 3000]
    # 512-sample windows every 160 samples, then half as many frames.
    assert output_frames(tf.constant([512, 672, 16000])).numpy().tolist() == [1, 1, 49]


def test_padding_does_not_change_an_utterances_frames():
    model = build_acoustic_model(DIGIT_LABELS.num_classes, TranscriberTrain(units=8, layers=2, conv_filters=8, seed=1))
    rng = np.random.default_rng(0)
    short = (0.3 * rng.standard_normal(6000)).astype(np.float32)
    alone = model({"waveform": short[np.newaxis], "samples": np.array([6000], np.int32)})
    padded = np.zeros((1, 12000), np.float32)
    padded[0, :6000] = short
    batched = model({"waveform": padded, "samples": np.array([6000], np.int32)})
    frames = int(output_frames(tf.constant(6000)))
    assert alone.shape[1] == frames
    np.testing.assert_allclose(batched[0, :frames], alone[0], atol=1e-5)


def test_utterances_too_short_for_their_transcripts_are_left_out_of_training():
    # "three three three" needs 5 output frames (a blank between equal labels): 9 feature
    # frames, 512 + 8·160 = 1792 samples; "one two" needs 2: 832 samples.
    lengths = [1792, 1791, 832, 831]
    transcripts = ["three three three", "three three three", "one two", "one two"]
    split = TranscribedSplit([np.full(n, 0.5, np.float32) for n in lengths], transcripts, list("abcd"))
    assert fitting_utterances(split, DIGIT_LABELS).files == ["a", "c"]
    # Sped up by 10% in augmentation, 1792 samples become 1629: too short.
    assert fitting_utterances(split, DIGIT_LABELS, speed_up=1.1).files == []
    assert fitting_utterances(split, CHARACTERS).files == []


def test_training_on_clips_too_short_for_any_transcript_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("train", "test"):
        (tmp_path / folder).mkdir()
        for index in range(2):
            sf.write(tmp_path / folder / f"{index}.wav", 0.3 * rng.standard_normal(800), SAMPLE_RATE)
            (tmp_path / folder / f"{index}.txt").write_text("a sentence far too long for a twentieth of a second")
    load_app_packages()
    with pytest.raises(InputError, match=r"no training utterance is long enough for its transcript"):
        cli.run(["train", "speech", "--task", "transcribe", "--data", str(tmp_path), "--epochs", "1",
                 "--units", "4", "--layers", "1", "--conv-filters", "4", "--export-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_training_batches_pad_waveforms_with_zeros_and_labels_with_minus_one():
    lengths = [800, 900, 1000, 1100, 1200, 1300, 1400, 1500]
    transcripts = ["one", "two five", "nine", "three three three", "zero", "one two", "six", "seven eight"]
    split = TranscribedSplit([np.full(n, 0.5, np.float32) for n in lengths], transcripts, [])
    seen, padded = {}, False
    for inputs, labels in utterance_dataset(split, DIGIT_LABELS, batch_size=8):
        waveform, samples = inputs["waveform"].numpy(), inputs["samples"].numpy()
        assert waveform.shape[1] == samples.max()
        for row, size in enumerate(samples):
            assert waveform[row, :size].min() == 0.5 and not waveform[row, size:].any()
            padded |= size < waveform.shape[1]
            ids = labels.numpy()[row]
            seen[int(size)] = [int(i) for i in ids if i >= 0]
            assert all(i == -1 for i in ids[len(seen[int(size)]):])
    assert padded and sorted(seen) == lengths
    assert [seen[n] for n in lengths] == DIGIT_LABELS.encode(transcripts)


def test_train_speech_task_transcribe_and_an_export_route_to_the_transcriber(smoke_exports):
    assert cli.routed(["train", "speech", "--task", "transcribe", "--epochs", "1"]) == [
        "train", "transcriber", "--task", "transcribe", "--epochs", "1"]
    assert cli.routed(["train", "speech", "--task=words"]) == ["train", "speech", "--task=words"]
    assert cli.routed(["train", "transcriber", "--task", "words"])[1] == "speech"
    export = str(smoke_exports["transcriber"].path)
    assert cli.routed(["evaluate", "speech", "--model", export]) == [
        "evaluate", "transcriber", "--model", export]
    speech_export = str(smoke_exports["speech"].path)
    assert cli.routed(["evaluate", "speech", "--model", speech_export])[1] == "speech"
    assert cli.routed(["predict", "transcriber", "--model", speech_export])[1] == "speech"
    assert cli.routed(["train", "stock", "--task", "transcribe"])[1] == "stock"


def test_task_is_a_flag_of_both_family_members_and_a_bad_one_is_refused(capsys):
    load_app_packages()
    for app in ("speech", "transcriber"):
        with pytest.raises(SystemExit) as exit_info:
            cli.run(["train", app, "--task", "poetry"])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert "--task" in error and "'transcribe'" in error and "'words'" in error
    with pytest.raises(SystemExit):
        cli.run(["train", "stock", "--task", "words"])
    assert "unrecognized arguments: --task" in capsys.readouterr().err


def test_evaluate_speech_reports_error_rates_of_a_transcriber_export(smoke_exports, capsys):
    export = smoke_exports["transcriber"].path
    evaluation = cli.run(["evaluate", "speech", "--model", str(export), "--data", "digits:60",
                          "--decoding", "greedy"])
    assert evaluation.metric == "test WER" and evaluation.value >= 0
    assert 0 <= evaluation.details["test CER"] and evaluation.details["decoding"] == "greedy"
    assert "WER" in capsys.readouterr().out


def test_transcripts_never_outgrow_the_frames(smoke_exports):
    export = load_export(APP, smoke_exports["transcriber"].path)
    rng = np.random.default_rng(3)
    waveform = (0.5 * rng.standard_normal((3, 8000))).astype(np.float32)
    waveform[1, 3000:] = 0
    for name in ("serving_default", "greedy", "beam"):
        outputs = export.signature(name)(waveform=tf.constant(waveform))
        for text, frames in zip(outputs["transcript"].numpy(), outputs["frames"].numpy()):
            assert len(text.decode().split()) <= frames
        assert outputs["frames"].numpy().tolist() == output_frames(tf.constant([8000, 3000, 8000])).numpy().tolist()


def _write(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> str:
    sf.write(path, audio, rate)
    return str(path)


def test_transcribe_skips_bad_files_and_transcribes_the_others(smoke_exports, tmp_path, capsys):
    export = str(smoke_exports["transcriber"].path)
    example = load_audio(EXAMPLE)
    stereo_8k = _write(tmp_path / "stereo.wav", np.stack([example[::2], example[::2]], axis=1), 8000)
    silent = _write(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE, np.float32))
    long = _write(tmp_path / "long.wav", np.tile(example, int(MAX_SECONDS / 1.5) + 2))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    empty = _write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    results = cli.run(["transcribe", "--model", export, str(EXAMPLE), stereo_8k, silent, long, str(broken), empty])
    captured = capsys.readouterr()
    assert [("transcript" in r, "error" in r) for r in results] == [
        (True, False), (True, False), (True, False), (False, True), (False, True), (False, True)]
    assert f"at most {MAX_SECONDS:g} s" in results[3]["error"]
    assert "not a readable audio file" in results[4]["error"] and "no samples" in results[5]["error"]
    assert "(silent input)" in captured.out and captured.err.count("skipped:") == 3
    with pytest.raises(InputError, match="no file could be read"):
        cli.run(["transcribe", "--model", export, str(broken)])


def test_transcripts_do_not_depend_on_the_batch(smoke_exports):
    serve = load_export(APP, smoke_exports["transcriber"].path).signature()
    rng = np.random.default_rng(5)
    waveforms = [load_audio(EXAMPLE), (0.2 * rng.standard_normal(5000)).astype(np.float32)]
    together = transcribe_batches(serve, waveforms)
    assert together == [transcribe_batches(serve, [w])[0] for w in waveforms]


FRESH = textwrap.dedent("""
    import json, sys
    import soundfile as sf
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    audio, rate = sf.read(sys.argv[2], dtype="float32")
    batch = tf.constant([audio, list(audio[: len(audio) // 2]) + [0.0] * (len(audio) - len(audio) // 2)])
    result = {name: loaded.signatures[name](waveform=batch)["transcript"].numpy().tolist()
              for name in ("serving_default", "greedy", "beam")}
    result["rate"] = rate
    result["project imported"] = any(m.split(".")[0] in ("apps", "gru_core") for m in sys.modules)
    print(json.dumps(result, default=lambda b: b.decode("utf-8")))
""")


def test_the_export_transcribes_raw_waveforms_in_a_fresh_process(smoke_exports, tmp_path):
    result = subprocess.run([sys.executable, "-c", FRESH, str(smoke_exports["transcriber"].path), str(EXAMPLE)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    said = json.loads(result.stdout.strip().splitlines()[-1])
    assert said["rate"] == SAMPLE_RATE and not said["project imported"]
    metadata = load_export(APP, smoke_exports["transcriber"].path).metadata
    assert said["serving_default"] == said[metadata["decoding"]]
    assert all(len(said[name]) == 2 and all(isinstance(t, str) for t in said[name]) for name in ("greedy", "beam"))


def test_the_export_records_how_it_decodes(smoke_exports):
    metadata = load_export(APP, smoke_exports["transcriber"].path).metadata
    assert metadata["labels"] == "digit words" and metadata["decoding"] in ("greedy", "beam")
    assert metadata["max_seconds"] == MAX_SECONDS and metadata["sample_rate"] == SAMPLE_RATE


def test_a_small_server_decodes_both_ways():
    model = build_acoustic_model(CHARACTERS.num_classes, TranscriberTrain(units=4, layers=1, conv_filters=4))
    server = TranscriberServer(model, CHARACTERS, "greedy", beam_width=4)
    waveform = tf.random.normal([2, 4000])
    for endpoint in (server.serve, server.greedy, server.beam):
        assert endpoint(waveform)["transcript"].shape == (2,)
    with pytest.raises(ValueError, match="decoding"):
        TranscriberServer(model, CHARACTERS, "viterbi")
