"""Synthetic speech made with espeak-ng: the word sample's clips and the `digits-espeak` strings.

Needs the `espeak-ng` program (a Debian package: `apt-get install -y
espeak-ng`) only to generate; `apps/speech/make_sample.py` is the command
line that remakes the shipped sample (same espeak-ng version, 1.51 from
Debian, same audio).

Every word is spoken by a rotating set of espeak-ng voices (US, British,
Scottish, Caribbean English; male and female variants) at varied speeds and
pitches. Each clip is trimmed to the word plus a short margin, given a random
gain and mixed with synthetic background noise (white, pink or brown noise,
or mains hum) at a signal-to-noise ratio between 5 and 30 dB, then written
as 16 kHz mono 16-bit FLAC. The folder follows the Speech Commands layout
(`WORD/*.flac` with `validation_list.txt` and `testing_list.txt`), so the
ordinary directory loader reads it. The voices are synthetic: accuracy on
this set says little about real speech (see `--data fsdd`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from apps.common.audio import SAMPLE_RATE, in_noise_at_random_level

WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "stop",
    "go",
)
DIGITS = WORDS[:10]
VOICES = (
    "en-us",
    "en-gb+f2",
    "en-gb-scotland",
    "en-us+f3",
    "en-029",
    "en-gb-x-rp+m3",
    "en-us+f4",
    "en-gb+m5",
)
# `--voices many`: every English dialect with every voice variant espeak-ng
# ships (273 voices), for larger synthetic sets such as the speech benchmark's.
MANY_VOICES = tuple(
    dialect + variant
    for dialect in ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                    "en-gb-x-gbcwmd", "en-029")
    for variant in ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3",
                    "+f4", "+f5", "+Andy", "+Annie", "+Alex", "+Andrea", "+Belinda", "+Benjamin",
                    "+David", "+Ed", "+Edward", "+grandpa", "+Jacky", "+John", "+Lee", "+Linda",
                    "+Max", "+Michael", "+Mike", "+Paul", "+Rob", "+Robert", "+Steph", "+Zac",
                    "+anika", "+klatt", "+klatt2", "+klatt3")
)
MARGIN_SECONDS = 0.05
SNR_DB = (5.0, 30.0)  # of the synthetic noise mixed into every clip and string


def synthesize(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """The espeak-ng rendering of `word`, resampled to 16 kHz mono float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "word.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word],
            check=True,
            capture_output=True,
        )
        audio, _ = librosa.load(wav, sr=SAMPLE_RATE, mono=True)
    return audio


def make_clip(
    word: str, index: int, rng: np.random.Generator, voices: tuple[str, ...] = VOICES
) -> np.ndarray:
    # Shifted every round of voices, so the test and validation clips (every
    # 8th) are spoken by different voices, each also heard in training.
    voice = voices[(index + index // len(voices)) % len(voices)]
    speed = int(rng.integers(120, 211))
    pitch = int(rng.integers(20, 81))
    speech, _ = librosa.effects.trim(synthesize(word, voice, speed, pitch), top_db=40)
    margin = np.zeros(int(MARGIN_SECONDS * SAMPLE_RATE), np.float32)
    return in_noise_at_random_level(np.concatenate([margin, speech, margin]), rng, SNR_DB)


def generate(
    out_dir: Path,
    clips_per_word: int,
    seed: int = 0,
    words: tuple[str, ...] = WORDS,
    voices: tuple[str, ...] = VOICES,
) -> None:
    """Writes `clips_per_word` clips of each of `words` and the split lists to `out_dir`.

    Clip indices 0 modulo 8 of every word go to the test list, 1 modulo 8 to
    the validation list (two clips each, in two voices).
    """
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install -y espeak-ng")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    testing, validation = [], []
    for word in words:
        rng = np.random.default_rng([seed, WORDS.index(word)])
        (out_dir / word).mkdir(parents=True)
        for index in range(clips_per_word):
            name = f"{word}/{word}_{index:02d}.flac"
            clip = make_clip(word, index, rng, voices)
            sf.write(out_dir / name, clip, SAMPLE_RATE, subtype="PCM_16")
            if index % 8 == 0:
                testing.append(name)
            elif index % 8 == 1:
                validation.append(name)
    (out_dir / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (out_dir / "validation_list.txt").write_text("\n".join(validation) + "\n")


MAX_DIGITS = 7
DIGIT_MANIFEST = "transcripts.tsv"


def make_digit_string(
    digits: list[int], index: int, rng: np.random.Generator, voices: tuple[str, ...] = MANY_VOICES
) -> np.ndarray:
    """`digits` spoken as words by one voice, in groups joined by pauses of 50-400 ms,
    with a random gain and synthetic background noise at 5-30 dB SNR."""
    voice = voices[(index + index // len(voices)) % len(voices)]
    speed = int(rng.integers(120, 221))
    pitch = int(rng.integers(20, 81))
    words = [DIGITS[digit] for digit in digits]
    # Pauses at random places between digits; elsewhere espeak-ng's own connected speech.
    breaks = sorted(set(rng.choice(np.arange(1, len(words)), rng.integers(0, len(words)), replace=False)
                        if len(words) > 1 else []))
    groups = [words[a:b] for a, b in zip([0, *breaks], [*breaks, len(words)])]
    pieces = []
    for number, group in enumerate(groups):
        if number:
            pieces.append(np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), np.float32))
        speech, _ = librosa.effects.trim(synthesize(" ".join(group), voice, speed, pitch), top_db=40)
        pieces.append(speech)
    margins = [np.zeros(int(rng.uniform(0.05, 0.3) * SAMPLE_RATE), np.float32) for _ in range(2)]
    speech = np.concatenate([margins[0], *pieces, margins[1]])
    return in_noise_at_random_level(speech, rng, SNR_DB)


def generate_digit_strings(out_dir: Path, count: int, seed: int = 0) -> None:
    """Writes `count` spoken digit strings (`make_digit_string`) and their manifest to `out_dir`.

    Files are `NNNNN.flac`; `transcripts.tsv` has the columns path, text
    (the digits as words) and split: every 10th string (index 0 modulo 10)
    is test, index 1 modulo 10 validation, the rest train. Lengths 1 to 7
    are equally likely.
    """
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install -y espeak-ng")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, len(WORDS)])
    rows = ["path\ttext\tsplit"]
    for index in range(count):
        digits = rng.integers(0, 10, rng.integers(1, MAX_DIGITS + 1)).tolist()
        name = f"{index:05d}.flac"
        sf.write(out_dir / name, make_digit_string(digits, index, rng), SAMPLE_RATE, subtype="PCM_16")
        split = {0: "test", 1: "validation"}.get(index % 10, "train")
        rows.append(f"{name}\t{' '.join(DIGITS[d] for d in digits)}\t{split}")
    (out_dir / DIGIT_MANIFEST).write_text("\n".join(rows) + "\n")
