"""Gate introspection: what the update and reset gates did on given inputs."""

from __future__ import annotations

import numpy as np
from keras import ops

from gru_core.layer import GRU


def trace_gates(layer: GRU, inputs, initial_state=None, mask=None) -> dict[str, np.ndarray]:
    """Runs `layer` step by step on `inputs` and records its gates.

    Args:
        layer: A built `gru_core.GRU` (for a `Bidirectional` wrapper, pass its
            `forward_layer` or `backward_layer`).
        inputs: `(batch, timesteps, features)` array.
        initial_state: Optional `(batch, units)` array; zeros by default.
        mask: Optional boolean `(batch, timesteps)` array. At a masked step the
            state is carried through and the gates are recorded as NaN.

    Returns:
        A dict of `(batch, timesteps, units)` NumPy arrays in input time order
        (also for `go_backwards=True`): `"update"` (z_t), `"reset"` (r_t),
        `"candidate"` (h̃_t) and `"state"` (h_t).
    """
    if not isinstance(layer, GRU):
        raise TypeError(
            f"trace_gates needs a gru_core.GRU, got {type(layer).__name__}."
        )
    inputs = ops.convert_to_tensor(inputs, dtype=layer.compute_dtype)
    if len(inputs.shape) != 3:
        raise ValueError(
            "trace_gates needs inputs of shape (batch, timesteps, features); "
            f"got shape {tuple(inputs.shape)}."
        )
    if not layer.built:
        layer(inputs)
    batch, timesteps = inputs.shape[0], inputs.shape[1]
    h = (
        ops.zeros((batch, layer.units), dtype=layer.compute_dtype)
        if initial_state is None
        else ops.convert_to_tensor(initial_state, dtype=layer.compute_dtype)
    )
    step_mask = (
        np.ones((batch, timesteps), dtype=bool)
        if mask is None
        else np.asarray(mask, dtype=bool)
    )
    projected = layer.cell.project_inputs(inputs)
    records = {name: np.full((batch, timesteps, layer.units), np.nan, np.float32)
               for name in ("update", "reset", "candidate", "state")}
    order = range(timesteps - 1, -1, -1) if layer.go_backwards else range(timesteps)
    for t in order:
        new_h, z, r, candidate = layer.cell.recurrent_step(projected[:, t], h)
        keep = step_mask[:, t]
        h = ops.where(ops.convert_to_tensor(keep[:, None]), new_h, h)
        for name, value in (("update", z), ("reset", r), ("candidate", candidate)):
            records[name][keep, t] = ops.convert_to_numpy(value)[keep]
        records["state"][:, t] = ops.convert_to_numpy(h)
    return records
