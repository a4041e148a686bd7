"""Connected digit strings, made by joining recordings of single spoken digits.

One recipe serves every digit-string set: each string is 1-7 recordings of
one speaker, trimmed of their silence, optionally sped up or slowed down,
joined by pauses, scaled to a random peak and mixed with synthetic noise;
its transcript is the digit words ("four two seven").

- `load_digits` (the transcriber's default `digits` set) joins the digit
  clips shipped in `apps/speech/sample_clips/`, so it needs nothing beyond
  the package and is made in memory in seconds. Each split joins only that
  split's clips (the sample's own test and validation lists), so no test
  string holds a recording heard in training.
- `benchmarks/transcription_quality.py` joins Free Spoken Digit recordings
  the same way (`make_digit_strings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.common.audio import SAMPLE_RATE, in_noise_at_random_level, load_audio, synthetic_noise_bed
from apps.common.errors import InputError
from apps.common.files import publishable_folder
from apps.speech.data import SAMPLE_DIR, label_folder_files
from apps.speech.synthesis import DIGIT_MANIFEST, generate_digit_strings
from apps.transcriber.data import DIGIT_WORDS, TranscribedSplit, TranscriptionData, split_utterances
from apps.transcriber.readers import read_manifest

DIGIT_STRINGS = 2000  # strings in `digits` when no count is given
DIGITS_PER_STRING = (1, 7)
HELD_OUT_EVERY = 10  # 1 string in 10 is a test string, 1 in 10 a validation string
# Silence is what lies this far below a shipped clip's peak: tighter than
# librosa's 60 dB default, since each clip carries noise of its own.
SAMPLE_TRIM_DB = 20


@dataclass(frozen=True)
class DigitClip:
    """One recording of one spoken digit, trimmed of its silence, at `SAMPLE_RATE`."""

    name: str
    speaker: str
    digit: int
    audio: np.ndarray


@dataclass(frozen=True)
class StringRecipe:
    """How `join_clips` joins recordings: ranges that each string draws from."""

    pause_seconds: tuple[float, float]  # between recordings, and before and after
    snr_db: tuple[float, float]  # of the noise mixed in
    digits: tuple[int, int]  # recordings per string
    speed: tuple[float, float] | None = None  # each recording's speed factor (pitch moves with it)


# The shipped clips are single words in 8 synthetic voices, so the default set
# varies them further: speed (with pitch) by up to 15%, pauses from a 120 ms
# overlap (words running together, as in connected speech) to 250 ms, and
# noise at 10-30 dB SNR over the clips' own.
SAMPLE_RECIPE = StringRecipe(pause_seconds=(-0.12, 0.25), snr_db=(10.0, 30.0), digits=DIGITS_PER_STRING,
                             speed=(0.85, 1.15))


def trimmed(audio: np.ndarray, top_db: float) -> np.ndarray:
    """`audio` without its leading and trailing silence (what lies `top_db` below its peak)."""
    import librosa

    return librosa.effects.trim(audio, top_db=top_db)[0]


def join_clips(clips: list[np.ndarray], rng: np.random.Generator, recipe: StringRecipe) -> np.ndarray:
    """`clips` joined by pauses, at a random peak level, with noise mixed in (all drawn from `rng`).

    A negative pause between two clips overlaps them by that much, as words
    run together in connected speech; before the first clip and after the
    last, a negative pause is none.
    """
    import librosa

    def pause() -> int:
        return int(rng.uniform(*recipe.pause_seconds) * SAMPLE_RATE)

    starts, placed = [], []
    position = max(pause(), 0)
    for clip in clips:
        if recipe.speed is not None:
            # Played faster by `factor`: the same sound in fewer samples.
            factor = rng.uniform(*recipe.speed)
            clip = librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=round(SAMPLE_RATE / factor))
        starts.append(max(position, starts[-1] if starts else 0))
        placed.append(clip)
        position = starts[-1] + len(clip) + pause()
    end = max(start + len(clip) for start, clip in zip(starts, placed))
    speech = np.zeros(max(position, end), np.float32)
    for start, clip in zip(starts, placed):
        speech[start:start + len(clip)] += clip
    return in_noise_at_random_level(speech, rng, recipe.snr_db)


def make_digit_strings(
    pool: list[DigitClip], count: int, rng: np.random.Generator, recipe: StringRecipe
) -> TranscribedSplit:
    """`count` strings of one speaker each from `pool`; `files` names their recordings, joined by +.

    Each string picks a speaker, then random digits, then one of that
    speaker's recordings of each digit. Every speaker needs a recording of
    every digit.
    """
    by_speaker_digit: dict[tuple[str, int], list[DigitClip]] = {}
    for clip in pool:
        by_speaker_digit.setdefault((clip.speaker, clip.digit), []).append(clip)
    speakers = sorted({speaker for speaker, _ in by_speaker_digit})
    missing = [(s, d) for s in speakers for d in range(10) if (s, d) not in by_speaker_digit]
    if missing:
        speaker, digit = missing[0]
        raise ValueError(f"speaker {speaker!r} has no recording of {DIGIT_WORDS[digit]}")
    waveforms, transcripts, files = [], [], []
    for _ in range(count):
        speaker = speakers[rng.integers(len(speakers))]
        digits = rng.integers(0, 10, rng.integers(recipe.digits[0], recipe.digits[1] + 1))
        chosen = []
        for digit in digits:
            choices = by_speaker_digit[(speaker, int(digit))]
            chosen.append(choices[rng.integers(len(choices))])
        waveforms.append(join_clips([clip.audio for clip in chosen], rng, recipe))
        transcripts.append(" ".join(DIGIT_WORDS[digit] for digit in digits))
        files.append("+".join(clip.name for clip in chosen))
    return TranscribedSplit(waveforms, transcripts, files)


def sample_voice(clip_index: int, voices: int = 8) -> str:
    """The voice that spoke the sample's clip `WORD_NN` (`apps.speech.synthesis.make_clip`'s rotation)."""
    return f"voice{(clip_index + clip_index // voices) % voices}"


def sample_digit_clips() -> dict[str, list[DigitClip]]:
    """The shipped digit clips of each split of the word sample, trimmed, by their voices."""
    labels, split_files = label_folder_files(SAMPLE_DIR)
    return {
        split: [
            DigitClip(path.relative_to(SAMPLE_DIR).as_posix(), sample_voice(int(path.stem.rsplit("_", 1)[1])),
                      DIGIT_WORDS.index(labels[label]), trimmed(load_audio(path), SAMPLE_TRIM_DB))
            for path, label in zip(paths, label_ids)
            if labels[label] in DIGIT_WORDS
        ]
        for split, (paths, label_ids) in split_files.items()
    }


def _check_count(name: str, count: int) -> None:
    if count < 3:
        raise InputError(f"{name}:{count}: too few strings for a train, a validation and a test split "
                         "(take at least 3).")


def load_digits(count: int = DIGIT_STRINGS, limit: int | None = None, seed: int = 0) -> TranscriptionData:
    """The offline `digits` set: `count` digit strings joined from the shipped clips.

    One string in `HELD_OUT_EVERY` is a test string and one a validation
    string (at least one each), each joined from that split's clips only;
    the rest are training strings. The same `count` and `seed` give the same
    strings. `limit` caps each split. The voices are synthetic (espeak-ng's).
    """
    _check_count("digits", count)
    held_out = max(1, count // HELD_OUT_EVERY)
    sizes = {"train": count - 2 * held_out, "validation": held_out, "test": held_out}
    pools = sample_digit_clips()
    splits = {}
    for number, (name, size) in enumerate(sizes.items()):
        size = size if limit is None else min(size, limit)
        splits[name] = make_digit_strings(pools[name], size, np.random.default_rng([seed, count, number]),
                                          SAMPLE_RECIPE)
    return TranscriptionData("digits", splits["train"], splits["validation"], splits["test"],
                             synthetic_noise_bed())


ESPEAK_DIGITS_VERSION = 1  # bump when the generator changes, so caches are remade


def espeak_digits_folder(count: int = DIGIT_STRINGS, seed: int = 0) -> Path:
    """Where `load_espeak_digits` keeps its set: the Keras cache (`KERAS_HOME`, else ~/.keras)."""
    import os

    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    return home / "datasets" / "gru_suite" / f"digits-v{ESPEAK_DIGITS_VERSION}-{count}-seed{seed}"


def load_espeak_digits(
    count: int = DIGIT_STRINGS, limit: int | None = None, seed: int = 0, folder: Path | None = None
) -> TranscriptionData:
    """The `digits-espeak` set: `count` digit strings spoken by espeak-ng, in 273 voices.

    Larger and more varied than `digits`: each string is synthesized whole,
    in connected speech broken by pauses at random places. Generated on
    first use (`apps.speech.synthesis.generate_digit_strings`, about 30 s
    and 45 MB per 1,000 strings) into `folder` (default
    `espeak_digits_folder`) and read from there afterwards. Needs
    `espeak-ng` (a Debian package) only to generate.
    """
    import shutil
    import sys

    _check_count("digits-espeak", count)
    folder = Path(folder) if folder is not None else espeak_digits_folder(count, seed)
    manifest = folder / DIGIT_MANIFEST
    if not manifest.is_file():
        if shutil.which("espeak-ng") is None:
            raise InputError(
                "the digits-espeak data set is made with espeak-ng on first use, and espeak-ng is not "
                "installed (apt-get install -y espeak-ng; the default digits set needs nothing)."
            )
        print(f"Making the digits-espeak data set once: {count} spoken digit strings with espeak-ng "
              f"into {folder} (about {count * 0.045:.0f} MB) ...", file=sys.stderr, flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = publishable_folder(folder.parent, prefix=f".{folder.name}-")
        try:
            generate_digit_strings(partial, count, seed)
            try:
                partial.rename(folder)
            except OSError:
                # Another process made it meanwhile: use that one.
                if not manifest.is_file():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return split_utterances(read_manifest(manifest), folder, "digits-espeak", limit, seed)
