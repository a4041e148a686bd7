"""The default GRU recurrence on TensorFlow: a training recurrence with a
hand-written backward pass, and an inference recurrence that keeps nothing.

With the default activations (σ gates, tanh candidate) the derivatives of a
step are simple enough to write down, so the recurrence runs as one
`tf.custom_gradient` function: a forward `tf.while_loop` that records the
gates, candidates and states of every step, and a backward loop
(backpropagation through time) with two small matrix products per step. The
recurrent-kernel gradients are then one large product each over all steps.
Autodiff through the generic loop instead needs four small products per step
and records and replays every op of every step, which on CPU costs more than
the arithmetic. The input projections are two products (gate half, candidate
half), so neither the forward nor the backward pass splits or concatenates
whole sequences.

When no gradient is needed (predict, evaluate, every export) the inference
recurrence runs the same steps without `tf.custom_gradient` and records only
what it returns, so a SavedModel holds no gradient function to warn about.

For one step, with h = h_{t-1}, g = h ⊙ d (d the recurrent dropout mask, or 1)
and m the step mask (1 = run the step, 0 = carry the state):

    [z | r] = σ(x_zr + g·U_zr)        c = tanh(x_h + (r ⊙ g)·U_h)
    h_t = h + m z ⊙ (c − h)

and, for ∂h_t = ∂L/∂h_t (from later steps and from the step's own output):

    ∂a_h  = ∂h_t ⊙ m z (1 − c²)                      (∂ of x_h)
    ∂(r⊙g) = ∂a_h · U_hᵀ
    ∂a_z  = ∂h_t ⊙ m (c − h) z (1 − z)               (∂ of x_z)
    ∂a_r  = ∂(r⊙g) ⊙ g r (1 − r)                     (∂ of x_r)
    ∂h    = ∂h_t ⊙ (1 − m z) + d ⊙ (∂(r⊙g) ⊙ r + [∂a_z | ∂a_r] · U_zrᵀ)
"""

from __future__ import annotations

import collections

import tensorflow as tf

from gru_core.onnx import native_gru_placeholder
from gru_core.tracing import tracing_for_onnx, tracing_portable_ops

# What the forward loop keeps for the backward one, time-major: the states
# h_1 … h_T, and per step [z | r], h̃ and r ⊙ g. Dense tensors, not
# TensorArrays, so that the backward function can be traced into a SavedModel.
_Record = collections.namedtuple(
    "_Record", ["states", "gates", "candidates", "reset_states"]
)


def gru_sequence(x_zr, x_h, h0, gate_kernel, candidate_kernel,
                 step_mask=None, recurrent_mask=None, return_sequences=True,
                 need_gradient=True):
    """Runs the GRU over time-major projected inputs.

    Args:
        x_zr: `(T, batch, 2·units)` input half [x_z | x_r] of the gate
            pre-activations, in processing order.
        x_h: `(T, batch, units)` input half of the candidate pre-activation.
        h0: `(batch, units)` initial state.
        gate_kernel: `(units, 2·units)` recurrent kernel of [z | r].
        candidate_kernel: `(units, units)` recurrent kernel of the candidate.
        step_mask: Optional boolean `(T, batch, 1)`; False carries the state.
        recurrent_mask: Optional `(batch, units)` dropout mask applied to the
            state before the recurrent products.
        return_sequences: Return every state, not only the last.
        need_gradient: Run the training recurrence: a `tf.custom_gradient`
            whose forward loop records every step for the hand-written
            backward pass. When False, the inference recurrence runs instead:
            it keeps only what it returns and carries no gradient function
            (so a SavedModel holds none); a gradient asked of it anyway is
            still right, by TensorFlow's autodiff through the loop, only
            slower.

    Returns the `(T, batch, units)` states h_1 … h_T, or the `(batch, units)`
    h_T. Differentiable with respect to the first five arguments; the masks
    are constants.
    """
    if not need_gradient:
        return _infer(
            x_zr, x_h, h0, gate_kernel, candidate_kernel,
            step_mask, recurrent_mask, return_sequences,
        )

    @tf.custom_gradient
    def run(x_zr, x_h, h0, gate_kernel, candidate_kernel):
        record = _forward(
            x_zr, x_h, h0, gate_kernel, candidate_kernel,
            step_mask, recurrent_mask,
        )

        def grad(d_output):
            return _backward(
                d_output, return_sequences, record, h0,
                gate_kernel, candidate_kernel, step_mask, recurrent_mask,
            )

        return (record.states if return_sequences else record.states[-1]), grad

    return run(x_zr, x_h, h0, gate_kernel, candidate_kernel)


def _step_array(like, width):
    """An empty TensorArray with one `(batch, width)` item per step of `like`."""
    return tf.TensorArray(
        like.dtype,
        size=tf.shape(like)[0],
        element_shape=tf.TensorShape([like.shape[1], width]),
    )


def _step(x_zr_t, x_h_t, h, gate_kernel, candidate_kernel, run_t, recurrent_mask):
    """One step from h = h_{t-1}: returns (h_t, [z | r], h̃, r ⊙ g)."""
    h_gates = h if recurrent_mask is None else h * recurrent_mask
    gates = tf.sigmoid(x_zr_t + tf.matmul(h_gates, gate_kernel))
    z, r = tf.split(gates, 2, axis=1)
    reset_state = r * h_gates
    candidate = tf.tanh(x_h_t + tf.matmul(reset_state, candidate_kernel))
    new_h = h + z * (candidate - h)
    if run_t is not None:
        new_h = tf.where(run_t, new_h, h)
    return new_h, gates, candidate, reset_state


def _infer(x_zr, x_h, h0, gate_kernel, candidate_kernel,
           step_mask, recurrent_mask, return_sequences):
    """The recurrence with nothing kept for a backward pass: h_T, or the
    states h_1 … h_T when `return_sequences`."""
    steps = tf.shape(x_h)[0]

    portable = tracing_portable_ops()

    def write(states, t, new_h):
        if portable:
            return tf.tensor_scatter_nd_update(states, [[t]], tf.expand_dims(new_h, 0))
        return states.write(t, new_h)

    def body(t, h, *states):
        new_h = _step(
            x_zr[t], x_h[t], h, gate_kernel, candidate_kernel,
            None if step_mask is None else step_mask[t], recurrent_mask,
        )[0]
        return (t + 1, new_h, *(write(array, t, new_h) for array in states))

    loop_vars = (tf.constant(0), h0)
    if return_sequences:
        units = candidate_kernel.shape[0]
        loop_vars += (tf.zeros_like(x_h) if portable else _step_array(x_h, units),)
    result = tf.while_loop(lambda t, *_: t < steps, body, loop_vars)
    if not return_sequences:
        return result[1]
    return result[2] if portable else result[2].stack()


def _forward(x_zr, x_h, h0, gate_kernel, candidate_kernel,
             step_mask, recurrent_mask):
    """Runs the recurrence; returns its `_Record`."""
    units = candidate_kernel.shape[0]
    steps = tf.shape(x_h)[0]

    def body(t, h, states, gates_ta, candidates_ta, reset_ta):
        new_h, gates, candidate, reset_state = _step(
            x_zr[t], x_h[t], h, gate_kernel, candidate_kernel,
            None if step_mask is None else step_mask[t], recurrent_mask,
        )
        return (
            t + 1,
            new_h,
            states.write(t, new_h),
            gates_ta.write(t, gates),
            candidates_ta.write(t, candidate),
            reset_ta.write(t, reset_state),
        )

    arrays = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (
            tf.constant(0),
            h0,
            _step_array(x_h, units),
            _step_array(x_h, 2 * units),
            _step_array(x_h, units),
            _step_array(x_h, units),
        ),
    )[2:]
    return _Record(*(array.stack() for array in arrays))


def _backward(d_output, return_sequences, record, h0,
              gate_kernel, candidate_kernel, step_mask, recurrent_mask):
    """Backpropagation through time: the gradients of `gru_sequence`'s four
    differentiable arguments, given that of its output."""
    units = candidate_kernel.shape[0]
    prev_states = tf.concat([h0[tf.newaxis], record.states[:-1]], axis=0)
    gate_kernel_t = tf.transpose(gate_kernel)
    candidate_kernel_t = tf.transpose(candidate_kernel)
    step_weight = (
        None if step_mask is None else tf.cast(step_mask, d_output.dtype)
    )

    def body(t, d_h, d_zr_ta, d_candidate_ta):
        if return_sequences:
            d_h = d_h + d_output[t]
        # At a masked step only the direct path h_t = h_{t-1} carries d_h.
        d_run = d_h if step_weight is None else d_h * step_weight[t]
        gates, candidate = record.gates[t], record.candidates[t]
        z, r = tf.split(gates, 2, axis=1)
        h = prev_states[t]
        h_gates = h if recurrent_mask is None else h * recurrent_mask
        d_run_z = d_run * z
        d_candidate = tf.raw_ops.TanhGrad(y=candidate, dy=d_run_z)
        d_reset_state = tf.matmul(d_candidate, candidate_kernel_t)
        d_zr = tf.raw_ops.SigmoidGrad(
            y=gates,
            dy=tf.concat(
                [d_run * (candidate - h), d_reset_state * h_gates], axis=1
            ),
        )
        d_h_gates = d_reset_state * r + tf.matmul(d_zr, gate_kernel_t)
        if recurrent_mask is not None:
            d_h_gates = d_h_gates * recurrent_mask
        return (
            t - 1,
            d_h - d_run_z + d_h_gates,
            d_zr_ta.write(t, d_zr),
            d_candidate_ta.write(t, d_candidate),
        )

    _, d_h0, d_zr, d_candidate = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (
            tf.shape(prev_states)[0] - 1,
            d_output if not return_sequences else tf.zeros_like(h0),
            _step_array(prev_states, 2 * units),
            _step_array(prev_states, units),
        ),
    )
    d_zr, d_candidate = d_zr.stack(), d_candidate.stack()
    if recurrent_mask is not None:
        prev_states = prev_states * recurrent_mask
    d_gate_kernel = tf.matmul(
        tf.reshape(prev_states, [-1, units]),
        tf.reshape(d_zr, [-1, 2 * units]),
        transpose_a=True,
    )
    d_candidate_kernel = tf.matmul(
        tf.reshape(record.reset_states, [-1, units]),
        tf.reshape(d_candidate, [-1, units]),
        transpose_a=True,
    )
    return d_zr, d_candidate, d_h0, d_gate_kernel, d_candidate_kernel


def gru_rnn(sequences, h0, kernel, recurrent_kernel, bias=None, mask=None,
            recurrent_mask=None, go_backwards=False, zero_output_for_mask=False,
            return_sequences=True, need_gradient=True):
    """A `gru_core.GRU` time loop with the conventions of
    `keras.src.backend.rnn`.

    Args:
        sequences: `(batch, T, features)` inputs (after input dropout).
        h0: `(batch, units)` initial state.
        kernel, recurrent_kernel, bias: The `GRUCell` weights, in the inputs'
            dtype; `bias` may be None.
        mask: Optional boolean `(batch, T)`.
        recurrent_mask: As in `gru_sequence`.
        go_backwards: Process the steps last to first.
        zero_output_for_mask: Output zeros at masked steps instead of the
            previous output.
        return_sequences: Return every step's output, not only the last.
        need_gradient: As in `gru_sequence`.

    Returns `(last_output, outputs, [last_state])` like Keras's loop: outputs
    are batch-major in processed order (reversed for `go_backwards`), shaped
    `(batch, 1, units)` when not `return_sequences`; before the first unmasked
    step the output is zero.
    """
    if tracing_for_onnx() and not need_gradient and recurrent_mask is None:
        return native_gru_placeholder(
            sequences, h0, kernel, recurrent_kernel, bias, mask, go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask, return_sequences=return_sequences,
        )
    units = recurrent_kernel.shape[0]
    inputs = tf.transpose(sequences, [1, 0, 2])
    step_mask = None
    if mask is not None:
        # expand_dims, not [..., tf.newaxis]: LiteRT has no strided slice that adds an axis.
        step_mask = tf.expand_dims(tf.transpose(tf.cast(mask, tf.bool)), -1)
    if go_backwards:
        inputs = tf.reverse(inputs, [0])
        if step_mask is not None:
            step_mask = tf.reverse(step_mask, [0])
    # The gate and candidate halves as two products: no split copies, and
    # BiasAdd's gradient is a faster reduction than a broadcast add's.
    flat_inputs = tf.reshape(inputs, [-1, inputs.shape[-1]])
    leading_dims = [
        tf.shape(inputs)[axis] if size is None else size
        for axis, size in enumerate(inputs.shape[:2])
    ]

    def project(part):
        projected = tf.matmul(flat_inputs, kernel[:, part])
        if bias is not None:
            projected = tf.nn.bias_add(projected, bias[part])
        # The width is spelled out: with an empty batch, -1 cannot be inferred.
        return tf.reshape(projected, [*leading_dims, projected.shape[-1]])

    states = gru_sequence(
        project(slice(None, 2 * units)),
        project(slice(2 * units, None)),
        h0,
        recurrent_kernel[:, : 2 * units],
        recurrent_kernel[:, 2 * units :],
        step_mask,
        recurrent_mask,
        return_sequences,
        need_gradient,
    )
    last_state = states[-1] if return_sequences else states
    # Where the output is shown rather than zero: after a step has run (the
    # output then repeats the state), or only at run steps.
    shown = None
    if step_mask is not None:
        shown = (
            step_mask
            if zero_output_for_mask
            else tf.cumsum(tf.cast(step_mask, tf.int32), axis=0) > 0
        )
        if not return_sequences:
            shown = shown[-1]
    outputs = (
        states if shown is None else tf.where(shown, states, tf.zeros_like(states))
    )
    if return_sequences:
        last_output = outputs[-1]
        outputs = tf.transpose(outputs, [1, 0, 2])
    else:
        last_output = outputs
        outputs = tf.expand_dims(last_output, 1)
    return last_output, outputs, [last_state]
