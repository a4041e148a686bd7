"""Transcribed speech from disk and from downloads: manifests, local folders, LJ Speech, LibriSpeech.

`load_transcribed_folder` reads a local folder or manifest (see its doc);
`load_ljspeech` and `load_librispeech` download, check and cache the two
corpora with `keras.utils.get_file`, then read them like a local folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

from apps.common.audio import NOISE_FOLDER, is_audio
from apps.common.errors import InputError
from apps.transcriber.data import TranscriptionData, hashed_split, split_utterances

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
                if not is_audio(audio):
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
        if is_audio(path)
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
        if not is_audio(clip):
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
            if not is_audio(clip):
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
