"""The encoder, attention and decoder layers of the attentional sequence-to-sequence model.

The encoder embeds the source ids and runs a bidirectional recurrent layer
(`gru_core.GRU` by default, via `apps.common.cells.recurrent_layer`); its last
forward and backward states, joined and projected, start the decoder. The
decoder runs its own recurrent layer over the target ids, then attends over
the encoder outputs with its recurrent output as the query (Luong's placement)
and predicts the next token from [output; context]. The score is additive
(Bahdanau: vᵀ·tanh(W₁q + W₂k)) or multiplicative (Luong's "general": qᵀ·W·k).

Id 0 is padding: source padding never receives attention weight (its score is
replaced by a very negative number before the softmax) and target padding is
left out of the loss and the accuracy.

With `copy=True` the decoder can also copy a source token (a pointer-generator,
See et al. 2017): a gate g = σ(w·[output; context] + b) mixes the output
softmax with the attention weights laid onto the target ids of the source's
tokens, P(w) = (1 − g)·softmax(logits)(w) + g·Σ_{i: source_i = w} a_i, and the
decoder returns log P as its logits. `set_copy_targets` fills the table from
source ids to target ids (the same word; reserved and unshared words copy
nothing). A reply that repeats a prompt's rare word then costs little after
that prompt and much after any other, which an output softmax alone learns
slowly.

`cell="lstm"` works too: an LSTM has two states (h, c); the encoder bridges
each of them separately and the decoder carries both. Decoding steps call the
recurrent layer's cell directly, so every cell type decodes the same way.

"""

from __future__ import annotations

import keras
from keras import ops

from apps.common.cells import recurrent_layer
from gru_core.tracing import tracing_for_a_file

ATTENTION_KINDS = ("bahdanau", "luong")
# Added to masked scores: exp() of it underflows to exactly 0 in float32, and
# unlike -inf it keeps a row of all-masked scores finite.
_MASKED_SCORE = -1e9
# Floor of a copying decoder's probabilities before the log: far below any
# real one, and it keeps log() finite where both parts give a token nothing.
_SMALLEST_PROBABILITY = 1e-30


def state_count(cell: str) -> int:
    """How many states the recurrent layer of `cell` carries: an LSTM's h and c, else one."""
    return 2 if cell == "lstm" else 1


@keras.saving.register_keras_serializable(package="gru_suite")
class Encoder(keras.layers.Layer):
    """Source ids -> (per-token outputs `[batch, time, 2·units]`, decoder initial states).

    Args:
        vocabulary_size: Number of source token ids.
        embedding_dim: Size of the token embeddings.
        units: Units of each direction of the recurrent layer, and of the
            decoder states it produces.
        cell: "gru", "lstm" or "rnn".
        dropout: Dropout on the embeddings and recurrent inputs.
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        units: int,
        cell: str = "gru",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim)
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.rnn = keras.layers.Bidirectional(
            recurrent_layer(cell, units, return_sequences=True, return_state=True)
        )
        self.bridges = [
            keras.layers.Dense(units, activation="tanh", name=f"bridge_{index}")
            for index in range(state_count(cell))
        ]

    def call(self, source_ids, training=False):
        mask = ops.not_equal(source_ids, 0)
        embedded = self.embedding_dropout(self.embedding(source_ids), training=training)
        outputs, *states = self.rnn(embedded, mask=mask, training=training)
        count = len(self.bridges)
        forward, backward = states[:count], states[count:]
        initial_states = [
            bridge(ops.concatenate([f, b], axis=-1))
            for bridge, f, b in zip(self.bridges, forward, backward)
        ]
        return outputs, initial_states

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="gru_suite")
class Attention(keras.layers.Layer):
    """Attention of queries over masked keys (which are also the values).

    Args:
        units: Size of the scoring space (additive) or of the queries
            (multiplicative: keys are projected to it).
        kind: "bahdanau" (additive) or "luong" (multiplicative, "general").

    Call arguments:
        query: `[batch, query_time, query_dim]`.
        keys: `[batch, key_time, key_dim]`.
        key_mask: Boolean `[batch, key_time]`; False positions get weight 0.

    Returns `(context [batch, query_time, key_dim], weights [batch, query_time, key_time])`.
    """

    def __init__(self, units: int, kind: str = "luong", **kwargs):
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"Unknown attention {kind!r}; expected one of {ATTENTION_KINDS}.")
        super().__init__(**kwargs)
        self.units = units
        self.kind = kind
        # The query's padding mask passes through; the key mask is an argument.
        self.supports_masking = True
        self.key_projection = keras.layers.Dense(units, use_bias=False, name="key_projection")
        if kind == "bahdanau":
            self.query_projection = keras.layers.Dense(units, use_bias=False, name="query_projection")
            self.score_vector = keras.layers.Dense(1, use_bias=False, name="score_vector")

    def scores(self, query, keys):
        projected_keys = self.key_projection(keys)
        if self.kind == "luong":
            return ops.matmul(query, ops.transpose(projected_keys, (0, 2, 1)))
        hidden = ops.tanh(
            ops.expand_dims(self.query_projection(query), 2)
            + ops.expand_dims(projected_keys, 1)
        )
        return ops.squeeze(self.score_vector(hidden), -1)

    def call(self, query, keys, key_mask):
        # The softmax is float32 under a mixed precision policy too: the mask's
        # score overflows float16, and its weights are served as float32.
        scores = ops.cast(self.scores(query, keys), "float32")
        scores = ops.where(ops.expand_dims(key_mask, 1), scores, _MASKED_SCORE)
        weights = ops.softmax(scores, axis=-1)
        return ops.matmul(ops.cast(weights, keys.dtype), keys), weights

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kind": self.kind}


@keras.saving.register_keras_serializable(package="gru_suite")
class Decoder(keras.layers.Layer):
    """Target ids (teacher forcing) or one token per step -> next-token logits.

    Args:
        vocabulary_size: Number of target token ids (the logits' size).
        embedding_dim: Size of the token embeddings.
        units: Units of the recurrent layer and of the attention.
        cell: "gru", "lstm" or "rnn".
        attention: "bahdanau" or "luong".
        dropout: Dropout on the embeddings and before the output projection.
        copy_from: 0, or the source vocabulary's size to copy source tokens
            from (see the module docstring).

    Call arguments take the source ids (0 = padding, never attended to).
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        units: int,
        cell: str = "gru",
        attention: str = "luong",
        dropout: float = 0.0,
        copy_from: int = 0,
        **kwargs,
    ):
        if copy_from < 0:
            raise ValueError(f"copy_from must be >= 0, got {copy_from}.")
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.attention_kind = attention
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim)
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.rnn = recurrent_layer(cell, units, return_sequences=True, return_state=True)
        self.attention = Attention(units, attention)
        self.combine = keras.layers.Dense(units, activation="tanh", name="combine")
        self.output_dropout = keras.layers.Dropout(dropout)
        # The output distribution is float32 under a mixed precision policy too.
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")
        self.copy_from = copy_from
        if copy_from:
            # Starts mostly generating (g ≈ 0.12), so the output prior still holds.
            self.copy_gate = keras.layers.Dense(
                1, activation="sigmoid", bias_initializer=keras.initializers.Constant(-2.0),
                dtype="float32", name="copy_gate",
            )
            self.copy_targets = self.add_weight(
                shape=(copy_from,), initializer="zeros", dtype="int32", trainable=False,
                name="copy_targets",
            )

    def _predict(self, outputs, encoder_outputs, source_ids, training=False):
        context, weights = self.attention(outputs, encoder_outputs, ops.not_equal(source_ids, 0))
        joined = ops.concatenate([outputs, context], axis=-1)
        logits = self.logits(self.output_dropout(self.combine(joined), training=training))
        if not self.copy_from:
            return logits, weights
        copied = copy_distribution(
            ops.cast(weights, "float32"), ops.take(self.copy_targets, source_ids), self.vocabulary_size)
        # `copied` sums to 1, or to 0 where the source has nothing to copy: the
        # gate closes there, so every row stays a distribution.
        gate = self.copy_gate(joined) * ops.sum(copied, axis=-1, keepdims=True)
        probabilities = (1.0 - gate) * ops.softmax(logits, axis=-1) + gate * copied
        return ops.log(ops.maximum(probabilities, _SMALLEST_PROBABILITY)), weights

    def call(self, target_ids, encoder_outputs, source_ids, initial_states, training=False):
        """Teacher forcing: `[batch, time]` ids -> (logits, final states, weights)."""
        embedded = self.embedding_dropout(self.embedding(target_ids), training=training)
        outputs, *states = self.rnn(
            embedded,
            initial_state=list(initial_states),
            mask=ops.not_equal(target_ids, 0),
            training=training,
        )
        logits, weights = self._predict(outputs, encoder_outputs, source_ids, training)
        return logits, states, weights

    def step(self, token_ids, encoder_outputs, source_ids, states):
        """One decoding step: `[batch]` ids -> (logits `[batch, vocab]`, states, weights `[batch, key_time]`)."""
        output, states = self.rnn.cell(self.embedding(token_ids), list(states))
        logits, weights = self._predict(
            ops.expand_dims(output, 1), encoder_outputs, source_ids
        )
        return logits[:, 0], list(states), weights[:, 0]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "attention": self.attention_kind,
            "dropout": self.dropout,
            "copy_from": self.copy_from,
        }


def copy_distribution(weights, copy_ids, vocabulary_size: int):
    """Attention `weights` `[batch, query_time, source_time]` laid onto target ids.

    `copy_ids` `[batch, source_time]` holds each source position's target id,
    0 where it copies nothing. Weights of copying positions are renormalized,
    so each row sums to 1, or to 0 where no position copies.
    Returns `[batch, query_time, vocabulary_size]`.
    """
    weights = weights * ops.cast(ops.expand_dims(ops.not_equal(copy_ids, 0), 1), weights.dtype)
    weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
    if tracing_for_a_file():
        # LiteRT's and ONNX's scatters need not sum repeated ids (a word twice in the source).
        return ops.matmul(weights, ops.one_hot(copy_ids, vocabulary_size, dtype=weights.dtype))
    shape = ops.shape(weights)
    rows = ops.broadcast_to(ops.reshape(ops.arange(shape[0]), (-1, 1, 1)), shape)
    queries = ops.broadcast_to(ops.reshape(ops.arange(shape[1]), (1, -1, 1)), shape)
    ids = ops.broadcast_to(ops.expand_dims(ops.cast(copy_ids, rows.dtype), 1), shape)
    indices = ops.stack([rows, queries, ids], axis=-1)
    return ops.scatter(indices, weights, (shape[0], shape[1], vocabulary_size))  # repeated ids add up
