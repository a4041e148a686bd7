"""Weight conversion between `gru_core.GRU` and `keras.layers.GRU`.

Keras's GRU computes h_t = z·h_{t-1} + (1 − z)·h̃_t, so its update gate is
this project's 1 − z. With a gate activation f where f(−a) = 1 − f(a)
(sigmoid, hard_sigmoid), negating the z-columns of kernel, recurrent kernel and
bias turns one into the other. Only `reset_after=False` matches these
equations: there the reset gate multiplies the state before the product.
"""

from __future__ import annotations

import keras
import numpy as np

from gru_core.cell import _is_mirror_symmetric
from gru_core.layer import GRU

# Configuration keys the two layers share, copied across on conversion.
_SHARED_CONFIG = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "dtype",
)


def _negate_update_gate(weights: list[np.ndarray], units: int) -> list[np.ndarray]:
    converted = []
    for weight in weights:
        weight = np.array(weight, copy=True)
        weight[..., :units] *= -1.0
        converted.append(weight)
    return converted


def _check_convertible(layer) -> None:
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built, so it has no weights to "
            "convert; call it on an input first."
        )
    if not _is_mirror_symmetric(layer.recurrent_activation):
        raise ValueError(
            "Weight conversion needs a gate activation with f(-x) = 1 - f(x) "
            "(sigmoid, hard_sigmoid); got recurrent_activation="
            f"{keras.activations.serialize(layer.recurrent_activation)!r}."
        )


def _input_dim(layer) -> int:
    return int(layer.cell.kernel.shape[0])


def _build_shape(layer) -> tuple:
    # A stateful RNN can only be built with its fixed batch size.
    batch = int(layer.states[0].shape[0]) if layer.stateful else None
    return (batch, None, _input_dim(layer))


def to_keras_gru(layer: GRU) -> keras.layers.GRU:
    """A `keras.layers.GRU(reset_after=False)` that computes what `layer` does."""
    if not isinstance(layer, GRU):
        raise TypeError(f"Expected a gru_core.GRU, got {type(layer).__name__}.")
    _check_convertible(layer)
    config = {key: layer.get_config()[key] for key in _SHARED_CONFIG}
    keras_layer = keras.layers.GRU(reset_after=False, use_cudnn=False, **config)
    keras_layer.build(_build_shape(layer))
    keras_layer.set_weights(_negate_update_gate(layer.get_weights(), layer.units))
    return keras_layer


def from_keras_gru(layer: keras.layers.GRU) -> GRU:
    """A `gru_core.GRU` that computes what a Keras `GRU(reset_after=False)` does."""
    if not isinstance(layer, keras.layers.GRU):
        raise TypeError(
            f"Expected a keras.layers.GRU, got {type(layer).__name__}."
        )
    if layer.reset_after:
        raise ValueError(
            "Only keras.layers.GRU(reset_after=False) follows these equations: "
            "with reset_after=True the reset gate is applied after the "
            "recurrent product and there is a second bias, which no weights "
            "of gru_core.GRU can reproduce."
        )
    _check_convertible(layer)
    config = {key: layer.get_config()[key] for key in _SHARED_CONFIG}
    core_layer = GRU(**config)
    core_layer.build(_build_shape(layer))
    core_layer.set_weights(_negate_update_gate(layer.get_weights(), layer.units))
    return core_layer
