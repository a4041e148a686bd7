"""Parallel corpora for translation.

`--data` names one of:

- `sample` (default): synthetic English -> Spanish pairs from the grammar in
  `apps.translation.grammar` (offline, deterministic).
- `anki:LANG`: English -> LANG sentence pairs from Tatoeba, as packaged by
  manythings.org/anki (`english<TAB>other[<TAB>attribution]`); `anki:spa` is
  the copy TensorFlow's NMT tutorial downloads.
- `multi30k`: Multi30k (WMT16 multimodal task 1) German -> English.
- `PATH`: a tab-separated pairs file (`source<TAB>target` per line).
- `SOURCE,TARGET`: two line-aligned files.

Every loader returns `(train, validation)`; `evaluation_pairs` returns what
`evaluate` scores. `--reverse` swaps the two sides of any of them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import keras

from apps.common.errors import InputError
from apps.common.seq2seq.pairs import (
    TextPairs,
    read_aligned_files,
    read_tab_separated,
    split_pairs,
)
from apps.translation.grammar import generate_pairs

SAMPLE_SIZE = 12000
SAMPLE_VALIDATION = 1200
HELD_OUT_FRACTION = 0.1
# Named data sets without their own validation split hold out the same pairs
# in training and evaluation.
SPLIT_SEED = 0

TENSORFLOW_SPA_ENG = "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"
MANYTHINGS_ANKI = "https://www.manythings.org/anki/{language}-eng.zip"
MULTI30K_RAW = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{name}.gz"


def sample_pairs() -> tuple[TextPairs, TextPairs]:
    """The synthetic grammar corpus, split into training and validation pairs."""
    pairs = generate_pairs(SAMPLE_SIZE, seed=0)
    english = [english for english, _ in pairs]
    spanish = [spanish for _, spanish in pairs]
    cut = SAMPLE_SIZE - SAMPLE_VALIDATION
    return TextPairs(english[:cut], spanish[:cut]), TextPairs(english[cut:], spanish[cut:])


def read_anki_file(path: Path | str) -> TextPairs:
    """English -> other pairs from an Anki/Tatoeba `english<TAB>other[<TAB>attribution]` file."""
    return read_tab_separated(path)


def download_anki(language: str) -> Path:
    """Downloads (once) and extracts the Anki pairs of `language`; returns its `.txt` file."""
    if not language.isalpha():
        raise InputError(f"anki:{language}: expected a language code such as anki:spa.")
    # No published checksums for these archives, so none is checked.
    if language == "spa":
        origin, fname = TENSORFLOW_SPA_ENG, "spa-eng.zip"
    else:
        origin, fname = MANYTHINGS_ANKI.format(language=language), f"{language}-eng.zip"
    folder = Path(keras.utils.get_file(fname, origin, cache_subdir="gru_suite", extract=True))
    matches = sorted(folder.rglob(f"{language}.txt"))
    if not matches:
        raise InputError(f"{folder}: the archive {fname} holds no {language}.txt.")
    return matches[0]


def read_multi30k(folder: Path | str, split: str) -> TextPairs:
    """German -> English pairs of a Multi30k split: `split.de` / `split.en`, plain or `.gz`."""
    folder = Path(folder)
    paths = []
    for language in ("de", "en"):
        plain = folder / f"{split}.{language}"
        packed = plain.with_name(plain.name + ".gz")
        if not plain.exists() and packed.exists():
            # Decompressed once beside the download, then read like the plain files.
            plain.write_bytes(gzip.decompress(packed.read_bytes()))
        paths.append(plain)
    return read_aligned_files(*paths)


def download_multi30k() -> Path:
    """Downloads (once) the raw Multi30k task-1 train/val files; returns their folder."""
    # The repository publishes no checksums for these files, so none is checked.
    for split in ("train", "val"):
        for language in ("de", "en"):
            name = f"{split}.{language}.gz"
            path = keras.utils.get_file(
                name, MULTI30K_RAW.format(name=f"{split}.{language}"),
                cache_subdir="gru_suite/multi30k",
            )
    return Path(path).parent


def _local_pairs(spec: str) -> TextPairs:
    if "," in spec:
        source, target = spec.split(",", 1)
        return read_aligned_files(source, target)
    path = Path(spec)
    if not path.exists():
        raise InputError(
            f"{spec}: no such file, and not one of sample, anki:LANG, multi30k."
        )
    return read_tab_separated(path)


def load_splits(spec: str, reverse: bool = False) -> tuple[TextPairs, TextPairs]:
    """`(train, validation)` pairs of the data set named by `spec` (see the module doc)."""
    if spec == "sample":
        train, validation = sample_pairs()
    elif spec == "multi30k":
        folder = download_multi30k()
        train, validation = read_multi30k(folder, "train"), read_multi30k(folder, "val")
    elif spec.startswith("anki:"):
        pairs = read_anki_file(download_anki(spec.split(":", 1)[1]))
        train, validation = split_pairs(pairs, HELD_OUT_FRACTION, SPLIT_SEED)
    else:
        train, validation = split_pairs(_local_pairs(spec), HELD_OUT_FRACTION, SPLIT_SEED)
    if reverse:
        train, validation = train.swapped(), validation.swapped()
    return train, validation


def evaluation_pairs(spec: str, reverse: bool = False) -> TextPairs:
    """What `evaluate` scores: a named data set's validation split, or all of a local file."""
    if spec in ("sample", "multi30k") or spec.startswith("anki:"):
        return load_splits(spec, reverse)[1]
    pairs = _local_pairs(spec)
    return pairs.swapped() if reverse else pairs
