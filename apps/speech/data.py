"""Spoken-word data sets, decoded to fixed-length 16 kHz mono waveforms.

Every loader returns a `SpeechData`: the label names, train / validation /
test `AudioSplit`s of `CLIP_SAMPLES`-long float32 waveforms, and background
noise for augmentation. Sources:

- `sample` (default): synthetic words spoken by espeak-ng with background
  noise mixed in, shipped in `apps/speech/sample_clips/` (see
  `apps/speech/make_sample.py`). Synthetic voices, not real speech.
- `speech_commands`: Google Speech Commands v0.02 (35 words, 105,829 clips),
  with its own `validation_list.txt` / `testing_list.txt` split and its
  `_background_noise_` recordings. Decoded fully into memory (about 7 GB as
  float32); use `limit` for a slice.
- `fsdd`: the Free Spoken Digit Dataset; recording indices 0-4 are the test
  split by the data set's own convention.
- a local folder, in either layout: `LABEL/*.wav` (Speech Commands; split by
  its list files when present, else by its hash rule) or flat
  `{label}_{speaker}_{index}.wav` (FSDD; index 0-4 is test). Any format and
  sample rate librosa reads.

Waveforms, noise and clip lengths come from `apps.common.audio`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from apps.common.audio import CLIP_SAMPLES, NOISE_FOLDER, fix_length, is_audio, load_audio, load_noise
from apps.common.errors import InputError

SAMPLE_DIR = Path(__file__).parent / "sample_clips"

SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
# The sha256 TensorFlow Datasets records for this archive.
SPEECH_COMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
# v1.0.9: five speakers, 2,500 recordings. Its sha256 is the one TensorFlow
# Datasets records for this URL (spoken_digit/checksums.tsv); v1.0.10 (a sixth
# speaker) has no published hash.
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz"
FSDD_SHA256 = "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0"

DATA_SETS = ("sample", "speech_commands", "fsdd")
_FLAT_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>.+)_(?P<index>\d+)$")
_MAX_SPEECH_COMMANDS_FILES = 2**27 - 1  # the constant of the data set's own split rule


@dataclass
class AudioSplit:
    """Waveforms `[n, CLIP_SAMPLES]` float32, label ids `[n]` int32 and their files."""

    waveforms: np.ndarray
    labels: np.ndarray
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class SpeechData:
    """A spoken-word data set, split, with optional background noise for augmentation."""

    name: str
    labels: list[str]
    train: AudioSplit
    validation: AudioSplit
    test: AudioSplit
    noise: np.ndarray  # 1-D float32 noise at SAMPLE_RATE, at least CLIP_SAMPLES long


def _decode_split(
    files: list[Path], labels: list[int], root: Path, limit: int | None, seed: int
) -> AudioSplit:
    if limit is not None and len(files) > limit:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(files))[:limit])
        files = [files[i] for i in chosen]
        labels = [labels[i] for i in chosen]
    waveforms = np.zeros((len(files), CLIP_SAMPLES), np.float32)
    for row, path in enumerate(files):
        waveforms[row] = fix_length(load_audio(path))
    return AudioSplit(
        waveforms, np.asarray(labels, np.int32), [str(f.relative_to(root)) for f in files]
    )


def speech_commands_set(
    relative_path: str, validation_percentage=10.0, testing_percentage=10.0
) -> str:
    """The Speech Commands hash rule: which split ("train"/"validation"/"test") a file is in.

    Clips of one speaker (the file name before `_nohash_`) always share a split.
    """
    speaker = re.sub(r"_nohash_.*$", "", Path(relative_path).name)
    digest = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (digest % (_MAX_SPEECH_COMMANDS_FILES + 1)) * (100.0 / _MAX_SPEECH_COMMANDS_FILES)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def _read_list(path: Path) -> set[str] | None:
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def label_folder_files(root: Path) -> tuple[list[str], dict[str, tuple[list[Path], list[int]]]]:
    """The labels of the Speech Commands layout in `root`, and each split's files and label ids.

    The split comes from `validation_list.txt` / `testing_list.txt` in `root`
    when they exist, else from the data set's hash rule (`speech_commands_set`).
    """
    label_dirs = sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(("_", ".")) and any(map(is_audio, d.iterdir()))
    )
    if len(label_dirs) < 2:
        raise InputError(f"{root}: expected at least two LABEL/ folders holding audio files.")
    labels = [d.name for d in label_dirs]
    validation_list = _read_list(root / "validation_list.txt")
    testing_list = _read_list(root / "testing_list.txt")
    split_files: dict[str, tuple[list[Path], list[int]]] = {
        split: ([], []) for split in ("train", "validation", "test")
    }
    for label_id, label_dir in enumerate(label_dirs):
        for path in sorted(filter(is_audio, label_dir.iterdir())):
            relative = f"{label_dir.name}/{path.name}"
            if validation_list is None and testing_list is None:
                split = speech_commands_set(relative)
            elif relative in (testing_list or ()):
                split = "test"
            elif relative in (validation_list or ()):
                split = "validation"
            else:
                split = "train"
            split_files[split][0].append(path)
            split_files[split][1].append(label_id)
    if not split_files["train"][0]:
        raise InputError(f"{root}: no training clips (every file is in a validation or test list).")
    return labels, split_files


def load_label_folders(
    root: Path | str, name: str | None = None, limit: int | None = None, seed: int = 0
) -> SpeechData:
    """Reads the Speech Commands layout: `root/LABEL/*.wav` (any audio format).

    The split is `label_folder_files`'. Audio in `_background_noise_/` becomes
    the augmentation noise (synthetic noise when there is none). `limit` caps
    each split at that many clips (a seeded random choice).
    """
    root = Path(root)
    labels, split_files = label_folder_files(root)
    splits = {
        split: _decode_split(files, ids, root, limit, seed)
        for split, (files, ids) in split_files.items()
    }
    return SpeechData(
        name or str(root),
        labels,
        splits["train"],
        splits["validation"],
        splits["test"],
        load_noise(root / NOISE_FOLDER),
    )


def load_flat_folder(
    root: Path | str,
    name: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    test_speakers: set[str] | None = None,
) -> SpeechData:
    """Reads the FSDD layout: flat `root/{label}_{speaker}_{index}.wav`.

    By the data set's convention recording indices 0-4 are the test split and
    the rest train; with `test_speakers`, those speakers' clips are the test
    split instead (leave-speakers-out). There is no validation split. `limit`
    caps each split at that many clips.
    """
    root = Path(root)
    entries = []
    for path in sorted(filter(is_audio, root.iterdir())):
        match = _FLAT_NAME.match(path.stem)
        if match is None:
            raise InputError(
                f"{path}: expected a name like LABEL_SPEAKER_INDEX.wav (e.g. 7_jackson_12.wav)."
            )
        entries.append((path, match["label"], match["speaker"], int(match["index"])))
    labels = sorted(
        {label for _, label, _, _ in entries}, key=lambda s: (not s.isdigit(), s.zfill(8))
    )
    if len(labels) < 2:
        raise InputError(f"{root}: expected audio files of at least two labels.")
    if test_speakers is not None:
        unknown = test_speakers - {speaker for _, _, speaker, _ in entries}
        if unknown:
            raise InputError(f"{root}: no recordings of speaker(s) {sorted(unknown)}.")
    train: tuple[list[Path], list[int]] = ([], [])
    test: tuple[list[Path], list[int]] = ([], [])
    for path, label, speaker, index in entries:
        is_test = speaker in test_speakers if test_speakers is not None else index < 5
        target = test if is_test else train
        target[0].append(path)
        target[1].append(labels.index(label))
    if not train[0] or not test[0]:
        raise InputError(f"{root}: the split leaves no training or no test recordings.")
    empty = AudioSplit(np.zeros((0, CLIP_SAMPLES), np.float32), np.zeros(0, np.int32), [])
    return SpeechData(
        name or str(root),
        labels,
        _decode_split(*train, root, limit, seed),
        empty,
        _decode_split(*test, root, limit, seed),
        load_noise(root / NOISE_FOLDER),
    )


def load_directory(
    path: Path | str, name: str | None = None, limit: int | None = None, seed: int = 0
) -> SpeechData:
    """Reads a local folder in the Speech Commands or the FSDD layout (detected)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (and not one of {', '.join(DATA_SETS)}).")
    if any(is_audio(p) for p in path.iterdir()):
        return load_flat_folder(path, name, limit, seed)
    return load_label_folders(path, name, limit, seed)


def load_speech_commands(limit: int | None = None, seed: int = 0) -> SpeechData:
    """Downloads (once, cached) and reads Google Speech Commands v0.02."""
    archive = keras.utils.get_file(
        "speech_commands_v0.02.tar.gz",
        SPEECH_COMMANDS_URL,
        file_hash=SPEECH_COMMANDS_SHA256,
        cache_subdir="gru_suite",
        extract=True,
    )
    # With `extract=True`, get_file returns the folder it extracted into.
    return load_label_folders(archive, "speech_commands", limit, seed)


def load_fsdd(limit: int | None = None, seed: int = 0) -> SpeechData:
    """Downloads (once, cached, checked) and reads the Free Spoken Digit Dataset v1.0.9."""
    extracted = Path(
        keras.utils.get_file(
            "fsdd_v1_0_9.tar.gz",
            FSDD_URL,
            file_hash=FSDD_SHA256,
            cache_subdir="gru_suite",
            extract=True,
        )
    )
    matches = sorted(extracted.glob("**/recordings"))
    if not matches:
        raise InputError(f"{extracted}: the FSDD archive has no recordings/ folder.")
    return load_flat_folder(matches[0], "fsdd", limit, seed)


def load_data(data: str, limit: int | None = None, seed: int = 0) -> SpeechData:
    """`sample`, `speech_commands`, `fsdd` or a local folder path."""
    if data == "sample":
        return load_label_folders(SAMPLE_DIR, "sample", limit, seed)
    if data == "speech_commands":
        return load_speech_commands(limit, seed)
    if data == "fsdd":
        return load_fsdd(limit, seed)
    return load_directory(data, None, limit, seed)
