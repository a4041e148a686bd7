"""Parallel text: reading it from files, splitting it, and batching it as token ids."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from apps.common.buckets import length_boundaries, pad_to_boundary
from apps.common.errors import InputError
from apps.common.text import TokenIds


@dataclass
class TextPairs:
    """Aligned source and target strings (a sentence and its translation, a turn and its reply)."""

    sources: list[str]
    targets: list[str]

    def __post_init__(self):
        if len(self.sources) != len(self.targets):
            raise ValueError(
                f"{len(self.sources)} sources but {len(self.targets)} targets."
            )

    def __len__(self) -> int:
        return len(self.sources)

    def head(self, limit: int | None) -> "TextPairs":
        """The first `limit` pairs (all with None)."""
        if limit is None:
            return self
        return TextPairs(self.sources[:limit], self.targets[:limit])

    def swapped(self) -> "TextPairs":
        return TextPairs(self.targets, self.sources)


@dataclass(frozen=True)
class TrainingPairs:
    """A text-to-text data set as a training reads it: its name, train and validation pairs."""

    name: str
    train: TextPairs
    validation: TextPairs


@dataclass(frozen=True)
class NamedPairs:
    """Held-out pairs a model is scored on, and the data set they come from."""

    name: str
    pairs: TextPairs


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except UnicodeDecodeError as error:
        line = _line_of_offset(path.read_bytes(), error.start)
        raise InputError(f"{path}, line {line}: not valid {encoding} text.") from None
    return text.splitlines()


def _line_of_offset(data: bytes, offset: int) -> int:
    """1-based line number of byte `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1


def read_tab_separated(path: Path | str, min_columns: int = 2) -> TextPairs:
    """Pairs from `first<TAB>second[<TAB>anything more]` lines (blank lines at the end are fine).

    Raises `InputError` naming the file and line of a line without a tab or
    with an empty side.
    """
    path = Path(path)
    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}: the file holds no pairs.")
    sources, targets = [], []
    for number, line in enumerate(lines, start=1):
        columns = line.split("\t")
        if len(columns) < min_columns:
            raise InputError(
                f"{path}, line {number}: expected tab-separated `source<TAB>target`, "
                f"found no tab in {line[:60]!r}."
            )
        source, target = columns[0].strip(), columns[1].strip()
        if not source or not target:
            side = "source (column 1)" if not source else "target (column 2)"
            raise InputError(f"{path}, line {number}: the {side} is empty.")
        sources.append(source)
        targets.append(target)
    return TextPairs(sources, targets)


def read_aligned_files(
    source_path: Path | str, target_path: Path | str, skip_empty: bool = False
) -> TextPairs:
    """Pairs from two line-aligned files (line i of one translates line i of the other).

    Raises `InputError` when the line counts differ or, unless `skip_empty`
    (which drops such pairs instead), when a line is empty (naming the file
    and line).
    """
    source_path, target_path = Path(source_path), Path(target_path)
    sides = []
    for path in (source_path, target_path):
        lines = _read_lines(path)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise InputError(f"{path}: the file is empty.")
        sides.append(lines)
    sources, targets = sides
    if len(sources) != len(targets):
        raise InputError(
            f"{source_path} has {len(sources)} lines but {target_path} has "
            f"{len(targets)}: line-aligned files must have the same number of lines."
        )
    if skip_empty:
        kept = [(s.strip(), t.strip()) for s, t in zip(sources, targets) if s.strip() and t.strip()]
        if not kept:
            raise InputError(f"{source_path}, {target_path}: no pair with both lines non-empty.")
        return TextPairs([s for s, _ in kept], [t for _, t in kept])
    for path, lines in ((source_path, sources), (target_path, targets)):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"{path}, line {number}: empty line in a line-aligned file.")
    return TextPairs([s.strip() for s in sources], [t.strip() for t in targets])


def split_pairs(pairs: TextPairs, held_out: float, seed: int) -> tuple[TextPairs, TextPairs]:
    """A seeded shuffle split into (training, held-out); at least one pair each."""
    if len(pairs) < 2:
        raise InputError(f"Need at least 2 pairs to hold some out, got {len(pairs)}.")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    count = min(len(pairs) - 1, max(1, round(len(pairs) * held_out)))
    held, kept = order[:count], order[count:]

    def pick(indices):
        return TextPairs([pairs.sources[i] for i in indices], [pairs.targets[i] for i in indices])

    return pick(kept), pick(held)


def _trim_padding(ids: tf.Tensor) -> tf.Tensor:
    """Drops the all-padding columns at the end of a `[batch, time]` id batch."""
    length = tf.reduce_max(tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1))
    return ids[:, : tf.maximum(length, 1)]


def encode_sources(texts: tf.Tensor, vocabulary: TokenIds, max_length: int) -> tf.Tensor:
    """`[batch]` strings -> `[batch, ≤ max_length]` ids with [START]/[END], trimmed padding."""
    return _trim_padding(vocabulary.encode(texts, max_length, add_start_end=True))


def make_dataset(
    pairs: TextPairs,
    source_vocabulary: TokenIds,
    target_vocabulary: TokenIds,
    *,
    max_source_length: int,
    max_target_length: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    fixed_lengths: bool = False,
) -> tf.data.Dataset:
    """`((source_ids, target_input_ids), target_output_ids)` batches for teacher forcing.

    Targets are `[START] y [END]`, cut at `max_target_length` tokens; the
    input is all but the last token and the output all but the first. A
    batch is padded to its longest source and target or, with
    `fixed_lengths` (for a step that XLA compiles), up to a few fixed
    lengths (`apps.common.buckets.length_boundaries`).
    """
    dataset = tf.data.Dataset.from_tensor_slices((pairs.sources, pairs.targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(pairs), seed=shuffle_seed, reshuffle_each_iteration=True)

    def encode(sources, targets):
        source_ids = encode_sources(sources, source_vocabulary, max_source_length)
        target_ids = _trim_padding(
            target_vocabulary.encode(targets, max_target_length + 1, add_start_end=True)
        )
        target_inputs, target_outputs = target_ids[:, :-1], target_ids[:, 1:]
        if fixed_lengths:
            source_ids = pad_to_boundary(source_ids, 1, source_lengths)
            target_inputs = pad_to_boundary(target_inputs, 1, target_lengths)
            target_outputs = pad_to_boundary(target_outputs, 1, target_lengths)
        return (source_ids, target_inputs), target_outputs

    source_lengths = length_boundaries(max_source_length)
    target_lengths = length_boundaries(max_target_length)

    return dataset.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
