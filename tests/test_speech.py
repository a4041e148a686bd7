"""Speech app: audio loading, data layouts, features and bad input (no training)."""

from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import librosa
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from apps.common.audio import CLIP_SAMPLES, SAMPLE_RATE, fix_length, load_audio
from apps.common.errors import InputError
from apps.common.speech_features import (
    FEATURES,
    FeatureConfig,
    SpeechFeatures,
    change_speed,
    log_mel_spectrogram,
)
from apps.common.speech_features import fix_length as fix_length_tf
from apps.speech import data as speech_data
from apps.speech.data import (
    load_data,
    load_directory,
    load_flat_folder,
    load_label_folders,
    speech_commands_set,
)
from apps.speech.model import build_model
from apps.speech.settings import SpeechTrain


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def peak_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[np.argmax(spectrum)])


def test_change_speed_raises_the_pitch_and_keeps_the_clip_length():
    clip = tone(500, CLIP_SAMPLES / SAMPLE_RATE, SAMPLE_RATE)[np.newaxis]
    faster = change_speed(tf.constant(clip), 1.25).numpy()
    assert faster.shape == (1, CLIP_SAMPLES)
    assert peak_frequency(faster[0], SAMPLE_RATE) == pytest.approx(625, abs=3)
    # The shorter sound is centred between zeros.
    assert np.count_nonzero(faster[0]) == pytest.approx(CLIP_SAMPLES / 1.25, abs=2)
    slower = change_speed(tf.constant(clip), 0.8).numpy()
    assert peak_frequency(slower[0], SAMPLE_RATE) == pytest.approx(400, abs=3)
    np.testing.assert_allclose(change_speed(tf.constant(clip), 1.0).numpy(), clip, atol=1e-6)


def test_load_audio_resamples_and_mixes_down(tmp_path):
    path = tmp_path / "stereo_8k.wav"
    left, right = tone(440, 0.5, 8000), tone(440, 0.5, 8000, amplitude=0.1)
    sf.write(path, np.stack([left, right], axis=1), 8000)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == SAMPLE_RATE // 2
    assert peak_frequency(audio, SAMPLE_RATE) == pytest.approx(440, abs=3)
    assert np.abs(audio).max() == pytest.approx(0.3, abs=0.02)  # the mean of both channels


@pytest.mark.parametrize("subtype, rate", [("PCM_U8", 8000), ("PCM_16", 48000), ("PCM_24", 22050)])
def test_load_audio_other_depths_and_rates(tmp_path, subtype, rate):
    path = tmp_path / f"clip_{rate}.wav"
    sf.write(path, tone(1000, 0.25, rate), rate, subtype=subtype)
    audio = load_audio(path)
    assert audio.size == SAMPLE_RATE // 4
    assert peak_frequency(audio, SAMPLE_RATE) == pytest.approx(1000, abs=5)


def bad_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    no_samples = tmp_path / "no_samples.wav"
    sf.write(no_samples, np.zeros(0, np.float32), SAMPLE_RATE)
    header_only = tmp_path / "header_only.wav"
    sf.write(header_only, tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE)
    header_only.write_bytes(header_only.read_bytes()[:30])
    return [empty, text, no_samples, header_only, tmp_path / "missing.wav"]


def test_load_audio_rejects_bad_files_by_name(tmp_path):
    for path in bad_files(tmp_path):
        with pytest.raises(InputError, match=path.name):
            load_audio(path)


def test_truncated_file_decodes_what_is_there(tmp_path):
    path = tmp_path / "truncated.wav"
    sf.write(path, tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE)
    path.write_bytes(path.read_bytes()[: 44 + 2 * 4000])  # header and 4000 of 16000 samples
    assert load_audio(path).size == 4000


def test_fix_length_centres_short_clips_and_keeps_loudest_window():
    short = np.ones(10, np.float32)
    padded = fix_length(short, 16)
    assert padded.shape == (16,) and padded[:3].sum() == 0 and padded[3:13].sum() == 10
    long = np.zeros(100, np.float32)
    long[60:70] = 1.0
    kept = fix_length(long, 20)
    assert kept.shape == (20,) and kept.sum() == 10
    np.testing.assert_array_equal(fix_length(np.zeros(50, np.float32), 20), np.zeros(20))


@pytest.mark.parametrize("size", [1, 9000, CLIP_SAMPLES, 40001])
def test_fix_length_in_graph_matches_numpy(size):
    rng = np.random.default_rng(size)
    audio = (rng.standard_normal(size) * np.linspace(0.1, 1, size) ** 3).astype(np.float32)
    np.testing.assert_array_equal(fix_length_tf(audio[np.newaxis])[0].numpy(), fix_length(audio))


def librosa_log_mel(waveform: np.ndarray, config: FeatureConfig = FEATURES) -> np.ndarray:
    """`[num_mel_bins, frames]` log-mel power of the peak-normalized clip, with librosa."""
    waveform = waveform / max(np.abs(waveform).max(), 1e-4)
    mel = librosa.feature.melspectrogram(y=waveform, **config.librosa_arguments())
    return np.log(mel + config.log_offset)


def frame_energy(log_mel: np.ndarray) -> np.ndarray:
    return np.log(np.exp(log_mel).sum(axis=0))


def librosa_features(waveform: np.ndarray, config: FeatureConfig = FEATURES) -> np.ndarray:
    """`speech_features`, step by step with librosa and NumPy."""
    log_mel = librosa_log_mel(waveform, config)
    energy = frame_energy(log_mel)
    speech = energy > energy.max() - config.speech_floor
    log_mel = np.maximum(log_mel, log_mel.max() - config.dynamic_range)
    log_mel = log_mel - log_mel[:, speech].mean(axis=1, keepdims=True)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.num_cepstra, dct_type=2, norm="ortho")
    return mfcc.T


def test_in_graph_log_mel_matches_librosa():
    """The tolerance stated in apps/speech/model.py: 0.05 in natural-log mel power."""
    rng = np.random.default_rng(0)
    waveforms = np.stack(
        [
            0.3 * rng.standard_normal(CLIP_SAMPLES),
            tone(440, 1, SAMPLE_RATE)
            + tone(3100, 1, SAMPLE_RATE, 0.2)
            + 0.01 * rng.standard_normal(CLIP_SAMPLES),
        ]
    ).astype(np.float32)
    features = log_mel_spectrogram(tf.constant(waveforms)).numpy()
    assert features.shape == (2, FEATURES.num_frames, FEATURES.num_mel_bins)
    filters = librosa.filters.mel(
        sr=SAMPLE_RATE,
        n_fft=FEATURES.frame_length,
        n_mels=FEATURES.num_mel_bins,
        fmin=FEATURES.lower_hertz,
        fmax=FEATURES.upper_hertz,
        htk=True,
        norm=None,
    )
    for waveform, ours in zip(waveforms, features):
        mel = librosa.feature.melspectrogram(y=waveform, **FEATURES.librosa_arguments())
        reference = np.log(mel + FEATURES.log_offset).T
        assert np.abs(ours - reference).max() < 0.05
        # The short-time Fourier transforms agree to round-off: with librosa's
        # own filter bank on tf.signal's power spectrum the features match closely.
        stft = tf.signal.stft(
            waveform, FEATURES.frame_length, FEATURES.frame_step, FEATURES.frame_length
        )
        power = np.abs(stft.numpy()) ** 2
        assert np.abs(np.log(power @ filters.T + FEATURES.log_offset) - reference).max() < 2e-3


@pytest.mark.parametrize("band", [(FEATURES.lower_hertz, FEATURES.upper_hertz), (100.0, 4000.0)])
def test_model_features_match_librosa_mfcc_on_speech(band):
    """The model's feature layer against librosa on synthetic spoken words: within 0.1."""
    clips = load_data("sample").test.waveforms[:12]
    ours = SpeechFeatures(*band)(clips).numpy()
    assert ours.shape == (len(clips), *FEATURES.feature_shape)
    config = replace(FEATURES, lower_hertz=band[0], upper_hertz=band[1])
    compared = 0
    for waveform, features in zip(clips, ours):
        # A frame whose energy lies within the log-mel tolerance (0.05) of the
        # speech threshold may count as speech on one side only; such clips
        # cannot be compared this way.
        energy = frame_energy(librosa_log_mel(waveform, config))
        if np.abs(energy - (energy.max() - config.speech_floor)).min() < 0.05:
            continue
        assert np.abs(features - librosa_features(waveform, config)).max() < 0.1
        compared += 1
    assert compared >= 6


def test_features_capped_at_4_khz_ignore_the_band_above():
    """What an 8 kHz recording lacks (sound above 4 kHz) does not reach features capped there."""
    rng = np.random.default_rng(5)
    word = np.zeros(CLIP_SAMPLES, np.float32)
    word[4000:12000] = tone(300, 0.5, SAMPLE_RATE) + tone(1200, 0.5, SAMPLE_RATE, 0.3)
    hiss = librosa.resample(rng.standard_normal(CLIP_SAMPLES // 2), orig_sr=8000, target_sr=16000)
    hiss = 0.2 * (hiss * np.cos(np.pi * np.arange(CLIP_SAMPLES)))  # moved to 4-8 kHz
    clips = np.stack([word, word + hiss.astype(np.float32)])
    capped = SpeechFeatures(upper_hertz=4000)(clips).numpy()
    np.testing.assert_allclose(capped[0], capped[1], atol=0.05)
    full_band = SpeechFeatures()(clips).numpy()
    assert np.abs(full_band[0] - full_band[1]).max() > 1.0


def test_feature_band_is_validated_and_kept_by_saving(tmp_path):
    for lower_hertz, upper_hertz in ((20, 8001), (-1, 4000), (4000, 4000)):
        with pytest.raises(ValueError, match="lower_hertz=.*upper_hertz="):
            SpeechFeatures(lower_hertz, upper_hertz)
    model = build_model(
        3, SpeechTrain(units=4, min_frequency=100, max_frequency=4000), conv_filters=4, recurrent_layers=1
    )
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    features = loaded.get_layer("features")
    assert (features.lower_hertz, features.upper_hertz) == (100.0, 4000.0)
    clips = load_data("sample", limit=2).test.waveforms
    np.testing.assert_allclose(
        loaded.predict(clips, verbose=0), model.predict(clips, verbose=0), atol=1e-6
    )


def write_label_folders(root, rate: int, suffix: str, per_label: int = 4):
    for label_number, label in enumerate(["high", "low"]):
        (root / label).mkdir(parents=True)
        for index in range(per_label):
            audio = tone(300 + 900 * (1 - label_number) + 20 * index, 0.4 + 0.2 * index, rate)
            sf.write(root / label / f"spk{index}_nohash_0{suffix}", audio, rate)


def test_label_folders_with_split_lists_and_noise(tmp_path):
    write_label_folders(tmp_path, 22050, ".flac")
    (tmp_path / "testing_list.txt").write_text("high/spk0_nohash_0.flac\nlow/spk0_nohash_0.flac\n")
    (tmp_path / "validation_list.txt").write_text("low/spk1_nohash_0.flac\n")
    (tmp_path / "_background_noise_").mkdir()
    sf.write(tmp_path / "_background_noise_" / "hum.wav", tone(60, 2.0, 8000), 8000)
    data = load_label_folders(tmp_path)
    assert data.labels == ["high", "low"]
    assert (len(data.train), len(data.validation), len(data.test)) == (5, 1, 2)
    assert sorted(data.test.files) == ["high/spk0_nohash_0.flac", "low/spk0_nohash_0.flac"]
    assert data.train.waveforms.shape == (5, CLIP_SAMPLES)
    assert data.noise.size == 2 * SAMPLE_RATE
    high = data.train.labels == 0
    assert all(peak_frequency(w, SAMPLE_RATE) > 1000 for w in data.train.waveforms[high])


def test_label_folders_without_lists_use_the_hash_rule(tmp_path):
    write_label_folders(tmp_path, 8000, ".wav", per_label=6)
    data = load_directory(tmp_path)
    for split_name, split in (
        ("train", data.train),
        ("validation", data.validation),
        ("test", data.test),
    ):
        assert all(speech_commands_set(f) == split_name for f in split.files)
    assert len(data.train) + len(data.validation) + len(data.test) == 12
    assert data.noise.size >= CLIP_SAMPLES  # synthetic noise stands in


def test_hash_rule_keeps_speakers_together_and_splits_ten_ten_eighty():
    assert speech_commands_set("yes/0a7c2a8d_nohash_0.wav") == speech_commands_set(
        "no/0a7c2a8d_nohash_3.wav"
    )
    sets = [speech_commands_set(f"yes/{i:08x}_nohash_0.wav") for i in range(3000)]
    assert sets.count("validation") / 3000 == pytest.approx(0.1, abs=0.03)
    assert sets.count("test") / 3000 == pytest.approx(0.1, abs=0.03)


def test_flat_layout_index_split_and_speakers(tmp_path):
    for digit in range(3):
        for speaker in ("ann", "bob"):
            for index in range(7):
                sf.write(
                    tmp_path / f"{digit}_{speaker}_{index}.wav",
                    tone(400 + 300 * digit, 0.3, 8000),
                    8000,
                )
    data = load_directory(tmp_path)
    assert data.labels == ["0", "1", "2"]
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 0, 30)
    assert all(int(f.split("_")[2].split(".")[0]) < 5 for f in data.test.files)
    by_speaker = load_flat_folder(tmp_path, test_speakers={"bob"})
    assert all("_bob_" in f for f in by_speaker.test.files) and len(by_speaker.test) == 21
    with pytest.raises(InputError, match="carol"):
        load_flat_folder(tmp_path, test_speakers={"carol"})
    (tmp_path / "badly-named.wav").write_bytes(b"")
    with pytest.raises(InputError, match="badly-named.wav"):
        load_directory(tmp_path)


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        load_data(str(tmp_path / "nowhere"))
    (tmp_path / "only").mkdir()
    sf.write(tmp_path / "only" / "a.wav", tone(440, 0.1, 8000), 8000)
    with pytest.raises(InputError, match="two LABEL"):
        load_directory(tmp_path)


def test_sample_data_is_shipped_and_split():
    data = load_data("sample")
    assert len(data.labels) == 18 and {"zero", "nine", "yes", "go"} <= set(data.labels)
    assert (len(data.train), len(data.validation), len(data.test)) == (216, 36, 36)
    assert not set(data.train.files) & set(data.test.files)
    assert speech_data.SAMPLE_DIR.joinpath("testing_list.txt").is_file()


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_builder_takes_each_cell(cell):
    model = build_model(3, SpeechTrain(cell=cell, units=4), conv_filters=4, recurrent_layers=1)
    assert model.predict(np.zeros((2, CLIP_SAMPLES), np.float32), verbose=0).shape == (2, 3)
    with pytest.raises(ValueError, match="num_labels"):
        build_model(1, SpeechTrain())


def test_model_features_ignore_recording_level():
    rng = np.random.default_rng(3)
    word = np.zeros(CLIP_SAMPLES, np.float32)
    word[4000:12000] = tone(500, 0.5, SAMPLE_RATE) + 0.05 * rng.standard_normal(8000)
    loud, quiet = SpeechFeatures()(np.stack([word, 0.05 * word])).numpy()
    np.testing.assert_allclose(loud, quiet, atol=1e-4)
    speech_frames = slice(30, 70)  # the word, without the padding around it
    assert np.abs(loud[speech_frames, 0].mean()) < 1.0  # mean-normalized
