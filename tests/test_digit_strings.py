"""The digit-string data sets: `digits` joined from the shipped clips, needing nothing beyond the
package, and `digits-espeak`, made with espeak-ng when it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.common.audio import SAMPLE_RATE
from apps.speech.data import SAMPLE_DIR
from apps.transcriber.readers import read_manifest
from apps.transcriber.digit_strings import (
    DigitClip,
    join_clips,
    load_digits,
    load_espeak_digits,
    make_digit_strings,
    sample_digit_clips,
    StringRecipe,
)
from apps.transcriber.labels import DIGIT_LABELS

OPTIONAL_TOOLS = ("espeak-ng", "espeak", "chromium", "chromium-browser")


def _listed(name: str) -> set[str]:
    return set((SAMPLE_DIR / name).read_text().split())


def test_each_split_joins_only_its_own_clips():
    data = load_digits(40, seed=3)
    assert (len(data.train), len(data.validation), len(data.test)) == (32, 4, 4)
    testing, validation = _listed("testing_list.txt"), _listed("validation_list.txt")
    used = {split: {name for names in getattr(data, split).files for name in names.split("+")}
            for split in ("train", "validation", "test")}
    assert used["test"] <= testing and used["validation"] <= validation
    assert not used["train"] & (testing | validation)
    for split in (data.train, data.validation, data.test):
        for text, names in zip(split.transcripts, split.files):
            clips = names.split("+")
            assert 1 <= len(clips) <= 7 and DIGIT_LABELS.covers([text])
            assert text.split() == [Path(name).parent.name for name in clips]


def test_the_strings_are_fixed_by_count_and_seed():
    first, again, other = load_digits(20, seed=1), load_digits(20, seed=1), load_digits(20, seed=2)
    assert first.train.transcripts == again.train.transcripts
    assert all(np.array_equal(a, b) for a, b in zip(first.train.waveforms, again.train.waveforms))
    assert first.train.transcripts != other.train.transcripts
    limited = load_digits(20, limit=3, seed=1)
    assert limited.train.transcripts == first.train.transcripts[:3] and len(limited.test) == 2


def test_strings_are_speech_between_pauses_at_a_safe_level():
    data = load_digits(30)
    for waveform, text in zip(data.train.waveforms, data.train.transcripts):
        assert waveform.dtype == np.float32 and np.abs(waveform).max() <= 1.0
        words = len(text.split())
        # A trimmed shipped digit lasts 0.28-0.9 s (0.24-1.06 s at another speed); pauses add
        # at most 0.25 s each, overlaps take at most 0.12 s.
        assert 0.1 * words < len(waveform) / SAMPLE_RATE < 1.1 * words + 0.25 * (words + 1)
    assert data.noise.size >= SAMPLE_RATE


def test_every_sample_voice_has_every_digit_in_each_split():
    for split, clips in sample_digit_clips().items():
        voices = {clip.speaker for clip in clips}
        assert {(clip.speaker, clip.digit) for clip in clips} == {(v, d) for v in voices for d in range(10)}, split
        assert all(0.1 < clip.audio.size / SAMPLE_RATE < 1.0 for clip in clips)


def test_join_clips_keeps_the_clips_between_its_pauses():
    ones = [np.full(1000, 0.5, np.float32), np.full(3000, 0.5, np.float32)]
    recipe = StringRecipe(pause_seconds=(0.1, 0.1), snr_db=(200.0, 200.0), digits=(2, 2))
    joined = join_clips(ones, np.random.default_rng(0), recipe)
    pause = int(0.1 * SAMPLE_RATE)
    assert joined.size == 4000 + 3 * pause
    loud = np.flatnonzero(np.abs(joined) > 0.1)
    assert loud.size == 4000 and loud[0] == pause and loud[-1] == 4000 + 2 * pause - 1
    faster = join_clips(ones, np.random.default_rng(0), StringRecipe((0.0, 0.0), (200.0, 200.0), (2, 2),
                                                                     speed=(2.0, 2.0)))
    assert faster.size == 2000
    overlapped = join_clips(ones, np.random.default_rng(0), StringRecipe((-0.05, -0.05), (200.0, 200.0), (2, 2)))
    overlap = int(0.05 * SAMPLE_RATE)
    assert overlapped.size == 4000 - overlap  # no margins: a negative one is none
    assert np.allclose(overlapped[1000 - overlap:1000], overlapped.max()) and overlapped.max() > overlapped[0]


def test_a_speaker_without_every_digit_is_refused():
    pool = [DigitClip(f"{digit}.wav", "ann", digit, np.ones(100, np.float32)) for digit in range(9)]
    with pytest.raises(ValueError, match="speaker 'ann' has no recording of nine"):
        make_digit_strings(pool, 1, np.random.default_rng(0), StringRecipe((0, 0), (20, 20), (1, 1)))


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not installed (apt-get install espeak-ng); only digits-espeak needs it")
def test_the_espeak_set_is_made_once_with_espeak_ng(tmp_path, capsys):
    folder = tmp_path / "digits"
    data = load_espeak_digits(20, folder=folder)
    assert "Making the digits-espeak data set once: 20 spoken digit strings" in capsys.readouterr().err
    entries = read_manifest(folder / "transcripts.tsv")
    assert len(entries) == 20 and [split for _, _, split in entries].count("test") == 2
    assert (len(data.train), len(data.validation), len(data.test)) == (16, 2, 2)
    for text in data.train.transcripts:
        assert 1 <= len(text.split()) <= 7 and DIGIT_LABELS.covers([text])
    assert all(0.2 < len(w) / SAMPLE_RATE < 12 for w in data.train.waveforms)
    again = load_espeak_digits(20, folder=folder)
    assert "Making" not in capsys.readouterr().err
    assert again.test.transcripts == data.test.transcripts


def test_without_espeak_ng_the_espeak_set_says_how_to_get_it(tmp_path, monkeypatch):
    from apps.common.errors import InputError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match=r"espeak-ng is not installed \(apt-get install -y espeak-ng; "
                                         "the default digits set needs nothing\\)"):
        load_espeak_digits(20, folder=tmp_path / "digits")
    assert not (tmp_path / "digits").exists()


def test_the_default_data_trains_and_exports_with_python_alone(tmp_path):
    """What a new user's first command needs: the default `digits` set and a training, in a
    process whose PATH has no espeak-ng or chromium and whose Keras cache is empty."""
    python_bin = Path(sys.executable).parent
    if any(shutil.which(tool, path=str(python_bin)) for tool in OPTIONAL_TOOLS):
        python_bin = tmp_path / "bin"  # Python beside those tools (as /usr/bin): show it nothing
        python_bin.mkdir()
    assert not any(shutil.which(tool, path=str(python_bin)) for tool in OPTIONAL_TOOLS)
    env = {**os.environ, "PATH": str(python_bin), "HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_HOME", None)
    models = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-m", "apps.cli", "train", "transcriber", "--limit", "40", "--epochs", "1",
         "--units", "8", "--layers", "1", "--conv-filters", "8", "--batch-size", "16", "--verbose", "0",
         "--export-dir", str(models)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (models / "transcriber" / "1" / "saved_model.pb").is_file()
    assert "transcriber (gru) on digits: test WER" in result.stdout
