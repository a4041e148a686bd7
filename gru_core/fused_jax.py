"""The default GRU recurrence on JAX: `jax.lax.scan` with a hand-written backward pass.

The same derivation as `gru_core.fused` (TensorFlow's), as a `jax.custom_vjp`:
the forward scan records the gates, candidates and reset states of every step,
and the backward scan runs two small matrix products per step instead of the
four that JAX's autodiff of the step needs; the recurrent-kernel gradients
are then one large product each over all steps. See `gru_core.fused` for the
equations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _step(h, x_zr_t, x_h_t, run_t, gate_kernel, candidate_kernel, recurrent_mask):
    """One step from h = h_{t-1}: returns (h_t, [z | r], h̃, r ⊙ g)."""
    h_gates = h if recurrent_mask is None else h * recurrent_mask
    gates = jax.nn.sigmoid(x_zr_t + h_gates @ gate_kernel)
    z, r = jnp.split(gates, 2, axis=1)
    reset_state = r * h_gates
    candidate = jnp.tanh(x_h_t + reset_state @ candidate_kernel)
    new_h = h + z * (candidate - h)
    if run_t is not None:
        new_h = jnp.where(run_t, new_h, h)
    return new_h, gates, candidate, reset_state


def _forward(x_zr, x_h, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask):
    """The states h_1 … h_T and, per step, [z | r], h̃ and r ⊙ g (time-major)."""

    def body(h, inputs):
        x_zr_t, x_h_t, run_t = inputs
        new_h, gates, candidate, reset_state = _step(
            h, x_zr_t, x_h_t, run_t, gate_kernel, candidate_kernel, recurrent_mask
        )
        return new_h, (new_h, gates, candidate, reset_state)

    return jax.lax.scan(body, h0, (x_zr, x_h, step_mask))[1]


@jax.custom_vjp
def gru_sequence(x_zr, x_h, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask):
    """The `(T, batch, units)` states of the recurrence over time-major projected inputs.

    Arguments as in `gru_core.fused.gru_sequence`; `step_mask` (boolean
    `(T, batch, 1)`) and `recurrent_mask` may be None. Differentiable with
    respect to the first five; the masks are constants.
    """
    return _forward(x_zr, x_h, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask)[0]


def _sequence_forward(x_zr, x_h, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask):
    record = _forward(x_zr, x_h, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask)
    return record[0], (record, h0, gate_kernel, candidate_kernel, step_mask, recurrent_mask)


def _sequence_backward(saved, d_states):
    (states, gates, candidates, reset_states), h0, gate_kernel, candidate_kernel, step_mask, \
        recurrent_mask = saved
    units = candidate_kernel.shape[0]
    prev_states = jnp.concatenate([h0[None], states[:-1]], axis=0)
    step_weight = None if step_mask is None else step_mask.astype(d_states.dtype)

    def body(d_h, inputs):
        d_output_t, gates_t, candidate, h, weight_t = inputs
        d_h = d_h + d_output_t
        # At a masked step only the direct path h_t = h_{t-1} carries d_h.
        d_run = d_h if weight_t is None else d_h * weight_t
        z, r = jnp.split(gates_t, 2, axis=1)
        h_gates = h if recurrent_mask is None else h * recurrent_mask
        d_run_z = d_run * z
        d_candidate = d_run_z * (1.0 - candidate * candidate)
        d_reset_state = d_candidate @ candidate_kernel.T
        d_zr = jnp.concatenate([d_run * (candidate - h), d_reset_state * h_gates], axis=1)
        d_zr = d_zr * gates_t * (1.0 - gates_t)
        d_h_gates = d_reset_state * r + d_zr @ gate_kernel.T
        if recurrent_mask is not None:
            d_h_gates = d_h_gates * recurrent_mask
        return d_h - d_run_z + d_h_gates, (d_zr, d_candidate)

    d_h0, (d_zr, d_candidate) = jax.lax.scan(
        body, jnp.zeros_like(h0), (d_states, gates, candidates, prev_states, step_weight), reverse=True
    )
    gated_states = prev_states if recurrent_mask is None else prev_states * recurrent_mask
    d_gate_kernel = gated_states.reshape(-1, units).T @ d_zr.reshape(-1, 2 * units)
    d_candidate_kernel = reset_states.reshape(-1, units).T @ d_candidate.reshape(-1, units)
    return d_zr, d_candidate, d_h0, d_gate_kernel, d_candidate_kernel, None, None


gru_sequence.defvjp(_sequence_forward, _sequence_backward)


def gru_rnn(projected, h0, gate_kernel, candidate_kernel, mask=None, recurrent_mask=None,
            go_backwards=False, zero_output_for_mask=False, return_sequences=True):
    """A `gru_core.GRU` time loop with the conventions of Keras's JAX `rnn`, over `projected`, the
    `(batch, T, 3·units)` input half of the pre-activations (`GRUCell.project_inputs`), with the
    recurrent kernel's two parts (`GRUCell.split_recurrent_kernel`). Otherwise arguments and
    result as `gru_core.fused.gru_rnn` (TensorFlow's), but where TensorFlow's loop outputs zeros
    before the first unmasked step, JAX's repeats the initial state."""
    units = candidate_kernel.shape[0]
    projected = jnp.swapaxes(projected, 0, 1)
    step_mask = None if mask is None else jnp.swapaxes(mask.astype(bool), 0, 1)[..., None]
    if go_backwards:
        projected = projected[::-1]
        step_mask = None if step_mask is None else step_mask[::-1]
    states = gru_sequence(
        projected[..., : 2 * units], projected[..., 2 * units:], h0, gate_kernel, candidate_kernel,
        step_mask, recurrent_mask,
    )
    last_state = states[-1]
    outputs = states
    # Keras's JAX loop outputs the state at a masked step (h0 before the first step
    # that runs), or zero with `zero_output_for_mask`.
    if step_mask is not None and zero_output_for_mask:
        outputs = jnp.where(step_mask, states, jnp.zeros_like(states))
    if return_sequences:
        return outputs[-1], jnp.swapaxes(outputs, 0, 1), [last_state]
    return outputs[-1], outputs[-1][:, None], [last_state]
