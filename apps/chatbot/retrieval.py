"""The chatbot's reply picker: a GRU dual encoder (Lowe et al. 2015) and the replies it picks from.

A prompt (the utterance, and the turn before it joined on as the generative
model reads it) and a candidate reply are each read by a bidirectional
recurrent encoder (`gru_core.GRU` by default) over shared word embeddings,
projected by a head of their own and normalized to unit length; their score
is the cosine divided by a temperature. Training makes each prompt's own
reply outscore the other replies of its batch (in-batch negatives, softmax
cross-entropy; Henderson et al. 2017). The encoder is shared between the two
sides or separate (`--separate-encoders`).

At export (`RetrievalServer`), the candidate replies (the training replies,
or a file's) are encoded once into a matrix; a request costs one prompt
encoding and one matrix product. In hybrid mode the retrieved reply answers
when its score clears a threshold chosen on validation (`choose_threshold`),
and the generated reply otherwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.chatbot.settings import ChatbotTrain
from apps.common.app import Fitting
from apps.common.cells import recurrent_layer
from apps.common.errors import InputError
from apps.common.seq2seq.pairs import TextPairs
from apps.common.text import TokenIds, build_vocabulary, tokenize

RETRIEVED, GENERATED = "retrieved", "generated"  # the `source` output of each reply
ENCODE_BATCH = 256  # replies encoded at a time when the index is built
RETRIEVAL_PATIENCE = 2  # epochs without a better validation ranking before the dual encoder stops


@keras.saving.register_keras_serializable(package="gru_suite")
class DualEncoder(keras.Model):
    """Prompt and reply token ids -> unit vectors; `call` gives the [prompts, replies] score matrix.

    Args:
        vocabulary_size: Word ids, 0 the padding.
        embedding_dim: Size of the shared word embeddings.
        units: Units of each direction of the bidirectional encoders; the vectors have 2 * units.
        cell: "gru" (gru_core), "lstm" or "rnn".
        shared: One encoder for both sides (each side keeps its own head).
        temperature: Scores are cosines divided by this (> 0).
        dropout: Input dropout of the encoders.
    """

    def __init__(self, vocabulary_size: int, embedding_dim: int, units: int, cell: str = "gru",
                 shared: bool = True, temperature: float = 0.05, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise InputError(f"the dual encoder's temperature must be > 0 (got {temperature})")
        self.vocabulary_size, self.embedding_dim, self.units = vocabulary_size, embedding_dim, units
        self.cell, self.shared, self.temperature, self.dropout = cell, shared, temperature, dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")

        def encoder(name: str) -> keras.layers.Layer:
            return keras.layers.Bidirectional(recurrent_layer(cell, units, dropout=dropout), name=name)

        self.prompt_encoder = encoder("prompt_encoder")
        self.reply_encoder = self.prompt_encoder if shared else encoder("reply_encoder")
        self.prompt_head = keras.layers.Dense(2 * units, name="prompt_head")
        self.reply_head = keras.layers.Dense(2 * units, name="reply_head")

    def _encode(self, ids, encoder, head, training):
        vectors = head(encoder(self.embedding(ids), mask=ids != 0, training=training))
        return vectors / keras.ops.maximum(keras.ops.norm(vectors, axis=-1, keepdims=True), 1e-12)

    def encode_prompts(self, ids, training=False):
        return self._encode(ids, self.prompt_encoder, self.prompt_head, training)

    def encode_replies(self, ids, training=False):
        return self._encode(ids, self.reply_encoder, self.reply_head, training)

    def score(self, prompt_vectors, reply_vectors):
        """Row-wise scores of matching prompt and reply vectors [N, D] -> [N]."""
        return keras.ops.sum(prompt_vectors * reply_vectors, axis=-1) / self.temperature

    def call(self, inputs, training=False):
        prompts, replies = inputs
        return keras.ops.matmul(self.encode_prompts(prompts, training),
                                keras.ops.transpose(self.encode_replies(replies, training))) / self.temperature

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "shared": self.shared, "temperature": self.temperature, "dropout": self.dropout}


def pair_dataset(pairs: TextPairs, vocabulary: TokenIds, max_prompt: int, max_reply: int, batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """`((prompt_ids, reply_ids), row)` batches: each prompt's own reply is its row's column."""
    dataset = tf.data.Dataset.from_tensor_slices((pairs.sources, pairs.targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(pairs), seed=shuffle_seed, reshuffle_each_iteration=True)

    def encode(sources, targets):
        return ((vocabulary.encode(sources, max_prompt), vocabulary.encode(targets, max_reply)),
                tf.range(tf.shape(sources)[0]))

    return dataset.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


@dataclasses.dataclass
class Retriever:
    """A trained dual encoder with its vocabulary and the token lengths it reads."""

    model: DualEncoder
    vocabulary: TokenIds
    max_prompt: int
    max_reply: int

    def prompt_vectors(self, texts: list[str]) -> np.ndarray:
        return self._vectors(texts, self.model.encode_prompts, self.max_prompt)

    def reply_vectors(self, texts: list[str]) -> np.ndarray:
        return self._vectors(texts, self.model.encode_replies, self.max_reply)

    def _vectors(self, texts: list[str], encode, max_length: int) -> np.ndarray:
        parts = [np.asarray(encode(self.vocabulary.encode(tf.constant(texts[i:i + ENCODE_BATCH]), max_length)))
                 for i in range(0, len(texts), ENCODE_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 2 * self.model.units), np.float32)

    def scores(self, prompts: list[str], replies: list[str]) -> np.ndarray:
        """The score of each prompt with its own reply, [N]."""
        return np.asarray(self.model.score(self.prompt_vectors(prompts), self.reply_vectors(replies)))


def train_retriever(train: TextPairs, validation: TextPairs, config: ChatbotTrain, fitting: Fitting, *,
                    max_prompt: int) -> tuple[Retriever, int]:
    """Fits a dual encoder on `train` through `fitting`, ending with the weights of the epoch of best
    in-batch accuracy on `validation`; returns it and the epochs run."""
    if len(train) < 2:
        raise InputError(f"the dual encoder needs at least 2 training pairs (got {len(train)})")
    vocabulary = TokenIds(build_vocabulary(train.sources + train.targets, config.vocabulary_size))
    with fitting.scope():
        model = DualEncoder(vocabulary.size, config.embedding_dim, config.units, config.cell,
                            shared=not config.separate_encoders, temperature=config.retrieval_temperature,
                            dropout=config.dropout, name="dual_encoder")
        empty = tf.zeros([1, 1], tf.int64)
        model((empty, empty))  # built before fitting, as backups need
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="in_batch_accuracy")])
    # A dual encoder overfits its training pairs within a few epochs; it ends with the weights of
    # the epoch that ranked validation replies best (on Cornell the validation loss was lowest
    # one epoch before the in-batch accuracy peaked, 0.032 against 0.058 of 64).
    best = keras.callbacks.EarlyStopping(monitor="val_in_batch_accuracy", mode="max", patience=RETRIEVAL_PATIENCE,
                                         restore_best_weights=True)
    history = fitting.fit(
        model, pair_dataset(train, vocabulary, max_prompt, config.max_length, config.batch_size, config.seed),
        validation_data=pair_dataset(validation, vocabulary, max_prompt, config.max_length, config.batch_size),
        epochs=config.epochs, callbacks=[best])
    return Retriever(model, vocabulary, max_prompt, config.max_length), len(history.epoch)


def read_replies(path: Path) -> list[str]:
    """A `--replies` file: one candidate reply per line (UTF-8), blank lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the replies ({error.__class__.__name__}: {error})") from None
    return [line.strip() for line in lines if line.strip()]


def unique_replies(replies: list[str], source: str) -> list[str]:
    """`replies` without repeats (as the model tokenizes them), in first-seen order; an empty
    list is refused, naming `source`."""
    keys = [b" ".join(row) for row in tokenize(tf.constant(replies)).to_list()] if replies else []
    seen: dict[bytes, str] = {}
    for key, reply in zip(keys, replies):
        if key and key not in seen:
            seen[key] = reply
    if not seen:
        raise InputError(f"{source}: no candidate replies, so the index would be empty")
    return list(seen.values())


def choose_threshold(true_scores: np.ndarray, other_scores: np.ndarray) -> float:
    """The score that best tells prompts' own replies (`true_scores`) from other replies
    (`other_scores`): the one maximizing the true-positive minus the false-positive rate
    (Youden's J), the lowest of equals. A retrieved reply scoring at least this fits its prompt."""
    true_scores, other_scores = np.asarray(true_scores, np.float64), np.asarray(other_scores, np.float64)
    if len(true_scores) == 0 or len(other_scores) == 0:
        raise InputError("choosing the hybrid threshold needs scores of true and of other replies")
    candidates = np.unique(np.concatenate([true_scores, other_scores]))
    true_rate = 1.0 - np.searchsorted(np.sort(true_scores), candidates, side="left") / len(true_scores)
    false_rate = 1.0 - np.searchsorted(np.sort(other_scores), candidates, side="left") / len(other_scores)
    return float(candidates[int(np.argmax(true_rate - false_rate))])


def validation_threshold(retriever: Retriever, validation: TextPairs, seed: int) -> float:
    """`choose_threshold` on validation: each prompt with its own reply, and with another prompt's."""
    if len(validation) < 2:
        raise InputError("choosing the hybrid threshold needs at least 2 validation pairs")
    shift = np.random.default_rng(seed).integers(1, len(validation), len(validation))
    others = [validation.targets[(index + step) % len(validation)] for index, step in enumerate(shift)]
    return choose_threshold(retriever.scores(validation.sources, validation.targets),
                            retriever.scores(validation.sources, others))


class RetrievalServer(tf.Module):
    """The retrieval half of an export: the dual encoder, its vocabulary and the encoded candidates."""

    def __init__(self, retriever: Retriever, replies: list[str]):
        super().__init__(name="retrieval")
        if not replies:
            raise InputError("the reply index is empty: nothing to answer with")
        self.model, self.vocabulary = retriever.model, retriever.vocabulary
        self.max_prompt, self.max_reply = retriever.max_prompt, retriever.max_reply
        self.replies = tf.constant(replies)
        self.reply_vectors = tf.Variable(retriever.reply_vectors(replies), trainable=False, name="reply_vectors")

    def best(self, prompts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(reply, score) of the best-scoring candidate for each prompt, [N] each."""
        vectors = self.model.encode_prompts(self.vocabulary.encode(prompts, self.max_prompt))
        scores = tf.matmul(vectors, self.reply_vectors, transpose_b=True) / self.model.temperature
        best = tf.argmax(scores, axis=-1)
        return tf.gather(self.replies, best), tf.reduce_max(scores, axis=-1)

    def rank(self, prompts: tf.Tensor, replies: tf.Tensor) -> tf.Tensor:
        """The score of each prompt with its given reply, [N]."""
        return self.model.score(self.model.encode_prompts(self.vocabulary.encode(prompts, self.max_prompt)),
                                self.model.encode_replies(self.vocabulary.encode(replies, self.max_reply)))
