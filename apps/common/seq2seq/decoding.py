"""Generating target ids from a `Seq2Seq` model in TensorFlow ops.

Every strategy is a `tf.while_loop` over `Decoder.step`, so it traces into a
`tf.function` and runs inside an exported SavedModel. Each stops after
`max_length` tokens or when every sequence has produced [END]; a finished
sequence keeps producing [END], so the ids of every strategy read the same
way (`TokenIds.decode` stops at the first [END]).

Each returns `(ids [batch, steps] int64, attention weights [batch, steps, source_time])`.
"""

from __future__ import annotations

import tensorflow as tf

from apps.common.text import END, PAD, RESERVED_TOKENS, START, UNK

START_ID = RESERVED_TOKENS.index(START)
END_ID = RESERVED_TOKENS.index(END)
_NEVER = -1e9


def _banned_logits(logits: tf.Tensor, banned_ids: tuple[int, ...]) -> tf.Tensor:
    """`logits` with the given ids made (practically) impossible."""
    vocabulary_size = tf.shape(logits)[-1]
    banned = tf.reduce_any(
        tf.one_hot(list(banned_ids), vocabulary_size, on_value=True, off_value=False, dtype=tf.bool),
        axis=0,
    )
    return tf.where(banned, tf.cast(_NEVER, logits.dtype), logits)


# Padding and [START] are never targets in training, so their logits mean nothing.
_NOT_GENERATED = (RESERVED_TOKENS.index(PAD), START_ID)


def block_repeated_ngrams(logits: tf.Tensor, history: tf.Tensor, n: int) -> tf.Tensor:
    """`logits` `[rows, vocabulary]` with every token banned that would repeat an n-gram.

    A token is banned for row i when the last `n - 1` tokens of `history[i]`
    (`[rows, steps]`, the tokens generated so far) followed by it already
    occur in `history[i]`. `n=0` blocks nothing; `n=1` bans every token
    already generated.
    """
    if n < 1:
        return logits
    steps = tf.shape(history)[1]

    def blocked():
        windows = tf.signal.frame(history, n, 1, axis=-1)  # [rows, steps - n + 1, n]
        prefix = history[:, steps - (n - 1):]
        repeats = tf.reduce_all(tf.equal(windows[:, :, :-1], prefix[:, None, :]), axis=-1)
        rows = tf.broadcast_to(
            tf.range(tf.shape(history, out_type=tf.int64)[0])[:, None], tf.shape(repeats)
        )
        indices = tf.reshape(tf.stack([rows, windows[:, :, -1]], axis=-1), [-1, 2])
        banned = tf.scatter_nd(
            indices, tf.reshape(tf.cast(repeats, tf.int32), [-1]), tf.shape(logits, out_type=tf.int64)
        )
        return tf.where(banned > 0, tf.cast(_NEVER, logits.dtype), logits)

    return tf.cond(steps >= n, blocked, lambda: logits)


def _encode(model, source_ids):
    source_ids = tf.convert_to_tensor(source_ids)
    encoder_outputs, states = model.encoder(source_ids, training=False)
    return encoder_outputs, source_ids, list(states)


def _step_loop(model, source_ids, max_length, choose, no_repeat_ngram=0):
    """Shared loop of greedy and sampling: `choose(logits) -> [batch] ids`."""
    encoder_outputs, source_ids, states = _encode(model, source_ids)
    batch = tf.shape(source_ids)[0]
    tokens = tf.fill([batch], tf.constant(START_ID, tf.int64))
    finished = tf.zeros([batch], tf.bool)
    history = tf.zeros([batch, 0], tf.int64)
    weights = tf.TensorArray(tf.float32, size=0, dynamic_size=True)

    def condition(step, tokens, states, finished, history, weights):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(step, tokens, states, finished, history, weights):
        logits, states, step_weights = model.decoder.step(
            tokens, encoder_outputs, source_ids, states
        )
        logits = _banned_logits(tf.cast(logits, tf.float32), _NOT_GENERATED)
        logits = block_repeated_ngrams(logits, history, no_repeat_ngram)
        chosen = tf.where(finished, tf.constant(END_ID, tf.int64), choose(logits))
        finished = tf.logical_or(finished, tf.equal(chosen, END_ID))
        return (
            step + 1,
            chosen,
            states,
            finished,
            tf.concat([history, chosen[:, None]], axis=1),
            weights.write(step, tf.cast(step_weights, tf.float32)),
        )

    loop_vars = (tf.constant(0), tokens, states, finished, history, weights)
    invariants = (
        tf.TensorShape([]), tf.TensorShape([None]), [tf.TensorShape([None, None])] * len(states),
        tf.TensorShape([None]), tf.TensorShape([None, None]), tf.TensorShape(None),
    )
    _, _, _, _, history, weights = tf.while_loop(
        condition, body, loop_vars, shape_invariants=invariants
    )
    return history, _stacked_weights(weights, batch, tf.shape(source_ids)[1])


def _stack(array: tf.TensorArray, empty_shape) -> tf.Tensor:
    """`array.stack()`, or zeros of `empty_shape` when the loop wrote nothing (an empty batch
    is finished before the first step, and an empty TensorArray of unknown shape cannot stack)."""
    return tf.cond(array.size() > 0, array.stack, lambda: tf.zeros(empty_shape, array.dtype))


def _stacked_weights(array: tf.TensorArray, batch, source_time) -> tf.Tensor:
    stacked = tf.reshape(_stack(array, [0, batch, source_time]), [-1, batch, source_time])
    return tf.transpose(stacked, [1, 0, 2])


def greedy_decode(model, source_ids, max_length, no_repeat_ngram=0):
    """The most likely next token at every step (`no_repeat_ngram`: see `block_repeated_ngrams`)."""
    return _step_loop(model, source_ids, max_length, lambda logits: tf.argmax(logits, -1),
                      no_repeat_ngram)


def sample_decode(model, source_ids, max_length, temperature=1.0, top_k=0, top_p=1.0, seed=None,
                  no_repeat_ngram=0):
    """Sampling from the softmax of `logits / temperature`, optionally truncated.

    Args:
        temperature: > 0; below 1 sharpens, above 1 flattens the distribution.
        top_k: Keep only the `top_k` most likely tokens (0: all).
        top_p: Nucleus sampling: keep the smallest set of most likely tokens
            whose probability reaches `top_p` (1.0: all).
        seed: Optional integer seed of the sampling op.
        no_repeat_ngram: See `block_repeated_ngrams`.
    """
    temperature = tf.cast(temperature, tf.float32)
    top_k = tf.cast(top_k, tf.int32)
    top_p = tf.cast(top_p, tf.float32)

    def choose(logits):
        # [UNK] stands for many words; as a reply it reads as nothing.
        logits = _banned_logits(logits, (RESERVED_TOKENS.index(UNK),)) / temperature
        logits = _truncate_top_k(logits, top_k)
        logits = _truncate_top_p(logits, top_p)
        return tf.random.categorical(logits, 1, dtype=tf.int64, seed=seed)[:, 0]

    return _step_loop(model, source_ids, max_length, choose, no_repeat_ngram)


def _truncate_top_k(logits, top_k):
    vocabulary_size = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)
    kth_largest = tf.math.top_k(logits, k).values[:, -1:]
    return tf.where(logits < kth_largest, tf.cast(_NEVER, logits.dtype), logits)


def _truncate_top_p(logits, top_p):
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    cumulative = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
    # A token stays when the more likely ones before it sum to less than top_p
    # (so the most likely token always stays).
    kept = tf.cast(cumulative < top_p, tf.int32)
    last_kept = tf.maximum(tf.reduce_sum(kept, axis=-1, keepdims=True) - 1, 0)
    threshold = tf.gather(sorted_logits, last_kept, batch_dims=1)
    return tf.where(logits < threshold, tf.cast(_NEVER, logits.dtype), logits)


def beam_search_decode(model, source_ids, max_length, beam_width=4, length_penalty=0.6,
                       no_repeat_ngram=0):
    """Beam search, keeping the `beam_width` best partial sequences per input.

    The winner maximizes log P(y | x) / lp(y) with GNMT's length normalization
    lp(y) = ((5 + |y|) / 6) ** length_penalty (|y| counts the [END]);
    `length_penalty=0` compares raw log-probabilities. With `beam_width=1`
    it is greedy decoding. `no_repeat_ngram` blocks repeated n-grams within
    each beam (see `block_repeated_ngrams`).
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}.")
    encoder_outputs, source_ids, states = _encode(model, source_ids)
    batch = tf.shape(source_ids)[0]
    source_time = tf.shape(source_ids)[1]
    width = beam_width

    def tile(tensor):
        return tf.repeat(tensor, width, axis=0)

    encoder_outputs, source_ids = tile(encoder_outputs), tile(source_ids)
    states = [tile(state) for state in states]
    # Only the first beam is live at first, so the beams start out different.
    scores = tf.tile(
        tf.concat([tf.zeros([1]), tf.fill([width - 1], _NEVER)], axis=0)[None], [batch, 1]
    )
    tokens = tf.fill([batch * width], tf.constant(START_ID, tf.int64))
    finished = tf.zeros([batch, width], tf.bool)
    lengths = tf.zeros([batch, width], tf.float32)
    history = tf.zeros([batch, width, 0], tf.int64)
    attention = tf.zeros([batch, width, 0, source_time], tf.float32)

    def regroup(tensor, beams):
        """Rows of `[batch·width, ...]` `tensor` reordered to the surviving `beams`."""
        shape = tf.shape(tensor)
        grouped = tf.reshape(tensor, tf.concat([[batch, width], shape[1:]], axis=0))
        return tf.reshape(tf.gather(grouped, beams, batch_dims=1), shape)

    def condition(step, tokens, states, scores, finished, lengths, history, attention):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(step, tokens, states, scores, finished, lengths, history, attention):
        logits, states, step_weights = model.decoder.step(
            tokens, encoder_outputs, source_ids, states
        )
        logits = _banned_logits(tf.cast(logits, tf.float32), _NOT_GENERATED)
        logits = block_repeated_ngrams(
            logits, tf.reshape(history, [batch * width, -1]), no_repeat_ngram
        )
        vocabulary_size = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, width, vocabulary_size])
        # A finished beam continues with [END] at no cost, keeping its score.
        only_end = tf.one_hot(END_ID, vocabulary_size, on_value=0.0, off_value=_NEVER)
        log_probs = tf.where(finished[..., None], only_end, log_probs)
        candidates = tf.reshape(scores[..., None] + log_probs, [batch, -1])
        scores, best = tf.math.top_k(candidates, k=width)
        beams = best // vocabulary_size
        chosen = tf.cast(best % vocabulary_size, tf.int64)
        was_finished = tf.gather(finished, beams, batch_dims=1)
        lengths = tf.gather(lengths, beams, batch_dims=1) + tf.cast(
            tf.logical_not(was_finished), tf.float32
        )
        finished = tf.logical_or(was_finished, tf.equal(chosen, END_ID))
        history = tf.concat(
            [tf.gather(history, beams, batch_dims=1), chosen[..., None]], axis=2
        )
        step_weights = tf.reshape(tf.cast(step_weights, tf.float32), [batch, width, 1, -1])
        attention = tf.concat(
            [tf.gather(attention, beams, batch_dims=1), step_weights], axis=2
        )
        states = [regroup(state, beams) for state in states]
        return (
            step + 1, tf.reshape(chosen, [-1]), states, scores, finished, lengths,
            history, attention,
        )

    loop_vars = (tf.constant(0), tokens, states, scores, finished, lengths, history, attention)
    invariants = (
        tf.TensorShape([]),
        tf.TensorShape([None]),
        [tf.TensorShape([None, None])] * len(states),
        tf.TensorShape([None, width]),
        tf.TensorShape([None, width]),
        tf.TensorShape([None, width]),
        tf.TensorShape([None, width, None]),
        tf.TensorShape([None, width, None, None]),
    )
    _, _, _, scores, _, lengths, history, attention = tf.while_loop(
        condition, body, loop_vars, shape_invariants=invariants
    )
    normalized = scores / tf.pow((5.0 + lengths) / 6.0, length_penalty)
    winner = tf.argmax(normalized, axis=-1, output_type=tf.int32)
    return (
        tf.gather(history, winner, batch_dims=1),
        tf.gather(attention, winner, batch_dims=1),
    )
