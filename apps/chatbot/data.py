"""Conversation pairs for the chatbot.

`--data` names one of:

- `sample` (default): the English conversations of the `chatterbot-corpus`
  package (YAML files under `chatterbot_corpus/data/english/`), offline.
- `cornell`: the Cornell Movie-Dialogs Corpus (movie_lines.txt and
  movie_conversations.txt, ISO-8859-1, ` +++$+++ ` separated).
- `PATH`: a tab-separated `utterance<TAB>reply` file.
- `PATH.enc`: line-aligned `PATH.enc` (utterances) / `PATH.dec` (replies);
  pairs with an empty side are dropped.
- `UTTERANCES,REPLIES`: two line-aligned files.

A conversation u1, u2, u3, ... gives the pairs u1 -> u2, u2 -> u3, ...; from
the second pair on, the source also carries the turn before it as context
(`with_context`), so the model learns to use the previous turn when given one.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from pathlib import Path

import keras
import yaml

from apps.common.errors import InputError
from apps.common.seq2seq.pairs import (
    TextPairs,
    TrainingPairs,
    read_aligned_files,
    read_tab_separated,
    split_pairs,
)

# The symbol for "record separator": punctuation to the tokenizer, so it is
# always a token of its own, and it does not occur in ordinary text.
CONTEXT_SEPARATOR = "\u241e"
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 0
# How pairs are held out (`--split`): whole stretches of the file, which follows the
# corpus's conversation (and movie) order, or a seeded share of single pairs.
SPLITS = ("blocks", "random")
# The held-out share comes as this many contiguous blocks, spread through the file by
# `SPLIT_SEED`, so the test covers several stretches (movies) and not one.
HELD_OUT_BLOCKS = 10
CORNELL_URL = "http://www.cs.cornell.edu/~cristian/data/cornell_movie_dialogs_corpus.zip"
# The corpus page publishes none; this is the sha256 that Julia's
# CorpusLoaders.jl registers for the same URL (its DataDeps check it on download).
CORNELL_SHA256 = "3bde8a571f615201bc2d2453e22878090719638592f774720eddec739de8c900"
FIELD_SEPARATOR = " +++$+++ "


def utterance(source: str) -> str:
    """The utterance of a source, without the context that `with_context` joined on."""
    return source.split(f" {CONTEXT_SEPARATOR} ", 1)[0]


def with_context(text: str, context: str) -> str:
    """The model's source for `text` after the turn `context` ("" for none).

    The utterance comes first, so that cutting a long source to the maximum
    length drops context rather than the utterance.
    """
    return f"{text} {CONTEXT_SEPARATOR} {context}" if context else text


def conversation_pairs(conversations: list[list[str]]) -> TextPairs:
    """Consecutive-turn pairs of each conversation, with the turn before as context."""
    sources, targets = [], []
    for turns in conversations:
        for index in range(len(turns) - 1):
            context = turns[index - 1] if index > 0 else ""
            sources.append(with_context(turns[index], context))
            targets.append(turns[index + 1])
    return TextPairs(sources, targets)


def chatterbot_folder() -> Path:
    import chatterbot_corpus

    return Path(chatterbot_corpus.__file__).parent / "data" / "english"


def read_chatterbot_yaml(path: Path | str) -> list[list[str]]:
    """The conversations of one chatterbot-corpus YAML file (`conversations: [[turn, ...], ...]`)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise InputError(f"{path}: expected a mapping with a 'conversations' list.")
    conversations = []
    for turns in document["conversations"]:
        # A lone string (trivia.yml has one, from a YAML indentation slip) is
        # a single turn: no pair to learn from.
        if not isinstance(turns, list):
            continue
        # YAML reads "Yes" or "42" as booleans and numbers; the turn was text.
        cleaned = [str(turn).strip() for turn in turns if turn is not None and str(turn).strip()]
        if len(cleaned) >= 2:
            conversations.append(cleaned)
    return conversations


def sample_pairs() -> TextPairs:
    """Pairs from every English chatterbot-corpus file, in file-name order."""
    conversations = []
    for path in sorted(chatterbot_folder().glob("*.yml")):
        conversations += read_chatterbot_yaml(path)
    return conversation_pairs(conversations)


def read_cornell(folder: Path | str) -> TextPairs:
    """Pairs from movie_lines.txt and movie_conversations.txt in `folder`."""
    folder = Path(folder)
    lines_path = folder / "movie_lines.txt"
    conversations_path = folder / "movie_conversations.txt"
    lines: dict[str, str] = {}
    for number, line in enumerate(_read_latin1(lines_path), start=1):
        fields = line.split(FIELD_SEPARATOR)
        if len(fields) != 5:
            raise InputError(
                f"{lines_path}, line {number}: expected 5 fields separated by "
                f"'{FIELD_SEPARATOR.strip()}', found {len(fields)}."
            )
        lines[fields[0].strip()] = fields[4].strip()
    conversations = []
    for number, line in enumerate(_read_latin1(conversations_path), start=1):
        fields = line.split(FIELD_SEPARATOR)
        ids = fields[-1].strip()
        if len(fields) != 4 or not (ids.startswith("[") and ids.endswith("]")):
            raise InputError(
                f"{conversations_path}, line {number}: expected 4 fields ending in a "
                "list of line ids such as ['L194', 'L195']."
            )
        turns = []
        for line_id in (part.strip(" '\"") for part in ids[1:-1].split(",")):
            if line_id not in lines:
                raise InputError(
                    f"{conversations_path}, line {number}: line id {line_id!r} is not in "
                    f"{lines_path.name}."
                )
            turns.append(lines[line_id])
        conversations.append(turns)
    # Empty utterances (a few lines of the corpus) break a conversation in two.
    split_conversations = []
    for turns in conversations:
        current: list[str] = []
        for turn in turns + [""]:
            if turn:
                current.append(turn)
            else:
                if len(current) >= 2:
                    split_conversations.append(current)
                current = []
    return conversation_pairs(split_conversations)


def _read_latin1(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="iso-8859-1")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    return [line for line in text.splitlines() if line.strip()]


def download_cornell() -> Path:
    """Downloads (once) and extracts the corpus; returns the folder with movie_lines.txt."""
    folder = Path(keras.utils.get_file(
        "cornell_movie_dialogs_corpus.zip", CORNELL_URL, file_hash=CORNELL_SHA256,
        cache_subdir="gru_suite", extract=True,
    ))
    matches = sorted(folder.rglob("movie_lines.txt"))
    if not matches:
        raise InputError(f"{folder}: the Cornell archive holds no movie_lines.txt.")
    return matches[0].parent


def _local_pairs(spec: str) -> TextPairs:
    # Dialogue has empty turns (25 of the 25,000 Cornell pairs in .enc/.dec
    # form): such pairs are dropped rather than refused.
    if "," in spec:
        utterances, replies = spec.split(",", 1)
        return read_aligned_files(utterances, replies, skip_empty=True)
    path = Path(spec)
    if path.suffix == ".enc":
        return read_aligned_files(path, path.with_suffix(".dec"), skip_empty=True)
    if not path.exists():
        raise InputError(f"{spec}: no such file, and not one of sample, cornell.")
    return read_tab_separated(path)


def all_pairs(spec: str) -> TextPairs:
    """Every pair of the data set `spec` names, in its own order."""
    if spec == "sample":
        return sample_pairs()
    if spec == "cornell":
        return read_cornell(download_cornell())
    return _local_pairs(spec)


@dataclass(frozen=True)
class DialogSplits(TrainingPairs):
    """Conversation pairs, with a test split apart from the validation one (see `load_splits`)."""

    test: TextPairs


def conversation_starts(pairs: TextPairs) -> list[int]:
    """The index of each conversation's first pair: a pair continues the one before it when its
    utterance is that pair's reply (as `conversation_pairs` writes them, and the Cornell files are)."""
    return [index for index in range(len(pairs))
            if index == 0 or utterance(pairs.sources[index]) != pairs.targets[index - 1]]


def block_split(pairs: TextPairs, held_out: float = HELD_OUT_FRACTION, blocks: int = HELD_OUT_BLOCKS,
                seed: int = SPLIT_SEED) -> tuple[TextPairs, list[TextPairs]]:
    """(training pairs, held-out blocks in file order): the file cut at conversation starts into
    about `blocks / held_out` stretches of equal size, of which a seeded `blocks` are held out.

    No conversation has pairs on both sides. A file of fewer conversations has fewer,
    whole-conversation stretches; one is held out at least, and one kept.
    """
    starts = conversation_starts(pairs)
    if len(starts) < 2:
        raise InputError(f"the block split needs at least 2 conversations to hold one out; these "
                         f"{len(pairs)} pairs form {len(starts)} (use --split random)")
    wanted = max(2, round(blocks / held_out))
    cuts = sorted({starts[min(bisect.bisect_left(starts, len(pairs) * k / wanted), len(starts) - 1)]
                   for k in range(wanted)} | {0})
    stretches = list(zip(cuts, cuts[1:] + [len(pairs)]))
    count = min(len(stretches) - 1, max(1, round(len(stretches) * held_out)))
    chosen = set(random.Random(seed).sample(range(len(stretches)), count))

    def pick(spans: list[tuple[int, int]]) -> TextPairs:
        indices = [index for start, end in spans for index in range(start, end)]
        return TextPairs([pairs.sources[i] for i in indices], [pairs.targets[i] for i in indices])

    kept = pick([span for index, span in enumerate(stretches) if index not in chosen])
    return kept, [pick([span]) for index, span in enumerate(stretches) if index in chosen]


def load_splits(spec: str, split: str = "blocks") -> tuple[TextPairs, TextPairs, TextPairs]:
    """`(train, validation, test)`: 10% held out, and split in halves.

    `blocks` (`block_split`): the held-out blocks alternate between validation and
    test in file order, so test conversations (movies, in Cornell) are neither
    training nor validation ones. `random`: a seeded 10% of the pairs, halved at random.
    `train --decoding auto` picks its decoding on the validation half, and
    `evaluate` reports on the test half, so the reported figures are not the
    ones the choice was made on. (A single held-out pair or block serves as both.)
    """
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {SPLITS}")
    pairs = all_pairs(spec)
    if split == "blocks":
        train, held = block_split(pairs)
        if len(held) < 2:
            return train, held[0], held[0]
        return train, _joined(held[0::2]), _joined(held[1::2])
    train, held_out = split_pairs(pairs, HELD_OUT_FRACTION, SPLIT_SEED)
    if len(held_out) < 2:
        return train, held_out, held_out
    test, validation = split_pairs(held_out, 0.5, SPLIT_SEED)
    return train, validation, test


def _joined(parts: list[TextPairs]) -> TextPairs:
    return TextPairs([s for part in parts for s in part.sources], [t for part in parts for t in part.targets])


def with_unconditioned(pairs: TextPairs, share: float, seed: int) -> TextPairs:
    """`pairs` and a seeded `share` of its replies again after an empty prompt (`train
    --unconditioned`), so the model also learns a reply's likelihood with no prompt."""
    count = round(len(pairs) * share)
    replies = random.Random(seed).sample(pairs.targets, count)
    return TextPairs(pairs.sources + [""] * count, pairs.targets + replies)


def evaluation_pairs(spec: str, split: str = "blocks") -> TextPairs:
    """What `evaluate` scores: a named data set's test split, or all of a local file."""
    if spec in ("sample", "cornell"):
        return load_splits(spec, split)[2]
    return _local_pairs(spec)
