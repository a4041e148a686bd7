"""The sentiment model, its in-graph preprocessing and its serving function.

Raw strings are standardized and tokenized by `apps.common.text` ops and
looked up in a vocabulary built from the training split (optionally with
hashed character n-grams of every token), in training and in the export
alike. The Keras model maps them to the probability that the text is
positive:

    WordVectors (word embedding [+ mean of subword embeddings], masked)
    -> Dropout -> Bidirectional(GRU | LSTM | RNN)
    -> masked mean and max pooling over the tokens -> Dropout -> Dense(sigmoid)
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from keras import ops

from apps.common.buckets import pad_to_boundary
from apps.common.cells import recurrent_layer
from apps.common.errors import InputError
from apps.common.export import EXTRA_DIR, load_keras_model, save_extra_model
from apps.common.text import (
    RESERVED_TOKENS,
    UNK,
    TokenIds,
    read_vocabulary,
    reference_tokens,
    tokenize,
    write_vocabulary,
)
from apps.sentiment.settings import SentimentTrain

LABELS = ("negative", "positive")
_UNK_ID = RESERVED_TOKENS.index(UNK)


@keras.saving.register_keras_serializable(package="gru_suite.sentiment")
class MaskedMeanMaxPooling(keras.layers.Layer):
    """Mean and max of a `(batch, time, features)` sequence over its unmasked steps.

    Returns `(batch, 2 * features)`. A sequence with no unmasked step (an
    empty text) pools to zeros instead of NaN.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, sequences, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(sequences)[:2], dtype="bool")
        weights = ops.expand_dims(ops.cast(mask, sequences.dtype), -1)  # LiteRT: no new-axis slices
        count = ops.sum(weights, axis=1)
        mean = ops.sum(sequences * weights, axis=1) / ops.maximum(count, 1.0)
        # The dtype's lowest finite value, not -inf: tf2onnx writes this select as arithmetic,
        # where 0 · -inf would be NaN.
        lowest = float(tf.as_dtype(keras.backend.standardize_dtype(sequences.dtype)).min)
        masked = ops.where(weights > 0, sequences, ops.full_like(sequences, lowest))
        maximum = ops.where(count > 0, ops.max(masked, axis=1), ops.zeros_like(mean))
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


@keras.saving.register_keras_serializable(package="gru_suite.sentiment")
class WordVectors(keras.layers.Layer):
    """A vector per token: its word embedding, plus the mean of its subword embeddings.

    Takes `{"token_ids": (batch, time)}` and, when `subword_buckets > 0`,
    `{"subword_ids": (batch, time, subwords)}` (hashed character n-grams,
    0 = padding). Subwords give a word the training never saw ([UNK]) a
    vector from its pieces ("unfunny" shares "fun" and "unn"). The mask is
    `token_ids != 0`.
    """

    def __init__(self, vocabulary_size: int, embedding_dim: int, subword_buckets: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.subword_buckets = subword_buckets
        self.word_embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="word_embedding")
        self.subword_embedding = (
            keras.layers.Embedding(subword_buckets + 1, embedding_dim, name="subword_embedding")
            if subword_buckets
            else None
        )

    def build(self, input_shape):
        self.word_embedding.build(input_shape["token_ids"])
        if self.subword_embedding is not None:
            self.subword_embedding.build(input_shape["subword_ids"])

    def call(self, inputs):
        vectors = self.word_embedding(inputs["token_ids"])
        if self.subword_embedding is not None:
            ids = inputs["subword_ids"]
            present = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), vectors.dtype), -1)
            summed = ops.sum(self.subword_embedding(ids) * present, axis=2)
            vectors = vectors + summed / ops.maximum(ops.sum(present, axis=2), 1.0)
        return vectors

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs["token_ids"], 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape["token_ids"], self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "subword_buckets": self.subword_buckets,
        }


def build_model(vocabulary_size: int, config: SentimentTrain) -> keras.Model:
    """A compiled bidirectional recurrent classifier over token (and subword) ids.

    Args:
        vocabulary_size: Number of token ids (id 0 is padding).
        config: What `gru-suite train sentiment` fills; the builder reads
            `subword_buckets` (hash buckets of the character n-gram features;
            0 leaves them out and the model takes `token_ids` only), `cell`,
            `units` (per direction), `embedding_dim`, `dropout` (on the word
            vectors and on the pooled features), `learning_rate` (Adam's) and
            `seed` (the dropout layers').
    """
    subword_buckets, cell, units = config.subword_buckets, config.cell, config.units
    embedding_dim, dropout, seed = config.embedding_dim, config.dropout, config.seed
    if vocabulary_size <= len(RESERVED_TOKENS):
        raise ValueError(f"vocabulary_size must exceed {len(RESERVED_TOKENS)}, got {vocabulary_size}.")
    if units < 1 or embedding_dim < 1 or subword_buckets < 0:
        raise ValueError(
            "units and embedding_dim must be positive and subword_buckets not negative, "
            f"got {units}, {embedding_dim} and {subword_buckets}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    inputs = {"token_ids": keras.Input(shape=(None,), dtype="int64", name="token_ids")}
    if subword_buckets:
        inputs["subword_ids"] = keras.Input(shape=(None, None), dtype="int64", name="subword_ids")
    x = WordVectors(vocabulary_size, embedding_dim, subword_buckets, name="word_vectors")(inputs)
    x = keras.layers.Dropout(dropout, seed=seed, name="embedding_dropout")(x)
    x = keras.layers.Bidirectional(
        recurrent_layer(cell, units, return_sequences=True), name="bidirectional"
    )(x)
    x = MaskedMeanMaxPooling(name="pooling")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="pooled_dropout")(x)
    probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    model = keras.Model(inputs, probability, name=f"sentiment_{cell}")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _pad_to(tensor: tf.Tensor, axis: int, size: tf.Tensor) -> tf.Tensor:
    paddings = [[0, 0]] * len(tensor.shape)
    paddings[axis] = [0, tf.maximum(0, size - tf.shape(tensor)[axis])]
    return tf.pad(tensor, paddings)


class Preprocessor(tf.Module):
    """Raw strings -> the model's inputs, in TensorFlow ops (the export tracks it).

    Args:
        token_ids: The vocabulary lookup.
        max_length: Tokens kept per text (the first ones).
        subword_buckets: Hash buckets of the character 3-, 4- and 5-grams of
            each token (with `<` and `>` marking its ends); 0 for none.
    """

    NGRAM_WIDTHS = (3, 4, 5)

    def __init__(self, token_ids: TokenIds, max_length: int, subword_buckets: int = 0):
        super().__init__(name="preprocessor")
        if max_length < 1 or subword_buckets < 0:
            raise ValueError(f"Need max_length >= 1 and subword_buckets >= 0, got {max_length}, {subword_buckets}.")
        self.token_ids = token_ids
        self.max_length = max_length
        self.subword_buckets = subword_buckets

    def tokens(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return tokenize(texts)[:, : self.max_length]

    def subword_ids(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        """`[batch, (tokens)]` -> `[batch, (tokens), (n-grams)]` ids in 1..subword_buckets."""
        marked = tf.strings.join(["<", tokens.flat_values, ">"])
        characters = tf.strings.unicode_split(marked, "UTF-8", errors="replace")
        ngrams = tf.concat(
            [
                tf_text.ngrams(characters, width, reduction_type=tf_text.Reduction.STRING_JOIN,
                               string_separator="")
                for width in self.NGRAM_WIDTHS
            ],
            axis=1,
        )
        ids = tf.ragged.map_flat_values(
            lambda grams: tf.strings.to_hash_bucket_fast(grams, self.subword_buckets) + 1, ngrams
        )
        return tokens.with_flat_values(ids)

    def __call__(self, texts: tf.Tensor, word_dropout: float = 0.0) -> dict[str, tf.Tensor]:
        """`[batch]` strings -> `{"token_ids": [batch, length], "subword_ids": [batch, length, n]}`.

        `length` is the batch's longest text (at most `max_length`, at least
        1, so a batch of empty strings still runs with every step masked).
        `word_dropout` replaces that fraction of the known tokens by [UNK]
        (for training: it teaches the [UNK] vector that unseen words get).
        """
        tokens = self.tokens(texts)
        ids = self.token_ids.ids(tokens).to_tensor(default_value=0)
        length = tf.maximum(tf.shape(ids)[1], 1)
        ids = _pad_to(ids, 1, length)
        if word_dropout > 0:
            dropped = (ids >= len(RESERVED_TOKENS)) & (tf.random.uniform(tf.shape(ids)) < word_dropout)
            ids = tf.where(dropped, tf.constant(_UNK_ID, tf.int64), ids)
        inputs = {"token_ids": ids}
        if self.subword_buckets:
            subwords = self.subword_ids(tokens).to_tensor(default_value=0)
            inputs["subword_ids"] = _pad_to(_pad_to(subwords, 1, length), 2, 1)
        return inputs


def training_dataset(
    preprocessor: Preprocessor,
    texts: list[str],
    labels: np.ndarray,
    *,
    batch_size: int,
    word_dropout: float = 0.0,
    shuffle: bool = True,
    seed: int = 0,
    fixed_lengths: bool = False,
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)`, texts of similar length batched together.

    Bucketing by length keeps padding, and so the recurrent steps, short.
    With `fixed_lengths` (for a step that XLA compiles), each batch is padded
    to its bucket's upper boundary instead of its longest text, so an epoch
    has a few shapes (`apps.common.buckets`). Word dropout is drawn anew
    every epoch. The number of batches is declared (`cardinality`), so Keras
    knows the epoch's length instead of running into the end of the data.
    """
    lengths = preprocessor.tokens(tf.constant(texts)).row_lengths()
    dataset = tf.data.Dataset.from_tensor_slices((texts, lengths, labels.astype("float32")))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    boundaries = [b for b in (8, 16, 24, 32, 48, 64, 96, 128, 256) if b < preprocessor.max_length]
    dataset = dataset.bucket_by_sequence_length(
        lambda text, length, label: tf.cast(length, tf.int32) + 1,
        bucket_boundaries=[b + 1 for b in boundaries],
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    # Each bucket yields full batches and then its remainder, whatever the order.
    per_bucket = np.bincount(np.searchsorted(boundaries, lengths.numpy(), side="right"))
    batches = int(np.sum(-(-per_bucket // batch_size)))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    padded_lengths = boundaries + [preprocessor.max_length]

    def prepare(text, length, label):
        inputs = preprocessor(text, word_dropout)
        if fixed_lengths:
            inputs = {name: pad_to_boundary(ids, 1, padded_lengths) for name, ids in inputs.items()}
        return inputs, label

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _answer(model: keras.Model, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    probability = tf.reshape(tf.cast(model(inputs, training=False), tf.float32), [-1])
    label = tf.gather(tf.constant(LABELS), tf.cast(probability >= 0.5, tf.int32))
    return {"probability": probability, "label": label}


def make_serving_function(model: keras.Model, preprocessor: Preprocessor):
    """The `serving_default` function: raw `text` -> `probability`, `label`."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return _answer(model, preprocessor(text))

    return serve


def make_token_ids_function(model: keras.Model):
    """What a LiteRT or ONNX file serves: `token_ids` int64 `[batch, length]` (0 pads) ->
    `probability`, `label`. Neither format has tensorflow-text's ops, so the client tokenizes
    (`reference_token_ids`)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="token_ids")])
    def serve(token_ids):
        return _answer(model, {"token_ids": token_ids})

    return serve


def reference_token_ids(texts: list[str], vocabulary: dict[str, int], max_length: int) -> np.ndarray:
    """What `Preprocessor` gives a batch of texts without subword features, in plain Python
    (`apps.common.text.reference_tokens`): `[batch, longest (1 to max_length)]` int64 ids."""
    unknown = RESERVED_TOKENS.index(UNK)
    rows = [[vocabulary.get(token, unknown) for token in reference_tokens(text)[:max_length]] for text in texts]
    ids = np.zeros((len(rows), max([1, *(len(row) for row in rows)])), np.int64)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = row
    return ids


@dataclass
class Artifacts:
    """What `explain` needs beside the SavedModel: the Keras model and its preprocessing."""

    model: keras.Model
    preprocessor: Preprocessor
    cell: str


def save_artifacts(version_dir: Path, model: keras.Model, preprocessor: Preprocessor, cell: str) -> None:
    """Writes `extra/model.keras`, `extra/vocabulary.txt` and `extra/settings.json`."""
    save_extra_model(model, version_dir)
    extra = Path(version_dir) / EXTRA_DIR
    vocabulary = preprocessor.token_ids.vocabulary
    write_vocabulary(extra / "vocabulary.txt", vocabulary)
    settings = {
        "max_length": preprocessor.max_length,
        "subword_buckets": preprocessor.subword_buckets,
        "cell": cell,
    }
    (extra / "settings.json").write_text(json.dumps(settings))


@functools.lru_cache(maxsize=4)
def load_artifacts(version_dir: Path) -> Artifacts:
    """Reads what `save_artifacts` wrote (an `InputError` if it is not there); kept for reuse."""
    extra = Path(version_dir) / EXTRA_DIR
    needed = [extra / name for name in ("model.keras", "vocabulary.txt", "settings.json")]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise InputError(
            f"{version_dir}: not a sentiment export with its Keras model (missing {', '.join(missing)})."
        )
    settings = json.loads(needed[2].read_text())
    vocabulary = read_vocabulary(needed[1])
    preprocessor = Preprocessor(
        TokenIds(vocabulary), int(settings["max_length"]), int(settings["subword_buckets"])
    )
    return Artifacts(load_keras_model(needed[0]), preprocessor, settings["cell"])


def predict_texts(serve, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Probabilities (positive class) of `texts` under a serving function, batch by batch."""
    if not texts:
        raise InputError("No texts to predict (the batch is empty).")
    chunks = [
        serve(text=tf.constant(texts[start:start + batch_size]))["probability"].numpy()
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(chunks)


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class at threshold 0.5."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities) >= 0.5
    true_positives = float(np.sum(predicted & labels))
    precision = true_positives / max(1.0, float(np.sum(predicted)))
    recall = true_positives / max(1.0, float(np.sum(labels)))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
