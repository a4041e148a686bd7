"""Speech app: a short training that exports, the export served in a fresh process, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from apps import cli
from apps.common.audio import CLIP_SAMPLES, fix_length, load_audio, SAMPLE_RATE
from apps.common.errors import InputError
from apps.common.export import export_serving_model
from apps.common.speech_features import change_speed
from apps.registry import load_app_packages
from apps.speech.data import load_data
from apps.speech.serving import SpeechServer
from apps.speech.settings import SpeechTrain
from apps.speech.training import train_speech_model

load_app_packages()

SERVE_IN_FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
results = []
for waveform in np.load(sys.argv[2], allow_pickle=True):
    out = serve(waveform=tf.constant(waveform[np.newaxis, :], tf.float32))
    results.append({"label": out["label"].numpy()[0].decode(),
                    "probabilities": out["probabilities"].numpy()[0].tolist()})
imported = sorted(m for m in ("apps", "gru_core") if m in sys.modules)
print(json.dumps({"results": results, "imported": imported}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for two epochs on a slice of `sample`, and its export."""
    sample = load_data("sample", limit=36, seed=0)
    model = train_speech_model(sample, SpeechTrain(units=8, epochs=2, batch_size=12, verbose=0))
    server = SpeechServer(model, sample.labels)
    root = tmp_path_factory.mktemp("exports")
    export = export_serving_model("speech", server.serve, [model, server], root)
    return sample, model, export


def test_export_layout_and_signature(trained):
    sample, _, export = trained
    assert export.name == "1" and (export / "saved_model.pb").is_file()
    import tensorflow as tf

    signature = tf.saved_model.load(str(export)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["waveform"]
    assert signature.structured_input_signature[1]["waveform"].shape.as_list() == [None, None]
    outputs = signature(waveform=tf.zeros([3, 5000]))
    assert outputs["label"].dtype == tf.string and outputs["label"].shape == (3,)
    assert outputs["probabilities"].shape == (3, len(sample.labels))


def test_fresh_process_serves_raw_waveforms_like_the_model(trained, tmp_path):
    sample, model, export = trained
    rng = np.random.default_rng(1)
    clip = sample.test.waveforms[0]
    waveforms = [
        clip,  # exactly one second
        clip[4000:12000],  # shorter: padded inside
        np.concatenate([0.001 * rng.standard_normal(30000).astype(np.float32), clip]),  # longer
        np.zeros(100, np.float32),  # silence
    ]
    array = np.empty(len(waveforms), dtype=object)
    array[:] = waveforms
    np.save(tmp_path / "waveforms.npy", array, allow_pickle=True)
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_IN_FRESH_PROCESS,
            str(export),
            str(tmp_path / "waveforms.npy"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert process.returncode == 0, process.stderr[-2000:]
    served = json.loads(process.stdout.strip().splitlines()[-1])
    assert served["imported"] == []
    expected = model.predict(np.stack([fix_length(w) for w in waveforms]), verbose=0)
    for result, probabilities in zip(served["results"], expected):
        np.testing.assert_allclose(result["probabilities"], probabilities, atol=1e-5)
        assert result["label"] == sample.labels[int(np.argmax(probabilities))]


def test_train_command_reports_confusion_matrix_and_exports(tmp_path):
    report = cli.run(
        [
            "train",
            "speech",
            "--limit",
            "24",
            "--epochs",
            "1",
            "--units",
            "4",
            "--batch-size",
            "12",
            "--export-dir",
            str(tmp_path / "exports"),
            "--run-dir",
            str(tmp_path / "run"),
            "--verbose",
            "0",
            "--test-speeds",
            "0.9,1,1.1",
        ]
    )
    assert report.extra["test speeds"] == "0.9,1,1.1"
    assert report.app == "speech" and report.metric == "test accuracy" and 0 <= report.value <= 1
    assert (tmp_path / "run" / "confusion_matrix.png").stat().st_size > 1000
    assert report.extra["confusion matrix"] == str(tmp_path / "run" / "confusion_matrix.png")
    assert (tmp_path / "exports" / "speech" / "1" / "saved_model.pb").is_file()


def test_speed_averaging_serves_the_mean_log_probability(trained):
    sample, model, _ = trained
    clips = tf.constant(sample.test.waveforms[:4])
    speeds = (0.9, 1.0, 1.1)
    server = SpeechServer(model, sample.labels, speeds)
    served = server.serve(clips)["probabilities"].numpy()
    log_probabilities = np.mean(
        [np.log(model.predict(change_speed(clips, speed), verbose=0) + 1e-7) for speed in speeds],
        axis=0,
    )
    expected = np.exp(log_probabilities) / np.exp(log_probabilities).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert not np.allclose(served, model.predict(clips, verbose=0), atol=1e-4)


def test_train_command_rejects_bad_arguments(tmp_path, rejected):
    for speeds in ("3", "fast"):
        assert "--test-speeds" in rejected(["train", "speech", "--test-speeds", speeds, "--no-export"])
    assert "--epochs" in rejected(["train", "speech", "--epochs", "0", "--no-export"])
    assert "--max-frequency: must be a number in [0, 8000]" in rejected(
        ["train", "speech", "--max-frequency", "9000", "--no-export"])
    with pytest.raises(InputError, match="--min-frequency and --max-frequency"):
        cli.run(["train", "speech", "--min-frequency", "500", "--max-frequency", "300", "--no-export"])
    assert "nowhere" in rejected(["train", "speech", "--data", str(tmp_path / "nowhere"), "--no-export"])


def test_predict_reports_good_files_and_names_bad_ones(trained, tmp_path, capsys):
    sample, model, export = trained
    clip = sample.test.waveforms[0]
    rng = np.random.default_rng(2)
    files = {}
    files["word"] = tmp_path / "word.flac"
    sf.write(files["word"], clip, SAMPLE_RATE)
    files["stereo_48k"] = tmp_path / "stereo_48k.wav"
    import librosa

    sf.write(
        files["stereo_48k"],
        np.stack([librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=48000)] * 2, 1),
        48000,
    )
    files["eight_bit"] = tmp_path / "eight_bit.wav"
    sf.write(
        files["eight_bit"],
        librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=8000),
        8000,
        subtype="PCM_U8",
    )
    files["silence"] = tmp_path / "silence.wav"
    sf.write(files["silence"], np.zeros(CLIP_SAMPLES, np.float32), SAMPLE_RATE)
    files["ten_minutes"] = tmp_path / "ten_minutes.wav"
    long = (0.002 * rng.standard_normal(600 * SAMPLE_RATE)).astype(np.float32)
    long[300 * SAMPLE_RATE : 301 * SAMPLE_RATE] += clip
    sf.write(files["ten_minutes"], long, SAMPLE_RATE)
    files["empty"] = tmp_path / "empty.wav"
    files["empty"].write_bytes(b"")
    files["not_audio"] = tmp_path / "not_audio.mp3"
    files["not_audio"].write_text("hello\n" * 100)

    results = cli.run(
        ["predict", "speech", "--model", str(export.parent), *map(str, files.values())]
    )
    by_name = {os.path.basename(r["file"]).split(".")[0]: r for r in results}
    assert set(by_name) == set(files)
    for bad in ("empty", "not_audio"):
        assert "error" in by_name[bad] and bad in by_name[bad]["error"]
    for good in ("word", "stereo_48k", "eight_bit", "silence", "ten_minutes"):
        assert by_name[good]["label"] in sample.labels
    for name in ("word", "stereo_48k", "ten_minutes"):
        # What the export served equals the model on the loudest second of the decoded file.
        expected = model.predict(fix_length(load_audio(files[name]))[np.newaxis], verbose=0)[0]
        np.testing.assert_allclose(by_name[name]["probabilities"], expected, atol=1e-5)
    printed = capsys.readouterr().out
    assert "silent input" in printed and "600.0 s long" in printed

    with pytest.raises(InputError, match="no file could be read"):
        cli.run(["predict", "speech", "--model", str(export), str(files["empty"])])
