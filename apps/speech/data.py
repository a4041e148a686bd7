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

Transcribed speech (utterances of any length with their text, for the
transcriber) comes as a `TranscriptionData`: train / validation / test
`TranscribedSplit`s of 16 kHz waveforms and transcripts normalized to
`ALPHABET`. Sources (`apps.speech.transcription_sets.load_transcription_data`
names them all):

- `digits` (default) and `digits-espeak`: spoken digit strings
  (`apps.speech.digit_strings`). Synthetic voices.
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from apps.common.errors import InputError

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second
SAMPLE_DIR = Path(__file__).parent / "sample_clips"
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".m4a"})
NOISE_FOLDER = "_background_noise_"

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


def load_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decodes any file librosa reads into a 1-D float32 waveform at `sample_rate`, mono.

    Raises:
        InputError: naming the file, if it is missing, cannot be decoded,
            holds no samples or holds non-finite samples.
    """
    import librosa

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread for formats
            # soundfile does not read; the fallback's failure is reported below.
            warnings.simplefilter("ignore")
            audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # soundfile, audioread and resampling raise many types
        detail = str(error).strip() or type(error).__name__
        raise InputError(f"{path}: not a readable audio file ({detail}).") from None
    if audio.size == 0:
        raise InputError(f"{path}: the audio file holds no samples.")
    if not np.all(np.isfinite(audio)):
        raise InputError(f"{path}: the audio holds NaN or infinite samples.")
    return audio.astype(np.float32, copy=False)


def fix_length(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Pads or trims a 1-D waveform to `length` samples.

    A shorter waveform is centred between zeros; a longer one keeps its
    loudest window (the one with the most energy, the first on ties), so a
    word inside a long recording is kept. `apps.speech.model.fix_length` does
    the same inside the serving graph.
    """
    size = audio.shape[0]
    if size < length:
        left = (length - size) // 2
        return np.pad(audio, (left, length - size - left)).astype(np.float32)
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return audio[start : start + length].astype(np.float32)


def synthetic_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise or mains hum (chosen by `rng`), unit peak, float32."""
    kind = rng.integers(4)
    if kind == 3:
        time = np.arange(size) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        noise = sum(
            np.sin(2 * np.pi * base * k * time + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6)
        )
        noise = noise + 0.1 * rng.standard_normal(size)
    else:
        # White (0), pink (1) and brown (2) noise: power falling as 1/f^kind.
        spectrum = np.fft.rfft(rng.standard_normal(size))
        frequencies = np.maximum(np.fft.rfftfreq(size), 1.0 / size)
        noise = np.fft.irfft(spectrum / frequencies ** (kind / 2), n=size)
    return (noise / max(np.abs(noise).max(), 1e-9)).astype(np.float32)


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


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS


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


def synthetic_noise_bed() -> np.ndarray:
    """The augmentation noise of a data set without noise recordings: 40 s of `synthetic_noise`,
    5 s of each of eight seeded draws."""
    return np.concatenate(
        [synthetic_noise(5 * CLIP_SAMPLES, np.random.default_rng(kind)) for kind in range(8)]
    )


def _load_noise(folder: Path) -> np.ndarray:
    """The audio in `folder` joined end to end, or `synthetic_noise_bed` when there is none."""
    paths = sorted(filter(_is_audio, folder.iterdir())) if folder.is_dir() else []
    clips = [load_audio(path) for path in paths]
    noise = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    return noise if noise.size >= CLIP_SAMPLES else synthetic_noise_bed()


def load_label_folders(
    root: Path | str, name: str | None = None, limit: int | None = None, seed: int = 0
) -> SpeechData:
    """Reads the Speech Commands layout: `root/LABEL/*.wav` (any audio format).

    The split comes from `validation_list.txt` / `testing_list.txt` in `root`
    when they exist, else from the data set's hash rule
    (`speech_commands_set`). Audio in `_background_noise_/` becomes the
    augmentation noise (synthetic noise when there is none). `limit` caps each
    split at that many clips (a seeded random choice).
    """
    root = Path(root)
    label_dirs = sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(("_", ".")) and any(map(_is_audio, d.iterdir()))
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
        for path in sorted(filter(_is_audio, label_dir.iterdir())):
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
        _load_noise(root / NOISE_FOLDER),
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
    for path in sorted(filter(_is_audio, root.iterdir())):
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
        _load_noise(root / NOISE_FOLDER),
    )


def load_directory(
    path: Path | str, name: str | None = None, limit: int | None = None, seed: int = 0
) -> SpeechData:
    """Reads a local folder in the Speech Commands or the FSDD layout (detected)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (and not one of {', '.join(DATA_SETS)}).")
    if any(_is_audio(p) for p in path.iterdir()):
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


# ----------------------------------------------------------------------------
# Transcribed speech: utterances of any length with their text
# ----------------------------------------------------------------------------

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
        noise = _load_noise(root / NOISE_FOLDER)
    return TranscriptionData(name, splits["train"], splits["validation"], splits["test"], noise)


MANIFEST_SPLITS = ("train", "validation", "test")


def read_manifest(path: Path | str) -> list[tuple[Path, str, str]]:
    """A TSV or CSV manifest -> `(audio path, transcript, split)` entries.

    The header names the columns `path` and `text` (and, optionally,
    `split`: train, validation or test); paths are relative to the
    manifest's folder. Without a `split` column the split is `hashed_split`'s.
    A TSV is read unquoted (a `"` is text); a CSV may quote its fields.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    tsv = path.suffix.lower() == ".tsv"
    entries = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(
            handle,
            delimiter="\t" if tsv else ",",
            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
        )
        try:
            missing = {"path", "text"} - set(reader.fieldnames or ())
            if missing:
                raise InputError(
                    f"{path}: a manifest needs a header with the columns path and text "
                    f"(missing: {', '.join(sorted(missing))})."
                )
            for row in reader:
                line = reader.line_num
                relative = (row["path"] or "").strip()
                split = (row.get("split") or "").strip() or hashed_split(relative)
                if split not in MANIFEST_SPLITS:
                    raise InputError(
                        f"{path}, line {line}: split {split!r} is not one of "
                        f"{', '.join(MANIFEST_SPLITS)}."
                    )
                audio = path.parent / relative
                if not _is_audio(audio):
                    raise InputError(f"{path}, line {line}: {audio} is not an audio file.")
                entries.append((audio, row["text"] or "", split))
        except UnicodeDecodeError as error:
            raise _not_utf8(path, error) from None
        except csv.Error as error:
            raise InputError(f"{path}, line {reader.line_num}: {error}.") from None
    return entries


SPLIT_FOLDERS = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
MANIFEST_SUFFIXES = (".tsv", ".csv")


def _not_utf8(path: Path, error: UnicodeDecodeError) -> InputError:
    return InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}).")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None


def _find_manifest(root: Path) -> Path | None:
    """`manifest.tsv`, `manifest.csv` or the one `*.tsv` / `*.csv` file in `root`, if any."""
    for name in ("manifest.tsv", "manifest.csv"):
        if (root / name).is_file():
            return root / name
    tables = sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES
    )
    if len(tables) > 1:
        raise InputError(
            f"{root}: several manifests ({', '.join(p.name for p in tables)}); give one as the "
            "PATH, or name one manifest.tsv."
        )
    return tables[0] if tables else None


def _clips_with_transcripts(root: Path) -> list[tuple[Path, str, str]]:
    """The `.txt`-beside layout of `load_transcribed_folder` -> `(clip, transcript, split)`."""
    clips = sorted(
        path
        for path in root.rglob("*")
        if _is_audio(path)
        and not any(p.startswith(".") or p == NOISE_FOLDER for p in path.relative_to(root).parts)
    )
    if not clips:
        raise InputError(f"{root}: no audio files (and no manifest).")
    relatives = [clip.relative_to(root) for clip in clips]
    tops = [rel.parts[0].lower() if len(rel.parts) > 1 else "" for rel in relatives]
    split_folders = sorted(set(tops) & SPLIT_FOLDERS.keys())
    entries = []
    for clip, relative, top in zip(clips, relatives, tops):
        transcript = clip.with_suffix(".txt")
        if not transcript.is_file():
            raise InputError(f"{clip}: no transcript {transcript.name} beside it.")
        if not split_folders:
            split = hashed_split(relative.as_posix())
        elif top in SPLIT_FOLDERS:
            split = SPLIT_FOLDERS[top]
        else:
            raise InputError(
                f"{clip}: not in a split folder ({', '.join(split_folders)}) as the other "
                "clips are."
            )
        entries.append((clip, _read_text(transcript), split))
    return entries


def load_transcribed_folder(
    root: Path | str, name: str | None = None, limit: int | None = None, seed: int = 0
) -> TranscriptionData:
    """Reads local clips with their transcripts: a folder, or a manifest file.

    The transcripts come from the first of: the PATH itself, when it is a
    `.tsv` / `.csv` manifest (`read_manifest`); an extracted LJ Speech
    (`read_ljspeech`) or LibriSpeech (`read_librispeech`) folder; a manifest
    in the folder (`manifest.tsv`, `manifest.csv`, or its one `*.tsv` /
    `*.csv`); else a `.txt` beside each clip (same stem, any subfolder). A
    manifest's split is its own; `.txt`-beside clips in `train/`,
    `validation/` (`valid/`, `dev/`) and `test/` subfolders are in those
    splits, else in `hashed_split`'s of their path in `root`. Audio in
    `_background_noise_/` is the augmentation noise. `limit` caps each split.
    """
    root = Path(root)
    name = name or str(root)
    if root.is_file():
        if root.suffix.lower() not in MANIFEST_SUFFIXES:
            raise InputError(f"{root}: not a folder, and not a .tsv or .csv manifest.")
        return split_utterances(read_manifest(root), root.parent, name, limit, seed)
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder.")
    if _ljspeech_folder(root) is not None:
        return read_ljspeech(root, limit, seed, name=name)
    if next(root.rglob("*.trans.txt"), None) is not None:
        return read_librispeech(root, limit, seed, name=name)
    manifest = _find_manifest(root)
    entries = read_manifest(manifest) if manifest else _clips_with_transcripts(root)
    return split_utterances(entries, root, name, limit, seed)


# LJ Speech 1.1. The sha256 is the one TensorFlow Datasets records for this URL
# (tensorflow_datasets/url_checksums/ljspeech.txt); torchaudio's LJSPEECH checks the same.
LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
LJSPEECH_FOLDER = "LJSpeech-1.1"


def _ljspeech_folder(root: Path) -> Path | None:
    """`root` or `root/LJSpeech-1.1`, whichever holds `wavs/` and a `metadata.csv` of
    `|`-separated lines (a `path,text` manifest of that name is not one)."""
    for folder in (root, root / LJSPEECH_FOLDER):
        metadata = folder / "metadata.csv"
        if metadata.is_file() and (folder / "wavs").is_dir():
            with metadata.open(encoding="utf-8", errors="replace") as handle:
                if "|" in handle.readline():
                    return folder
    return None


def read_ljspeech(
    root: Path | str, limit: int | None = None, seed: int = 0, name: str = "ljspeech"
) -> TranscriptionData:
    """Reads extracted LJ Speech 1.1: `metadata.csv` and `wavs/{id}.wav`, in `root` or
    `root/LJSpeech-1.1`.

    Each `metadata.csv` line is `id|transcription|normalized transcription`
    (no header, no quoting); the normalized one, numbers and abbreviations
    spelled out, is used (the transcription, in sets of this format with two
    columns only). The data set has no split of its own: `hashed_split`
    of the id decides. One reader, so every split has the same voice. The
    22,050 Hz clips are resampled to 16 kHz; all 13,100 take about 5.5 GB as
    float32, so `limit` (a cap on each split) makes a slice.
    """
    root = Path(root)
    folder = _ljspeech_folder(root)
    if folder is None:
        raise InputError(
            f"{root}: no LJ Speech metadata.csv and wavs/ folder (in it or in {LJSPEECH_FOLDER}/)."
        )
    metadata = folder / "metadata.csv"
    entries = []
    for number, line in enumerate(_read_text(metadata).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (2, 3):
            raise InputError(
                f"{metadata}, line {number}: expected id|transcription|normalized "
                f"transcription (3 |-separated columns, or 2), found {len(fields)} columns."
            )
        clip_id = fields[0].strip()
        clip = folder / "wavs" / f"{clip_id}.wav"
        if not _is_audio(clip):
            raise InputError(f"{metadata}, line {number}: {clip} is not an audio file.")
        entries.append((clip, fields[-1], hashed_split(clip_id)))
    return split_utterances(entries, folder, name, limit, seed)


def load_ljspeech(limit: int | None = None, seed: int = 0) -> TranscriptionData:
    """Downloads (once, cached, checked; 2.6 GB) and reads LJ Speech 1.1 (`read_ljspeech`)."""
    extracted = keras.utils.get_file(
        "LJSpeech-1.1.tar.bz2",
        LJSPEECH_URL,
        file_hash=LJSPEECH_SHA256,
        cache_subdir="gru_suite",
        extract=True,
    )
    return read_ljspeech(extracted, limit, seed)


# LibriSpeech (OpenSLR 12). The sha256s are the ones TensorFlow Datasets records
# for these archives (tensorflow_datasets/url_checksums/librispeech.txt); torchaudio's
# LIBRISPEECH checks the same.
LIBRISPEECH_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
_LIBRISPEECH_ID = re.compile(r"^(?P<speaker>\d+)-(?P<chapter>\d+)-\d+$")


def read_librispeech(
    root: Path | str, limit: int | None = None, seed: int = 0, name: str = "librispeech"
) -> TranscriptionData:
    """Reads extracted LibriSpeech: each `SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`
    under `root` (lines `SPEAKER-CHAPTER-NNNN TEXT`, upper case) and the
    `SPEAKER-CHAPTER-NNNN.flac` files beside it.

    LibriSpeech's dev-* and test-* subsets are its held-out sets and train-*
    its training sets, each with speakers of its own; whichever subsets are
    under `root` are split here by speaker: `hashed_split` of the speaker id
    decides, so no speaker is in two splits. `limit` caps each split (a
    subset's audio is 5 to 500 hours, about 0.23 GB an hour as float32).
    """
    root = Path(root)
    transcript_files = sorted(root.rglob("*.trans.txt"))
    if not transcript_files:
        raise InputError(f"{root}: no LibriSpeech SPEAKER-CHAPTER.trans.txt files under it.")
    entries = []
    for transcripts in transcript_files:
        for number, line in enumerate(_read_text(transcripts).split("\n"), 1):
            utterance, _, text = line.strip().partition(" ")
            if not utterance:
                continue
            match = _LIBRISPEECH_ID.match(utterance)
            if match is None or not text.strip():
                raise InputError(
                    f"{transcripts}, line {number}: expected SPEAKER-CHAPTER-NNNN and the text, "
                    f"found {line.strip()[:60]!r}."
                )
            clip = transcripts.parent / f"{utterance}.flac"
            if not _is_audio(clip):
                raise InputError(f"{transcripts}, line {number}: {clip} is not an audio file.")
            entries.append((clip, text, hashed_split(match["speaker"])))
    return split_utterances(entries, root, name, limit, seed)


def load_librispeech(subset: str, limit: int | None = None, seed: int = 0) -> TranscriptionData:
    """Downloads (once, cached, checked) and reads one LibriSpeech subset (`read_librispeech`)."""
    if subset not in LIBRISPEECH_SHA256:
        raise InputError(
            f"unknown LibriSpeech subset {subset!r} (known: {', '.join(LIBRISPEECH_SHA256)})."
        )
    extracted = keras.utils.get_file(
        f"{subset}.tar.gz",
        LIBRISPEECH_URL.format(subset=subset),
        file_hash=LIBRISPEECH_SHA256[subset],
        cache_subdir="gru_suite",
        extract=True,
    )
    return read_librispeech(extracted, limit, seed, name=f"librispeech:{subset}")
