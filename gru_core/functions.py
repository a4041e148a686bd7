"""`tf.function`s for the exports that convert one (`gru_core.litert`, `gru_core.onnx`)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


def model_function(model: keras.Model, input_signature: Sequence[tf.TensorSpec] | None = None):
    """A `tf.function` calling `model` in inference mode on its flattened inputs.

    `input_signature`: one `tf.TensorSpec` per input of `model`, in
    `keras.tree.flatten(model.input)` order (default: the inputs' own shapes,
    batch and time dynamic).
    """
    try:
        structure = model.input
    except AttributeError:  # a Sequential model never called yet: one input
        structure = model.inputs[0]
    if input_signature is None:
        input_signature = [tf.TensorSpec(tensor.shape, tensor.dtype, name=tensor.name)
                           for tensor in keras.tree.flatten(structure)]

    @tf.function(input_signature=list(input_signature))
    def run(*inputs):
        return model(keras.tree.pack_sequence_as(structure, inputs), training=False)

    return run


def traced_anew(function):
    """A new `tf.function` of `function`'s Python code and input signature: traced again, under
    whatever context the caller sets (a `tf.function` keeps its first traces)."""
    return tf.function(function.python_function, input_signature=function.input_signature)
