"""What every training records as it runs: TensorBoard logs, the history CSV and the gates.

`monitoring_callbacks(log_dir, probe)` gives the callbacks
`apps.common.training.fit` adds to every fit:

- `GateActivity`: each epoch, the mean update-gate (z_t) and reset-gate (r_t)
  activity of the model's first `gru_core.GRU` on a fixed batch (`probe`, the
  first validation batch), added to the epoch's logs as `update_gate` and
  `reset_gate`, plus the learning rate; and histograms of every recurrent
  layer's weights;
- `keras.callbacks.CSVLogger`: the per-epoch logs as `history.csv`;
- `keras.callbacks.TensorBoard`: the epoch scalars (training under `train/`,
  validation under `validation/`) for `tensorboard --logdir runs/`.

`GateActivity` runs before the other two, so the gates reach the CSV, the
TensorBoard scalars and the `History` alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from gru_core import GRU, trace_gates
from gru_core.keras_private import flatten_layers

HISTORY_FILE = "history.csv"
# Examples of the probe batch the gates are traced on: enough for a stable mean,
# few enough that tracing (one eager step per time step) takes well under a second.
PROBE_EXAMPLES = 16


def first_gru(model: keras.Model) -> GRU | None:
    """The first `gru_core.GRU` inside `model` (a Bidirectional's forward layer counts), if any."""
    return next((layer for layer in flatten_layers(model) if isinstance(layer, GRU)), None)


def probe_batch(data: Any) -> Any:
    """The inputs of the first batch of `data` (a `tf.data.Dataset` of batches, or `(x, y)`), cut short."""
    if data is None:
        return None
    if isinstance(data, tf.data.Dataset):
        batch = next(iter(data.take(1)))
        inputs = batch[0] if isinstance(batch, tuple) else batch
    else:
        inputs = data[0] if isinstance(data, tuple) else data
    return tf.nest.map_structure(lambda array: array[:PROBE_EXAMPLES], inputs)


def gru_inputs(model: keras.Model, layer: GRU, inputs: Any) -> tuple[Any, Any]:
    """What `layer` receives (its sequences and mask) when `model` runs on `inputs`."""
    seen: list[tuple[Any, Any]] = []
    original = layer.call

    def recording_call(sequences, *args, **kwargs):
        if not seen:
            seen.append((sequences, kwargs.get("mask")))
        return original(sequences, *args, **kwargs)

    layer.call = recording_call
    try:
        model(inputs, training=False)
    finally:
        del layer.call
    return seen[0]


class EpochTime(keras.callbacks.Callback):
    """Adds `epoch_seconds` to each epoch's logs: the wall time of its training and validation
    (the first epoch's includes compiling the step)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class GateActivity(keras.callbacks.Callback):
    """Adds the gates' mean activity and the learning rate to each epoch's logs; writes weight histograms.

    Args:
        probe: Inputs of a fixed batch (see `probe_batch`); None leaves the gates out.
        log_dir: Where the recurrent weights' histograms go (its `weights/`
            folder); None leaves them out.
    """

    def __init__(self, probe: Any, log_dir: Path | None):
        super().__init__()
        self.probe = probe
        self.writer = None if log_dir is None else tf.summary.create_file_writer(str(Path(log_dir) / "weights"))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))
        layer = first_gru(self.model)
        if layer is not None and self.probe is not None:
            sequences, mask = gru_inputs(self.model, layer, self.probe)
            gates = trace_gates(layer, sequences, mask=None if mask is None else ops.convert_to_numpy(mask))
            logs["update_gate"] = float(np.nanmean(gates["update"]))
            logs["reset_gate"] = float(np.nanmean(gates["reset"]))
        if self.writer is not None:
            with self.writer.as_default(step=epoch):
                for recurrent in flatten_layers(self.model):
                    if isinstance(recurrent, keras.layers.RNN):
                        for weight in recurrent.weights:
                            tf.summary.histogram(weight.path, ops.convert_to_numpy(weight))
            self.writer.flush()


def monitoring_callbacks(log_dir: Path | None, probe: Any, append: bool = False) -> list[keras.callbacks.Callback]:
    """`EpochTime` and `GateActivity`, then (with a `log_dir`) the history CSV and TensorBoard's logs.

    `append`: a resumed run adds its epochs to the history CSV; a new one starts it afresh.
    """
    callbacks: list[keras.callbacks.Callback] = [EpochTime(), GateActivity(probe, log_dir)]
    if log_dir is not None:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        callbacks += [
            keras.callbacks.CSVLogger(str(log_dir / HISTORY_FILE), append=append),
            keras.callbacks.TensorBoard(str(log_dir), write_graph=False, update_freq="epoch"),
        ]
    return callbacks
