"""Transcribed speech: utterances of any length with their text, for the transcriber.

They come as a `TranscriptionData`: train / validation / test
`TranscribedSplit`s of 16 kHz waveforms and transcripts normalized to
`ALPHABET`, and this module splits and decodes them. Sources
(`apps.transcriber.datasets.load_transcription_data` names them all;
`apps.transcriber.readers` reads the files and downloads):

- `digits` (default) and `digits-espeak`: spoken digit strings
  (`apps.transcriber.digit_strings`). Synthetic voices.
- `ljspeech`: LJ Speech 1.1 (one reader, 13,100 clips, about 24 hours); it
  has no split of its own, so a hash of the clip id decides it.
- `librispeech:SUBSET`: one LibriSpeech subset (`dev-clean`,
  `train-clean-100`, ...); split by a hash of the speaker, so no speaker is
  in two splits.
- a local folder: a `.txt` transcript beside each clip, or a TSV/CSV manifest
  of `path,text[,split]` (also given as the PATH itself), or an extracted
  LJ Speech or LibriSpeech folder. Split by `train/`, `validation/` (`valid/`,
  `dev/`) and `test/` subfolders, else the manifest's split column, else a
  hash of the clip's path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.common.audio import NOISE_FOLDER, load_audio, load_noise
from apps.common.errors import InputError

# The transcriber's characters. Text is normalized into them by
# `normalize_transcript`; CTC's blank is one more class after them.
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NOT_IN_ALPHABET = re.compile(r"[^ 'a-z]+")


def normalize_transcript(text: str) -> str:
    """The one normalization of every transcript: lower case, `ALPHABET` only.

    Accents are dropped (NFKD, then ASCII), each digit becomes its word
    ("42" -> "four two"), every other character outside `ALPHABET` (hyphens,
    punctuation) becomes a space, and runs of spaces become one, trimmed.
    """
    import unicodedata

    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"\d", lambda digit: f" {DIGIT_WORDS[int(digit[0])]} ", text)
    return " ".join(_NOT_IN_ALPHABET.sub(" ", text).split())


@dataclass
class TranscribedSplit:
    """Utterances (1-D float32 waveforms at `SAMPLE_RATE`, any length), their
    normalized transcripts and the files they came from."""

    waveforms: list[np.ndarray]
    transcripts: list[str]
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.transcripts)

    def subset(self, indices) -> "TranscribedSplit":
        indices = list(indices)
        return TranscribedSplit(
            [self.waveforms[i] for i in indices],
            [self.transcripts[i] for i in indices],
            [self.files[i] for i in indices] if self.files else [],
        )


@dataclass
class TranscriptionData:
    """A transcribed-speech data set, split, with background noise for augmentation."""

    name: str
    train: TranscribedSplit
    validation: TranscribedSplit
    test: TranscribedSplit
    noise: np.ndarray  # 1-D float32 noise at SAMPLE_RATE, at least CLIP_SAMPLES long


def hashed_split(name: str, held_out_percentage: float = 10.0) -> str:
    """"train", "validation" or "test" for a file of a data set without a split of its own.

    Decided by a hash of `name` (the file's path in its data set), so a file
    keeps its split when others are added: `held_out_percentage` each for
    validation and test.
    """
    percentage = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10_000 / 100.0
    if percentage < held_out_percentage:
        return "validation"
    if percentage < 2 * held_out_percentage:
        return "test"
    return "train"


def _decode_utterances(
    entries: list[tuple[Path, str]], root: Path, limit: int | None, seed: int
) -> TranscribedSplit:
    if limit is not None and len(entries) > limit:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(entries))[:limit])
        entries = [entries[i] for i in chosen]
    waveforms, transcripts, files = [], [], []
    for path, text in entries:
        transcript = normalize_transcript(text)
        if not transcript:
            raise InputError(f"{path}: its transcript {text!r} has no letters or digits.")
        waveforms.append(load_audio(path))
        transcripts.append(transcript)
        files.append(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
    return TranscribedSplit(waveforms, transcripts, files)


def split_utterances(
    entries: list[tuple[Path, str, str]], root: Path, name: str, limit: int | None, seed: int,
    noise: np.ndarray | None = None,
) -> TranscriptionData:
    """`(audio path, transcript, split)` entries -> decoded `TranscriptionData`.

    `limit` caps each split at that many utterances (a seeded random choice).
    """
    by_split: dict[str, list[tuple[Path, str]]] = {"train": [], "validation": [], "test": []}
    for path, text, split in entries:
        by_split[split].append((path, text))
    if not by_split["train"]:
        raise InputError(f"{root}: no training utterances.")
    if not by_split["test"]:
        raise InputError(f"{root}: no test utterances.")
    splits = {split: _decode_utterances(items, root, limit, seed) for split, items in by_split.items()}
    if noise is None:
        noise = load_noise(root / NOISE_FOLDER)
    return TranscriptionData(name, splits["train"], splits["validation"], splits["test"], noise)
