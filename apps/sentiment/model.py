"""The sentiment model, its in-graph preprocessing and its serving function.

Raw strings are standardized and tokenized by `apps.common.text` ops and
looked up in a vocabulary built from the training split, in training and in
the export alike. The Keras model maps token ids to the probability that the
text is positive:

    Embedding(mask_zero=True) -> Dropout -> Bidirectional(GRU | LSTM | RNN)
    -> masked mean and max pooling over the tokens -> Dropout -> Dense(sigmoid)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.common.cells import recurrent_layer
from apps.common.errors import InputError
from apps.common.export import load_keras_model
from apps.common.text import RESERVED_TOKENS, UNK, TokenIds, tokenize

LABELS = ("negative", "positive")
EXTRA_DIR = "extra"
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
        weights = ops.cast(mask, sequences.dtype)[:, :, None]
        count = ops.sum(weights, axis=1)
        mean = ops.sum(sequences * weights, axis=1) / ops.maximum(count, 1.0)
        masked = ops.where(weights > 0, sequences, ops.full_like(sequences, float("-inf")))
        maximum = ops.where(count > 0, ops.max(masked, axis=1), ops.zeros_like(mean))
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


def build_model(
    vocabulary_size: int,
    *,
    cell: str = "gru",
    units: int = 32,
    embedding_dim: int = 64,
    dropout: float = 0.3,
    learning_rate: float = 2e-3,
    seed: int | None = None,
) -> keras.Model:
    """A compiled bidirectional recurrent classifier over token ids.

    Args:
        vocabulary_size: Number of token ids (id 0 is padding).
        cell: "gru" (`gru_core.GRU`), "lstm" or "rnn".
        units: Recurrent units per direction.
        embedding_dim: Size of the word vectors.
        dropout: Dropout rate on the word vectors and on the pooled features.
        learning_rate: Adam's learning rate.
        seed: Seed of the dropout layers.
    """
    if vocabulary_size <= len(RESERVED_TOKENS):
        raise ValueError(f"vocabulary_size must exceed {len(RESERVED_TOKENS)}, got {vocabulary_size}.")
    if units < 1 or embedding_dim < 1:
        raise ValueError(f"units and embedding_dim must be positive, got {units} and {embedding_dim}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(token_ids)
    x = keras.layers.Dropout(dropout, seed=seed, name="embedding_dropout")(x)
    x = keras.layers.Bidirectional(
        recurrent_layer(cell, units, return_sequences=True), name="bidirectional"
    )(x)
    x = MaskedMeanMaxPooling(name="pooling")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="pooled_dropout")(x)
    probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    model = keras.Model(token_ids, probability, name=f"sentiment_{cell}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def encode(token_ids: TokenIds, texts: tf.Tensor, max_length: int) -> tf.Tensor:
    """`[batch]` raw strings -> `[batch, length]` int64 ids, 0-padded.

    `length` is the batch's longest text, at most `max_length` tokens (longer
    texts keep their first tokens) and at least 1, so that a batch of empty
    strings still runs (every step masked).
    """
    ids = token_ids.ids(tokenize(texts))[:, :max_length].to_tensor(default_value=0)
    return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])


def training_dataset(
    token_ids: TokenIds,
    texts: list[str],
    labels: np.ndarray,
    *,
    batch_size: int,
    max_length: int,
    word_dropout: float = 0.0,
    shuffle: bool = True,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of `(ids, labels)`, texts of similar length batched together.

    Bucketing by length keeps padding, and so the recurrent steps, short.
    `word_dropout` replaces that fraction of the known tokens by [UNK] (anew
    every epoch), which also trains the [UNK] vector that unseen words get.
    """
    ids = token_ids.ids(tokenize(tf.constant(texts)))[:, :max_length]
    dataset = tf.data.Dataset.from_tensor_slices(
        (ids.to_tensor(default_value=0), ids.row_lengths(), labels.astype("float32"))
    ).map(lambda row, length, label: (row[:length], label))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    if word_dropout > 0:
        def drop_words(row, label):
            keep = tf.random.uniform(tf.shape(row)) >= word_dropout
            known = row >= len(RESERVED_TOKENS)
            return tf.where(known & ~keep, tf.constant(_UNK_ID, tf.int64), row), label

        dataset = dataset.map(drop_words, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = [b for b in (8, 16, 24, 32, 48, 64, 96, 128, 256) if b < max_length]
    dataset = dataset.bucket_by_sequence_length(
        lambda row, label: tf.shape(row)[0] + 1,
        bucket_boundaries=[b + 1 for b in boundaries],
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_serving_function(model: keras.Model, token_ids: TokenIds, max_length: int):
    """The `serving_default` function: raw `text` -> `probability`, `label`."""
    labels = tf.constant(LABELS)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probability = tf.cast(model(encode(token_ids, text, max_length), training=False), tf.float32)
        probability = tf.reshape(probability, [-1])
        label = tf.gather(labels, tf.cast(probability >= 0.5, tf.int32))
        return {"probability": probability, "label": label}

    return serve


@dataclass
class Artifacts:
    """What `explain` needs beside the SavedModel: the Keras model and its vocabulary."""

    model: keras.Model
    token_ids: TokenIds
    max_length: int
    cell: str


def save_artifacts(version_dir: Path, model: keras.Model, token_ids: TokenIds, max_length: int, cell: str) -> None:
    """Writes `extra/model.keras`, `extra/vocabulary.txt` and `extra/settings.json`."""
    extra = Path(version_dir) / EXTRA_DIR
    extra.mkdir()
    model.save(extra / "model.keras")
    (extra / "vocabulary.txt").write_text("\n".join(token_ids.vocabulary) + "\n", encoding="utf-8")
    (extra / "settings.json").write_text(json.dumps({"max_length": max_length, "cell": cell}))


def load_artifacts(version_dir: Path) -> Artifacts:
    """Reads what `save_artifacts` wrote (an `InputError` if it is not there)."""
    extra = Path(version_dir) / EXTRA_DIR
    needed = [extra / name for name in ("model.keras", "vocabulary.txt", "settings.json")]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise InputError(
            f"{version_dir}: not a sentiment export with its Keras model (missing {', '.join(missing)})."
        )
    settings = json.loads(needed[2].read_text())
    vocabulary = needed[1].read_text(encoding="utf-8").split("\n")[:-1]
    model = load_keras_model(needed[0])
    return Artifacts(model, TokenIds(vocabulary), int(settings["max_length"]), settings["cell"])


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
