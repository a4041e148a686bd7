"""`Seq2Seq`, the attentional encoder-decoder built from `apps.common.seq2seq.layers`, and its training pieces.

Id 0 is padding: target padding is left out of the loss and the accuracy.

Before training, `set_output_prior` starts the output layer's bias at the log
frequencies of the training targets. With a zero bias the model's cheapest way
to the (very skewed) unigram distribution of a real corpus is to drive the
decoder's tanh/sigmoid units into saturation, to one constant vector that the
output kernel maps to the unigram logits; saturated units pass no gradient, so
training then sits at the unigram loss for good (accuracy frozen at the share
of the commonest token, empty or constant decodes). Starting at the unigram
removes that pull.

With `contrastive_weight` > 0, training adds a ranking term: each reply's
log-likelihood after its own source is pushed above its log-likelihood after
the batch's next source (a logistic loss on the difference). Teacher forcing
alone lets a chatbot become a fluent language model that hardly reads the
prompt; the term rewards exactly what ranking replies by the prompt needs.

`build_seq2seq` builds and compiles one from the settings `gru-suite train translation|chatbot` fill.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.common.seq2seq.layers import Decoder, Encoder
from apps.common.seq2seq.settings import Seq2SeqTrain
from apps.common.text import RESERVED_TOKENS


@keras.saving.register_keras_serializable(package="gru_suite")
class Seq2Seq(keras.Model):
    """The attentional encoder-decoder, trained with teacher forcing.

    Call it on `(source_ids, target_input_ids)` (both `[batch, time]` int,
    0 = padding) for next-token logits `[batch, target_time, target_vocab]`.
    `apps.common.seq2seq.decoding` generates from it.

    Args:
        source_vocabulary_size, target_vocabulary_size: Vocabulary sizes.
        embedding_dim: Size of both embeddings.
        units: Units of the decoder and of each encoder direction.
        cell: "gru" (gru_core.GRU, default), "lstm" or "rnn".
        attention: "luong" (multiplicative, default) or "bahdanau" (additive).
        dropout: Dropout rate in encoder and decoder.
        contrastive_weight: Weight of the ranking term added to the training
            loss (see the module docstring; 0 = off). It costs a second
            forward and backward pass per batch; validation loss leaves it out.
        copy: Whether the decoder can copy source tokens (see the module
            docstring); `set_copy_targets` then says which target id each
            source id copies as.
    """

    def __init__(
        self,
        source_vocabulary_size: int,
        target_vocabulary_size: int,
        embedding_dim: int = 128,
        units: int = 128,
        cell: str = "gru",
        attention: str = "luong",
        dropout: float = 0.1,
        contrastive_weight: float = 0.0,
        copy: bool = False,
        **kwargs,
    ):
        if contrastive_weight < 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {contrastive_weight}.")
        super().__init__(**kwargs)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.attention = attention
        self.dropout = dropout
        self.contrastive_weight = contrastive_weight
        self.copy = copy
        self.encoder = Encoder(source_vocabulary_size, embedding_dim, units, cell, dropout)
        self.decoder = Decoder(
            target_vocabulary_size, embedding_dim, units, cell, attention, dropout,
            copy_from=source_vocabulary_size if copy else 0,
        )

    def build(self, input_shape=None):
        """Builds every layer on token ids (Keras's default build would call the model on floats,
        which the embeddings refuse, and a `.keras` file then reloads into unbuilt layers)."""
        ids = ops.ones((1, 2), "int32")
        encoder_outputs, states = self.encoder(ids)
        self.decoder(ids, encoder_outputs, ids, states)
        self.built = True

    def call(self, inputs, training=False):
        source_ids, target_ids = inputs
        encoder_outputs, states = self.encoder(source_ids, training=training)
        logits, _, _ = self.decoder(
            target_ids, encoder_outputs, source_ids, states, training=training
        )
        return logits

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training or not self.contrastive_weight:
            return loss
        return loss + self.contrastive_weight * self.mismatch_loss(x, y, y_pred)

    def mismatch_loss(self, inputs, target_ids, logits):
        """Mean of softplus(log P(y | x') − log P(y | x)) over the batch's rows.

        x' is the next row's source (the batch rolled by one); rows whose
        source equals x' (duplicates, a batch of one) are left out.
        """
        source_ids, target_input_ids = inputs
        mismatched_sources = ops.roll(source_ids, 1, axis=0)
        mismatched = self((mismatched_sources, target_input_ids), training=True)
        margin = reply_log_likelihood(target_ids, logits) - reply_log_likelihood(target_ids, mismatched)
        differs = ops.cast(ops.any(ops.not_equal(source_ids, mismatched_sources), axis=-1), margin.dtype)
        return ops.sum(ops.softplus(-margin) * differs) / ops.maximum(ops.sum(differs), 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "attention": self.attention,
            "dropout": self.dropout,
            "contrastive_weight": self.contrastive_weight,
            "copy": self.copy,
        }


def set_copy_targets(model: Seq2Seq, source_words: list[str], target_words: list[str]) -> np.ndarray:
    """Fills a copying model's table: source id -> the target id of the same word, or 0.

    Reserved tokens ([PAD], [UNK], [START], [END]) and words the target
    vocabulary lacks copy nothing. Returns the table.
    """
    if not model.copy:
        raise ValueError("The model does not copy (copy=False).")
    if len(source_words) != model.source_vocabulary_size:
        raise ValueError(
            f"Expected {model.source_vocabulary_size} source words, got {len(source_words)}."
        )
    target_ids = {word: index for index, word in enumerate(target_words)}
    table = np.array([
        0 if word in RESERVED_TOKENS else target_ids.get(word, 0) for word in source_words
    ], np.int32)
    model.decoder.copy_targets.assign(table)
    return table


def reply_log_likelihood(target_ids, logits):
    """Summed log-likelihood of each row's non-padding targets: `[batch]` (nats)."""
    losses = keras.losses.sparse_categorical_crossentropy(target_ids, logits, from_logits=True)
    return -ops.sum(losses * ops.cast(ops.not_equal(target_ids, 0), losses.dtype), axis=-1)


@keras.saving.register_keras_serializable(package="gru_suite")
def masked_cross_entropy(target_ids, logits):
    """Mean next-token cross-entropy over the non-padding targets (nats per token)."""
    losses = keras.losses.sparse_categorical_crossentropy(target_ids, logits, from_logits=True)
    mask = ops.cast(ops.not_equal(target_ids, 0), losses.dtype)
    return ops.sum(losses * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="gru_suite")
def masked_accuracy(target_ids, logits):
    """Share of non-padding targets predicted exactly (teacher forcing)."""
    predicted = ops.cast(ops.argmax(logits, axis=-1), target_ids.dtype)
    mask = ops.cast(ops.not_equal(target_ids, 0), "float32")
    hits = ops.cast(ops.equal(predicted, target_ids), "float32") * mask
    return ops.sum(hits) / ops.maximum(ops.sum(mask), 1.0)


def target_token_counts(dataset, vocabulary_size: int) -> np.ndarray:
    """How often each target id occurs as a non-padding output of `dataset`.

    `dataset` yields `(inputs, target_output_ids)` batches, as `make_dataset`
    builds them ([END] included, padding left out).
    """
    counts = np.zeros(vocabulary_size, np.int64)
    for _, targets in dataset:
        ids = np.asarray(targets).reshape(-1)
        counts += np.bincount(ids[ids != 0], minlength=vocabulary_size)[:vocabulary_size]
    return counts


def set_output_prior(model: Seq2Seq, counts, smoothing: float = 1.0) -> np.ndarray:
    """Sets the output layer's bias to the log of the smoothed target frequencies.

    With the hidden layers' contribution near zero at initialization, the
    model then starts out predicting the training unigram distribution
    instead of a uniform one (see the module docstring for why that matters).
    Padding (id 0) is never a target and gets the smallest bias. Returns the bias.
    """
    counts = np.asarray(counts, np.float64)
    if counts.shape != (model.target_vocabulary_size,):
        raise ValueError(
            f"Expected {model.target_vocabulary_size} counts, got shape {counts.shape}."
        )
    smoothed = counts + smoothing
    smoothed[0] = smoothing
    bias = np.log(smoothed / smoothed.sum()).astype("float32")
    model.decoder.logits.bias.assign(bias)
    return bias


def build_seq2seq(source_vocabulary_size: int, target_vocabulary_size: int, config: Seq2SeqTrain) -> Seq2Seq:
    """A compiled `Seq2Seq` (Adam with gradient clipping, masked loss and accuracy), built.

    From `config` (what `gru-suite train translation|chatbot` fills):
    `embedding_dim`, `units`, `cell`, `attention`, `dropout`,
    `contrastive_weight`, `copy` and Adam's `learning_rate`.
    """
    model = Seq2Seq(
        source_vocabulary_size,
        target_vocabulary_size,
        embedding_dim=config.embedding_dim,
        units=config.units,
        cell=config.cell,
        attention=config.attention,
        dropout=config.dropout,
        contrastive_weight=config.contrastive_weight,
        copy=config.copy,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=5.0),
        loss=masked_cross_entropy,
        metrics=[masked_accuracy],
    )
    dummy = np.ones((1, 2), "int64")
    model((dummy, dummy))
    return model


def token_log_likelihood(model: Seq2Seq, dataset) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, number of target tokens) over `dataset`.

    `exp(nll / tokens)` is the per-token perplexity.
    """
    total, count = 0.0, 0

    @tf.function(reduce_retracing=True, autograph=False)
    def batch_sums(inputs, targets):
        logits = model(inputs, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        mask = tf.cast(targets != 0, losses.dtype)
        return tf.reduce_sum(losses * mask), tf.reduce_sum(mask)

    for inputs, targets in dataset:
        nll, tokens = batch_sums(inputs, targets)
        total += float(nll)
        count += int(tokens)
    return total, count
