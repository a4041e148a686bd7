"""Text preprocessing in TensorFlow ops, shared by sentiment, translation and chatbot.

Everything here runs inside the graph (tensorflow-text and `tf.strings`), so
training and an exported SavedModel apply the very same steps to raw strings:

1. invalid UTF-8 bytes become U+FFFD (never an error),
2. NFKC normalization and Unicode case folding (tensorflow-text),
3. every character that is not a letter, digit, mark, apostrophe or space is
   split off as its own token ("good." -> "good", "."),
4. whitespace tokenization, then a vocabulary lookup with reserved ids.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
RESERVED_TOKENS = (PAD, UNK, START, END)
_PUNCTUATION = r"([^\p{L}\p{N}\p{M}\s'])"


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Normalized, case-folded strings with punctuation set apart by spaces."""
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    texts = tf_text.case_fold_utf8(tf_text.normalize_utf8(texts, "NFKC"))
    return tf.strings.regex_replace(texts, _PUNCTUATION, r" \1 ")


def readable(text: tf.Tensor, length: int = 40) -> tf.Tensor:
    """The first `length` bytes of `text` as valid UTF-8 (bad bytes as U+FFFD): what an in-graph
    error may echo of a caller's string, since TensorFlow fails to raise an error whose message
    is not UTF-8."""
    return tf.strings.unicode_transcode(tf.strings.substr(text, 0, length), "UTF-8", "UTF-8", errors="replace")


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """`[batch]` strings -> `[batch, (tokens)]` ragged string tokens."""
    return tf_text.WhitespaceTokenizer().tokenize(standardize(texts))


def build_vocabulary(
    texts: Iterable[str], max_size: int = 20000, min_count: int = 1, batch_size: int = 1024
) -> list[str]:
    """Reserved tokens, then the most frequent tokens of `texts` (ties by token).

    Tokens are counted with `tokenize`, so the vocabulary sees exactly what
    the model will see.
    """
    counts: Counter[bytes] = Counter()
    batch: list[str] = []

    def flush() -> None:
        if batch:
            counts.update(tokenize(tf.constant(batch)).flat_values.numpy().tolist())
            batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            flush()
    flush()
    ranked = sorted(
        (item for item in counts.items() if item[1] >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    reserved = {token.encode() for token in RESERVED_TOKENS}
    words = [token.decode("utf-8") for token, _ in ranked if token not in reserved]
    return list(RESERVED_TOKENS) + words[: max(0, max_size - len(RESERVED_TOKENS))]


class TokenIds(tf.Module):
    """String tokens -> integer ids with a fixed vocabulary (0 = padding, 1 = unknown).

    A `tf.Module`, so an export that tracks it carries the lookup table.
    """

    def __init__(self, vocabulary: list[str], name: str | None = None):
        super().__init__(name=name)
        if list(vocabulary[: len(RESERVED_TOKENS)]) != list(RESERVED_TOKENS):
            raise ValueError(
                f"A vocabulary must start with the reserved tokens {RESERVED_TOKENS}."
            )
        self.vocabulary = list(vocabulary)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary),
                tf.range(len(self.vocabulary), dtype=tf.int64),
            ),
            default_value=RESERVED_TOKENS.index(UNK),
        )
        self.words = tf.constant(self.vocabulary)

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def ids(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        return tf.ragged.map_flat_values(self.table.lookup, tokens)

    def encode(self, texts: tf.Tensor, max_length: int, add_start_end: bool = False) -> tf.Tensor:
        """`[batch]` strings -> `[batch, max_length]` int64 ids, padded with 0.

        Longer texts keep their first tokens (with `add_start_end`, the END
        token always closes the sequence).
        """
        ids = self.ids(tokenize(texts))
        if add_start_end:
            ids = ids[:, : max_length - 2]
            batch = ids.nrows()
            start = tf.fill([batch, 1], tf.constant(RESERVED_TOKENS.index(START), tf.int64))
            end = tf.fill([batch, 1], tf.constant(RESERVED_TOKENS.index(END), tf.int64))
            ids = tf.concat([start, ids, end], axis=1)
        else:
            ids = ids[:, :max_length]
        return ids.to_tensor(default_value=0, shape=[None, max_length])

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """`[batch, length]` ids -> `[batch]` strings, stopping at END, skipping reserved ids."""
        ids = tf.convert_to_tensor(ids, tf.int64)
        end = RESERVED_TOKENS.index(END)
        before_end = tf.cumsum(tf.cast(ids == end, tf.int32), axis=1) == 0
        keep = before_end & (ids >= len(RESERVED_TOKENS))
        words = tf.ragged.boolean_mask(tf.gather(self.words, ids), keep)
        return tf.strings.reduce_join(words, axis=1, separator=" ")


def write_vocabulary(path: Path, vocabulary: list[str]) -> None:
    """Writes one token per line (tokens hold no whitespace; `read_vocabulary` reads it back)."""
    path.write_text("".join(token + "\n" for token in vocabulary), encoding="utf-8")


def read_vocabulary(path: Path) -> list[str]:
    """The tokens `write_vocabulary` wrote, split on "\n" only (not on what `str.splitlines` splits)."""
    return path.read_text(encoding="utf-8").split("\n")[:-1]


# Unicode's White_Space characters: what tensorflow-text's WhitespaceTokenizer splits on (ICU).
_WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# RE2's \s in `_PUNCTUATION`: ASCII whitespace only, without the vertical tab.
_RE2_SPACE = frozenset("\t\n\x0c\r ")
# Unicode's Default_Ignorable_Code_Point ranges, which case_fold_utf8 (ICU's NFKC_Casefold) removes.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def reference_tokens(text: str | bytes) -> list[str]:
    """`tokenize` of one text in plain Python, for clients of a LiteRT or ONNX file (which takes
    token ids): invalid UTF-8 replaced, NFKC, case folding, punctuation split off, whitespace split.

    Tested against `tokenize` on hostile text (tests/test_formats.py); Python's and ICU's
    Unicode tables may differ for characters newer than either.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # NFKC, then ICU's NFKC_Casefold: ignorables removed, case folded, normalized again.
    folded = unicodedata.normalize("NFKC", _IGNORABLE.sub("", unicodedata.normalize("NFKC", text)).casefold())
    spaced = "".join(
        character if unicodedata.category(character)[0] in "LNM" or character in _RE2_SPACE or character == "'"
        else f" {character} "
        for character in folded
    )
    tokens, current = [], []
    for character in spaced:
        if character in _WHITE_SPACE:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(character)
    if current:
        tokens.append("".join(current))
    return tokens
