"""The hand-written backward pass of `gru_core.fused` against autodiff.

`gru_core.GRU` runs its time loop through `gru_core.fused.gru_rnn` on
TensorFlow with the default activations; the generic loop (Keras's `rnn` with
autodiff) stays as the fallback. Every test here runs both on the same weights
and inputs and compares values and gradients.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gru_core
from gru_core.fused import gru_rnn, gru_sequence

BATCH, STEPS, FEATURES, UNITS = 3, 7, 4, 5


class GenericGRU(gru_core.GRU):
    """`gru_core.GRU` forced onto the generic (autodiff) loop."""

    def _has_fused_loop(self):
        return False


def _data(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    h0 = rng.normal(size=(BATCH, UNITS))
    # Sample 0 starts masked (zero outputs until its first step), sample 1
    # has a masked middle and end, sample 2 is all unmasked.
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, :2] = False
    mask[1, [3, 4, 6]] = False
    return (tf.constant(x, dtype), tf.constant(h0, dtype), tf.constant(mask))


def _values_and_gradients(layer, x, h0, mask, training):
    """Outputs, final state and d(loss)/d(x, h0, weights) of one call."""
    rng = np.random.default_rng(1)
    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        output, state = layer(
            x, initial_state=h0, mask=mask, training=training
        )
        output_weights = tf.constant(rng.normal(size=output.shape), output.dtype)
        state_weights = tf.constant(rng.normal(size=state.shape), state.dtype)
        loss = tf.reduce_sum(tf.cast(output * output_weights, "float64"))
        loss += tf.reduce_sum(tf.cast(tf.sin(state) * state_weights, "float64"))
    grads = tape.gradient(loss, [x, h0, *layer.trainable_weights])
    return [output, state, *grads]


def _fused_and_generic(config, x, h0, mask, training=False, dtype="float64"):
    """Runs the fused and the generic layer with identical weights (and
    identical dropout masks); returns both results."""
    fused = gru_core.GRU(UNITS, return_state=True, dtype=dtype, seed=3, **config)
    generic = GenericGRU(UNITS, return_state=True, dtype=dtype, seed=3, **config)
    fused(x)
    generic(x)
    assert fused._has_fused_loop() and not generic._has_fused_loop()
    generic.set_weights(fused.get_weights())
    results = []
    for layer in (fused, generic):
        layer.cell.seed_generator.state.assign([3, 0])
        results.append(_values_and_gradients(layer, x, h0, mask, training))
    return results


@pytest.mark.parametrize(
    "config, use_mask, training",
    [
        ({}, False, False),
        ({"return_sequences": True}, True, False),
        ({"return_sequences": True, "go_backwards": True}, True, False),
        ({"go_backwards": True}, True, False),
        ({"return_sequences": True, "zero_output_for_mask": True}, True, False),
        (
            {"return_sequences": True, "recurrent_dropout": 0.4, "dropout": 0.3},
            True,
            True,
        ),
        ({"recurrent_dropout": 0.4, "go_backwards": True}, False, True),
    ],
)
def test_matches_autodiff_through_generic_loop(config, use_mask, training):
    x, h0, mask = _data()
    fused, generic = _fused_and_generic(
        config, x, h0, mask if use_mask else None, training
    )
    names = ["output", "state", "d_x", "d_h0", "d_kernel", "d_recurrent", "d_bias"]
    for name, a, b in zip(names, fused, generic):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=0, err_msg=name)


def test_dropout_masks_are_used():
    """Recurrent dropout changes the result (so the test above compares
    dropped runs, not two undropped ones)."""
    x, h0, _ = _data()
    dropped, _ = _fused_and_generic({"recurrent_dropout": 0.5}, x, h0, None, True)
    undropped, _ = _fused_and_generic({"recurrent_dropout": 0.5}, x, h0, None, False)
    assert np.abs(dropped[1] - undropped[1]).max() > 1e-3


def test_numerical_gradient_of_the_fused_sequence():
    rng = np.random.default_rng(2)
    x_zr = tf.constant(rng.normal(size=(STEPS, BATCH, 2 * UNITS)))
    x_h = tf.constant(rng.normal(size=(STEPS, BATCH, UNITS)))
    h0 = tf.constant(rng.normal(size=(BATCH, UNITS)))
    gate_kernel = tf.constant(rng.normal(size=(UNITS, 2 * UNITS)) * 0.5)
    candidate_kernel = tf.constant(rng.normal(size=(UNITS, UNITS)) * 0.5)
    step_mask = tf.constant(rng.random((STEPS, BATCH, 1)) > 0.3)
    recurrent_mask = tf.constant(
        (rng.random((BATCH, UNITS)) > 0.3) / 0.7, "float64"
    )
    output_weights = tf.constant(rng.normal(size=(STEPS, BATCH, UNITS)))

    @tf.function
    def loss(*args):
        states = gru_sequence(*args, step_mask, recurrent_mask)
        return tf.reduce_sum(states * output_weights)

    theoretical, numerical = tf.test.compute_gradient(
        loss, [x_zr, x_h, h0, gate_kernel, candidate_kernel], delta=1e-5
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-8, rtol=1e-7)


def test_jit_compiled_matches_eager():
    x, h0, mask = _data(dtype="float32")
    layer = gru_core.GRU(UNITS, return_sequences=True, go_backwards=True)
    layer(x)

    def grads():
        with tf.GradientTape() as tape:
            output = layer(x, initial_state=h0, mask=mask)
            loss = tf.reduce_sum(output * output)
        return [output, *tape.gradient(loss, layer.trainable_weights)]

    for a, b in zip(grads(), tf.function(grads, jit_compile=True)()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "policy, tol", [("mixed_float16", 2e-2), ("mixed_bfloat16", 1e-1)]
)
def test_mixed_precision(policy, tol):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        x, h0, mask = _data(dtype="float32")
        fused, generic = _fused_and_generic(
            {"return_sequences": True}, x, h0, mask, dtype=None
        )
    finally:
        keras.config.set_dtype_policy(previous)
    assert fused[0].dtype == generic[0].dtype == policy.split("_")[1]
    for a, b in zip(fused, generic):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        np.testing.assert_allclose(a, b, atol=tol * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"unroll": True},
        {"activation": "relu"},
        {"recurrent_activation": "hard_sigmoid"},
    ],
)
def test_other_configurations_use_the_generic_loop(kwargs):
    assert gru_core.GRU(UNITS)._has_fused_loop()
    assert not gru_core.GRU(UNITS, **kwargs)._has_fused_loop()


# The inference recurrence: what `training=False` runs when no tape records.

def _custom_gradient_ops(function, *args):
    """The ops of `function`'s graph that carry a `tf.custom_gradient`
    (what a SavedModel warns about when it holds no gradient for them)."""
    graph = tf.function(function).get_concrete_function(*args).graph
    return [op.name for op in graph.get_operations() if "_gradient_op_type" in op.node_def.attr]


@pytest.mark.parametrize(
    "config, use_mask",
    [
        ({}, False),
        ({}, True),
        ({"return_sequences": True}, True),
        ({"go_backwards": True}, True),
        ({"return_sequences": True, "go_backwards": True}, False),
        ({"return_sequences": True, "zero_output_for_mask": True}, True),
    ],
)
def test_inference_recurrence_matches_training_recurrence(config, use_mask):
    x, h0, mask = _data(dtype="float32")
    mask = mask if use_mask else None
    layer = gru_core.GRU(UNITS, return_state=True, **config)

    def call(training):
        return layer(x, initial_state=h0, mask=mask, training=training)

    inferred = call(False)
    with tf.GradientTape():
        trained = call(True)
    for a, b in zip(inferred, trained):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    assert not _custom_gradient_ops(lambda: call(False))
    assert _custom_gradient_ops(lambda: call(True))


def test_inference_recurrence_of_a_stateful_layer_carries_its_state():
    x, _, mask = _data(dtype="float32")
    inferring = gru_core.GRU(UNITS, stateful=True, return_sequences=True)
    training = gru_core.GRU(UNITS, stateful=True, return_sequences=True)
    inferring(x)
    training(x)
    training.set_weights(inferring.get_weights())
    inferring.reset_states()
    training.reset_states()
    for chunk in (slice(0, 3), slice(3, None)):
        inferred = inferring(x[:, chunk], mask=mask[:, chunk], training=False)
        with tf.GradientTape():
            trained = training(x[:, chunk], mask=mask[:, chunk], training=True)
        np.testing.assert_allclose(inferred, trained, atol=1e-6, rtol=0)
    np.testing.assert_allclose(inferring.states[0], training.states[0], atol=1e-6, rtol=0)


def test_a_tape_around_an_inference_call_gets_the_training_recurrence():
    """Fine-tuning under `training=False` (a frozen mode) still gets the
    hand-written backward pass, and the same gradients as `training=True`."""
    x, h0, mask = _data()
    layer = gru_core.GRU(UNITS, return_sequences=True, dtype="float64")
    layer(x)
    frozen = _values_and_gradients_of_sequences(layer, x, h0, mask, False)
    trained = _values_and_gradients_of_sequences(layer, x, h0, mask, True)
    for a, b in zip(frozen, trained):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
    assert _custom_gradient_ops(
        lambda: _values_and_gradients_of_sequences(layer, x, h0, mask, False)
    )


def test_autodiff_through_the_inference_recurrence_is_right():
    """A gradient asked of the inference recurrence itself (no custom
    gradient to use) still comes out right, through TensorFlow's autodiff."""
    x, h0, mask = _data()
    layer = gru_core.GRU(UNITS, return_sequences=True, dtype="float64")
    layer(x)
    kernel, recurrent, bias = (tf.cast(w, "float64") for w in layer.cell.weights)

    def outputs(need_gradient):
        with tf.GradientTape() as tape:
            tape.watch(x)
            output = gru_rnn(x, h0, kernel, recurrent, bias, mask=mask,
                             need_gradient=need_gradient)[1]
            loss = tf.reduce_sum(tf.sin(output))
        return [output, tape.gradient(loss, x)]

    for a, b in zip(outputs(False), outputs(True)):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)


def _values_and_gradients_of_sequences(layer, x, h0, mask, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = layer(x, initial_state=h0, mask=mask, training=training)
        loss = tf.reduce_sum(tf.sin(output))
    return [output, *tape.gradient(loss, [x, *layer.trainable_weights])]
