"""Every use of Keras's private API in this project, in one place.

Keras exports no public name for these; each is used because the public API
has no equivalent. `check()` reports any that a Keras upgrade has moved or
renamed (a test calls it), so an upgrade fails with a message that names
what changed instead of deep inside a training.

- `run_time_loop`: the time loop `keras.layers.RNN` itself runs (masking,
  `go_backwards`, `unroll`), reused by `gru_core.GRU`'s generic path.
- `DropoutRNNCell`: Keras's dropout-mask bookkeeping for RNN cells (one mask
  per sequence), mixed into `gru_core.GRUCell`.
- `RNN.inner_loop`: the method `keras.layers.RNN.call` runs the time loop
  through; `gru_core.GRU` overrides it to run its fused loop.
- `flatten_layers`: Keras's walk over every tracked sub-layer, which also
  enters custom layers and nested models.
- `gradient_may_be_recorded`: whether a TensorFlow gradient tape could record
  the ops run now, eagerly or while a `tf.function` is traced (TensorFlow's
  `tensorflow.python.eager.record`; not Keras's, but kept here with the rest),
  which tells `gru_core.GRU` whether its inference recurrence may run.
- `resumed_epoch`: the epoch `keras.callbacks.BackupAndRestore` tells a
  training loop to resume from, through a private model attribute.
"""

from __future__ import annotations

import inspect

import keras
from keras.src.backend import rnn as run_time_loop
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

INNER_LOOP = "inner_loop"
_FLATTEN_LAYERS = "_flatten_layers"
_INITIAL_EPOCH = "_initial_epoch"

__all__ = [
    "DropoutRNNCell", "INNER_LOOP", "check", "flatten_layers",
    "gradient_may_be_recorded", "resumed_epoch", "run_time_loop",
]


def gradient_may_be_recorded() -> bool:
    """Whether a gradient tape could record the TensorFlow ops run now."""
    # Imported here: the module needs TensorFlow, and only the fused loop asks.
    from tensorflow.python.eager import record

    return bool(record.could_possibly_record())


def flatten_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """`layer` and every layer tracked inside it, recursively."""
    return list(getattr(layer, _FLATTEN_LAYERS)(include_self=True, recursive=True))


def resumed_epoch(model: keras.Model) -> int:
    """The epoch BackupAndRestore restored `model` to (0 when it restored nothing)."""
    return getattr(model, _INITIAL_EPOCH, None) or 0


def check() -> list[str]:
    """What of the above this Keras no longer has, one line each (empty when all is there)."""
    problems = []
    if not callable(run_time_loop):
        problems.append("keras.src.backend.rnn is no longer a function")
    for method in ("get_dropout_mask", "get_recurrent_dropout_mask"):
        if not callable(getattr(DropoutRNNCell, method, None)):
            problems.append(f"keras.src.layers.rnn.dropout_rnn_cell.DropoutRNNCell.{method} is gone")
    inner_loop = getattr(keras.layers.RNN, INNER_LOOP, None)
    if inner_loop is None:
        problems.append(f"keras.layers.RNN.{INNER_LOOP} is gone: gru_core.GRU's override would never run")
    elif f"self.{INNER_LOOP}(" not in inspect.getsource(keras.layers.RNN.call):
        problems.append(f"keras.layers.RNN.call no longer calls self.{INNER_LOOP}")
    else:
        parameters = list(inspect.signature(inner_loop).parameters)
        if parameters[:4] != ["self", "sequences", "initial_state", "mask"]:
            problems.append(f"keras.layers.RNN.{INNER_LOOP} now takes ({', '.join(parameters)})")
    if not callable(getattr(keras.layers.Layer, _FLATTEN_LAYERS, None)):
        problems.append(f"keras.layers.Layer.{_FLATTEN_LAYERS} is gone")
    if keras.backend.backend() == "tensorflow":
        try:
            gradient_may_be_recorded()
        except (ImportError, AttributeError):
            problems.append("tensorflow.python.eager.record.could_possibly_record is gone")
    if _INITIAL_EPOCH not in inspect.getsource(keras.callbacks.BackupAndRestore):
        problems.append(f"keras.callbacks.BackupAndRestore no longer sets model.{_INITIAL_EPOCH}")
    return problems
