"""Padding batches to a few fixed lengths, for training steps that XLA compiles.

XLA compiles a training step once per input shape. A batch padded to its
own longest example has a new shape at almost every new length, so each
one recompiles; padded up to the next of a few boundaries, an epoch needs
one compilation per boundary. The apps whose batches vary in length
(sentiment, transcriber, translation and chatbot) pad this way when
`Fitting.compiles_with_xla` says the step is compiled, and to the batch's
longest example otherwise (less padding, fewer recurrent steps on a CPU).
"""

from __future__ import annotations

import tensorflow as tf

# The smallest boundary: shorter batches are padded up to it.
SMALLEST_BOUNDARY = 8


def length_boundaries(max_length: int, smallest: int = SMALLEST_BOUNDARY) -> list[int]:
    """Powers of two from `smallest` below `max_length`, then `max_length`: at most
    log2(max_length / smallest) + 2 lengths, none padding a batch to more than twice its longest."""
    if max_length < 1 or smallest < 1:
        raise ValueError(f"Need max_length >= 1 and smallest >= 1, got {max_length} and {smallest}.")
    boundaries = []
    boundary = smallest
    while boundary < max_length:
        boundaries.append(boundary)
        boundary *= 2
    return boundaries + [max_length]


def pad_to_boundary(tensor: tf.Tensor, axis: int, boundaries: list[int]) -> tf.Tensor:
    """`tensor` zero-padded along `axis` to the first of `boundaries` that holds its length.

    A length beyond the last boundary is left as it is.
    """
    length = tf.shape(tensor)[axis]
    bounds = tf.constant(boundaries, tf.int32)
    fits = tf.boolean_mask(bounds, bounds >= length)
    target = tf.cond(tf.size(fits) > 0, lambda: fits[0], lambda: length)
    paddings = [[0, 0]] * len(tensor.shape)
    paddings[axis] = [0, target - length]
    return tf.pad(tensor, paddings)
