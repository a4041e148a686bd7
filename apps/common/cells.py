"""The recurrent layer each app builds, chosen by name for GRU/LSTM/RNN comparisons."""

from __future__ import annotations

import keras

import gru_core

CELLS = {
    "gru": gru_core.GRU,
    "lstm": keras.layers.LSTM,
    "rnn": keras.layers.SimpleRNN,
}


def recurrent_layer(cell: str, units: int, **kwargs) -> keras.layers.Layer:
    """`gru_core.GRU(units, **kwargs)`, or Keras's LSTM / SimpleRNN for `cell="lstm"|"rnn"`."""
    try:
        layer_class = CELLS[cell]
    except KeyError:
        raise ValueError(
            f"Unknown cell {cell!r}; expected one of {sorted(CELLS)}."
        ) from None
    return layer_class(units, **kwargs)
