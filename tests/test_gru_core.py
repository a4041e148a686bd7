"""Tests for gru_core: the GRU layer, its cell, weight converters and gate tracing.

Every numerical test compares against `gru_reference`, an independent NumPy
implementation of the four equations the layer documents:

    z_t = σ(W_z·[h_{t-1}, x_t] + b_z)
    r_t = σ(W_r·[h_{t-1}, x_t] + b_r)
    h̃_t = tanh(W·[r_t ⊙ h_{t-1}, x_t] + b)
    h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

They run on the Keras backend `KERAS_BACKEND` names (TensorFlow, JAX or
torch; `.ci/run` runs them on all three); the few that test TensorFlow's own
paths (its fused recurrences in float64, SavedModel export, `tf.function`)
skip elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import gru_core

ATOL = 1e-5
BACKEND = keras.backend.backend()
tensorflow_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="tests TensorFlow's own paths")


# --------------------------------------------------------------------------
# NumPy reference
# --------------------------------------------------------------------------


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _hard_sigmoid(a):
    return np.clip(a / 6.0 + 0.5, 0.0, 1.0)


def gru_reference(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                  gate=_sigmoid):
    """The four GRU equations in float64 NumPy, written from the formulas.

    `kernel` (F, 3U), `recurrent_kernel` (U, 3U) and `bias` (3U,) are split
    [z | r | h̃]; W_g·[h, x] is built as the stacked matrix [R_g; K_g] applied
    to the concatenation [h, x]. A masked step (mask False) carries the state
    and records the gates as NaN. `gate` is σ (sigmoid by default).

    Returns a dict of (batch, T, U) arrays "update", "reset", "candidate",
    "state", plus "final" (batch, U).
    """
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    if bias is None:
        bias = np.zeros(3 * units)
    part = lambda w, g: np.asarray(w, np.float64)[..., g * units:(g + 1) * units]
    # W_g acts on [h_{t-1}, x_t]: stack the recurrent part over the input part.
    w_z, w_r, w_h = (
        np.concatenate([part(recurrent_kernel, g), part(kernel, g)], axis=0)
        for g in range(3)
    )
    b_z, b_r, b_h = (part(bias, g) for g in range(3))
    h = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)

    out = {k: np.full((batch, steps, units), np.nan)
           for k in ("update", "reset", "candidate", "state")}
    for t in range(steps):
        x_t = x[:, t]
        z = gate(np.concatenate([h, x_t], -1) @ w_z + b_z)
        r = gate(np.concatenate([h, x_t], -1) @ w_r + b_r)
        cand = np.tanh(np.concatenate([r * h, x_t], -1) @ w_h + b_h)
        new_h = (1.0 - z) * h + z * cand
        keep = mask[:, t][:, None]
        h = np.where(keep, new_h, h)
        for name, value in (("update", z), ("reset", r), ("candidate", cand)):
            out[name][:, t] = np.where(keep, value, np.nan)
        out["state"][:, t] = h
    out["final"] = h
    return out


# --------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def random_weights(input_dim, units, use_bias=True, rng=None, scale=0.8):
    rng = rng or np.random.default_rng(0)
    weights = [
        rng.uniform(-scale, scale, (input_dim, 3 * units)),
        rng.uniform(-scale, scale, (units, 3 * units)),
    ]
    if use_bias:
        weights.append(rng.uniform(-scale, scale, (3 * units,)))
    return [w.astype(np.float32) for w in weights]


def built_gru(units, input_dim, weights=None, **kwargs):
    """A built gru_core.GRU holding `weights` (random ones by default)."""
    layer = gru_core.GRU(units, **kwargs)
    layer.build((None, None, input_dim))
    if weights is None:
        weights = random_weights(input_dim, units, kwargs.get("use_bias", True))
    layer.set_weights(weights)
    return layer


def ref_for(layer, x, **kwargs):
    return gru_reference(x, *[w.astype(np.float64) for w in layer.get_weights()], **kwargs)


def rand_x(batch, steps, features, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(np.float32)


def np_(t):
    return keras.ops.convert_to_numpy(t)


# --------------------------------------------------------------------------
# 1. NumPy reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "batch,steps,features,units",
    [(1, 1, 1, 1), (2, 5, 3, 4), (3, 7, 2, 6), (4, 2, 5, 3)],
)
def test_matches_numpy_reference(batch, steps, features, units, use_bias):
    weights = random_weights(features, units, use_bias, np.random.default_rng(batch))
    seq_layer = built_gru(units, features, weights, use_bias=use_bias,
                          return_sequences=True, return_state=True)
    last_layer = built_gru(units, features, weights, use_bias=use_bias)
    assert len(seq_layer.get_weights()) == (3 if use_bias else 2)
    x = rand_x(batch, steps, features, seed=steps)
    ref = ref_for(seq_layer, x)

    seq, state = seq_layer(x)
    assert seq.shape == (batch, steps, units)
    np.testing.assert_allclose(np_(seq), ref["state"], atol=ATOL, rtol=ATOL)
    np.testing.assert_allclose(np_(state), ref["final"], atol=ATOL, rtol=ATOL)
    np.testing.assert_allclose(np_(last_layer(x)), ref["final"], atol=ATOL, rtol=ATOL)


def test_unrolled_matches_reference():
    layer = built_gru(3, 2, return_sequences=True, unroll=True)
    x = rand_x(2, 4, 2)
    np.testing.assert_allclose(np_(layer(x)), ref_for(layer, x)["state"], atol=ATOL)


def test_update_gate_weights_new_candidate():
    """z → 1 takes the candidate, z → 0 keeps h0 (the documented convention)."""
    units, features = 2, 2
    kernel, recurrent, bias = random_weights(features, units)
    h0 = np.array([[0.3, -0.6]], np.float32)
    x = rand_x(1, 1, features)
    for b_z, expect_keep in ((-60.0, True), (60.0, False)):
        b = bias.copy()
        b[:units] = b_z
        layer = built_gru(units, features, [kernel, recurrent, b])
        out = np_(layer(x, initial_state=h0))
        if expect_keep:
            np.testing.assert_allclose(out, h0, atol=ATOL)
        else:
            cand = ref_for(layer, x, h0=h0)["candidate"][:, 0]
            np.testing.assert_allclose(out, cand, atol=ATOL)


# --------------------------------------------------------------------------
# 2. Conversion to / from keras.layers.GRU(reset_after=False)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent_activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_to_and_from_keras_gru(recurrent_activation, use_bias):
    units, features = 4, 3
    x = rand_x(2, 5, features)
    kwargs = dict(recurrent_activation=recurrent_activation, use_bias=use_bias,
                  return_sequences=True)

    core = built_gru(units, features, **kwargs)
    as_keras = gru_core.to_keras_gru(core)
    assert isinstance(as_keras, keras.layers.GRU) and not as_keras.reset_after
    np.testing.assert_allclose(np_(as_keras(x)), np_(core(x)), atol=ATOL)

    keras_gru = keras.layers.GRU(units, reset_after=False, **kwargs)
    keras_gru.build((None, None, features))
    keras_gru.set_weights(random_weights(features, units, use_bias, np.random.default_rng(7)))
    as_core = gru_core.from_keras_gru(keras_gru)
    assert isinstance(as_core, gru_core.GRU)
    np.testing.assert_allclose(np_(as_core(x)), np_(keras_gru(x)), atol=ATOL)
    # And the converted layer really follows gru_core's own equations.
    gate = {"sigmoid": _sigmoid, "hard_sigmoid": _hard_sigmoid}[recurrent_activation]
    expected = ref_for(as_core, x, gate=gate)["state"]
    np.testing.assert_allclose(np_(as_core(x)), expected, atol=ATOL)


def test_convert_stateful_layers():
    """Stateful layers need a static batch; conversion must build with it."""
    batch, units, features = 2, 3, 2
    x = rand_x(batch, 4, features)
    core = gru_core.GRU(units, stateful=True)
    core.build((batch, None, features))
    core.set_weights(random_weights(features, units))
    as_keras = gru_core.to_keras_gru(core)
    assert as_keras.stateful
    back = gru_core.from_keras_gru(as_keras)
    assert back.stateful
    for _ in range(2):  # the second call continues from the carried state
        expected = np_(core(x))
        np.testing.assert_allclose(np_(as_keras(x)), expected, atol=ATOL)
        np.testing.assert_allclose(np_(back(x)), expected, atol=ATOL)


def test_convert_rejects_reset_after_and_asymmetric_gates():
    keras_gru = keras.layers.GRU(3, reset_after=True)
    keras_gru.build((None, None, 2))
    with pytest.raises(ValueError, match="reset_after"):
        gru_core.from_keras_gru(keras_gru)

    relu_keras = keras.layers.GRU(3, reset_after=False, recurrent_activation="relu")
    relu_keras.build((None, None, 2))
    with pytest.raises(ValueError, match="recurrent_activation"):
        gru_core.from_keras_gru(relu_keras)

    relu_core = built_gru(3, 2, recurrent_activation="relu")
    with pytest.raises(ValueError, match="recurrent_activation"):
        gru_core.to_keras_gru(relu_core)

    with pytest.raises(ValueError, match="not built"):
        gru_core.to_keras_gru(gru_core.GRU(3))


# --------------------------------------------------------------------------
# 3. Gradients
# --------------------------------------------------------------------------


def autodiff_gradients(loss, args: list[np.ndarray]) -> list[np.ndarray]:
    """d loss(*args) / d each of `args`, by the backend's own automatic differentiation."""
    if BACKEND == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss, argnums=tuple(range(len(args))))(*args)]
    if BACKEND == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        loss(*tensors).backward()
        return [t.grad.numpy() for t in tensors]
    import tensorflow as tf

    tensors = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = loss(*tensors)
    return [g.numpy() for g in tape.gradient(value, tensors)]


def finite_differences(function, args: list[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    """d function(*args) / d each of `args` by central differences, in float64."""
    args = [np.asarray(a, np.float64) for a in args]
    gradients = []
    for arg in args:
        gradient = np.zeros_like(arg)
        for index in np.ndindex(arg.shape):
            saved = arg[index]
            arg[index] = saved + eps
            up = function(*args)
            arg[index] = saved - eps
            down = function(*args)
            arg[index] = saved
            gradient[index] = (up - down) / (2 * eps)
        gradients.append(gradient)
    return gradients


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_gradients_match_finite_differences_of_the_equations(go_backwards, return_sequences):
    """The backend's gradients w.r.t. inputs, initial state and all three weights, masked, against
    central differences of the float64 reference equations."""
    units, features = 2, 2
    layer = gru_core.GRU(units, return_sequences=return_sequences, go_backwards=go_backwards)
    layer.build((None, None, features))
    x = rand_x(2, 4, features)
    h0 = np.random.default_rng(6).uniform(-1, 1, (2, units)).astype(np.float32)
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    projection = np.random.default_rng(7).normal(size=(2, 4, units) if return_sequences else (2, units))
    args = [x, h0, *random_weights(features, units)]
    seed_state = [v.value for v in layer.non_trainable_variables]

    def loss(x, h0, kernel, recurrent_kernel, bias):
        out, _ = layer.stateless_call([kernel, recurrent_kernel, bias], seed_state, x, initial_state=h0,
                                      mask=keras.ops.convert_to_tensor(mask))
        return keras.ops.sum(out * keras.ops.convert_to_tensor(projection.astype(np.float32)))

    def reference_loss(x, h0, kernel, recurrent_kernel, bias):
        order = slice(None, None, -1) if go_backwards else slice(None)
        run = gru_reference(x[:, order], kernel, recurrent_kernel, bias, h0=h0, mask=mask[:, order])
        return np.sum((run["state"] if return_sequences else run["final"]) * projection)

    theoretical = autodiff_gradients(loss, args)
    numerical = finite_differences(reference_loss, args)
    for name, t, n in zip(("x", "h0", "kernel", "recurrent", "bias"), theoretical, numerical):
        assert np.abs(n).max() > 1e-3, name
        np.testing.assert_allclose(t, n, atol=2e-5, rtol=1e-4, err_msg=name)
    # Masked steps of the input get no gradient.
    np.testing.assert_array_equal(np.abs(theoretical[0]).sum(axis=-1) == 0, ~mask)


class GenericLoopGRU(gru_core.GRU):
    """`gru_core.GRU` held on Keras's generic time loop, differentiated by the backend's autodiff."""

    def _has_fused_loop(self):
        return False


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs the generic loop only")
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_the_fused_loop_agrees_with_the_generic_one_under_masks_and_recurrent_dropout(
        go_backwards, zero_output_for_mask):
    """The backend's fused loop (hand-written backward pass) against autodiff through Keras's
    generic loop: outputs, and gradients w.r.t. inputs, initial state and weights, in training
    mode with recurrent dropout, a leading masked step and masked steps inside."""
    units, features = 3, 2
    kwargs = dict(return_sequences=True, go_backwards=go_backwards, seed=5, recurrent_dropout=0.4,
                  zero_output_for_mask=zero_output_for_mask)
    fused, generic = gru_core.GRU(units, **kwargs), GenericLoopGRU(units, **kwargs)
    for layer in (fused, generic):
        layer.build((None, None, features))
    assert fused._has_fused_loop()
    x = rand_x(3, 5, features)
    h0 = np.random.default_rng(6).uniform(-1, 1, (3, units)).astype(np.float32)
    mask = keras.ops.convert_to_tensor(np.array(
        [[False, True, True, False, True], [True, False, False, True, True], [True] * 5]))
    projection = keras.ops.convert_to_tensor(np.random.default_rng(7).normal(size=(3, 5, units)).astype(np.float32))
    args = [x, h0, *random_weights(features, units)]
    seed_state = [v.value for v in fused.non_trainable_variables]  # the same dropout masks in both

    def loss_of(layer):
        def loss(x, h0, kernel, recurrent_kernel, bias):
            out, _ = layer.stateless_call([kernel, recurrent_kernel, bias], seed_state, x, initial_state=h0,
                                          mask=mask, training=True)
            return keras.ops.sum(out * projection)

        return loss

    assert np.isclose(np_(loss_of(fused)(*args)), np_(loss_of(generic)(*args)), atol=ATOL)
    fused_gradients = autodiff_gradients(loss_of(fused), args)
    generic_gradients = autodiff_gradients(loss_of(generic), args)
    for name, mine, autodiff in zip(("x", "h0", "kernel", "recurrent", "bias"), fused_gradients, generic_gradients):
        assert np.abs(autodiff).max() > 1e-3, name
        np.testing.assert_allclose(mine, autodiff, atol=1e-5, rtol=1e-4, err_msg=name)


@tensorflow_only
def test_numeric_gradient_with_dropout_in_float64():
    """Gradients in training mode, dropout active, in TensorFlow's float64 path.

    `stateless_call` with a fixed RNG state makes the dropout masks the same
    in every evaluation, so the training-mode gradient can be checked too.
    """
    import tensorflow as tf

    units, features = 2, 2
    layer = gru_core.GRU(units, dtype="float64", return_sequences=True, seed=4, dropout=0.3,
                         recurrent_dropout=0.4)
    layer.build((None, None, features))
    weights = [w.astype(np.float64) for w in random_weights(features, units)]
    x = rand_x(2, 4, features).astype(np.float64)
    h0 = np.random.default_rng(6).uniform(-1, 1, (2, units))
    mask = tf.constant([[True, True, False, True], [True, False, False, True]])

    seed_state = [v.value for v in layer.non_trainable_variables]  # dropout RNG

    @tf.function
    def fn(x, h0, kernel, recurrent_kernel, bias):
        out, _ = layer.stateless_call([kernel, recurrent_kernel, bias], seed_state,
                                      x, initial_state=h0, mask=mask, training=True)
        return out

    args = [tf.constant(a) for a in (x, h0, *weights)]
    theoretical, numerical = tf.test.compute_gradient(fn, args)
    for name, t, n in zip(("x", "h0", "kernel", "recurrent", "bias"),
                          theoretical, numerical):
        assert np.abs(t).max() > 1e-3, name
        np.testing.assert_allclose(t, n, atol=1e-6, rtol=1e-5, err_msg=name)
    assert not np.allclose(fn(*args), layer(x, initial_state=h0, mask=mask))  # dropout really was active


# --------------------------------------------------------------------------
# 4. Masking
# --------------------------------------------------------------------------


def test_masking_trailing_and_middle_steps():
    units, features = 3, 2
    layer = built_gru(units, features, return_sequences=True)
    inputs = keras.Input((None, features))
    model = keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))

    x = rand_x(2, 6, features)
    padded = x.copy()
    padded[0, 4:] = 0.0  # sample 0: trailing padding
    padded[1, 2:4] = 0.0  # sample 1: two masked steps in the middle
    out = np_(model(padded))

    unpadded0 = x[:1, :4]
    unpadded1 = np.concatenate([x[1:, :2], x[1:, 4:]], axis=1)
    out0 = np_(layer(unpadded0))
    out1 = np_(layer(unpadded1))
    np.testing.assert_allclose(out[0, :4], out0[0], atol=ATOL)
    np.testing.assert_allclose(out[0, 4:], np.repeat(out0[:, -1], 2, 0), atol=ATOL)
    np.testing.assert_allclose(out[1, :2], out1[0, :2], atol=ATOL)
    np.testing.assert_allclose(out[1, 2:4], np.repeat(out1[:, 1], 2, 0), atol=ATOL)
    np.testing.assert_allclose(out[1, 4:], out1[0, 2:], atol=ATOL)
    # The mask really mattered: without it the zero steps change the state.
    assert not np.allclose(np_(layer(padded))[1, 4:], out1[0, 2:], atol=1e-3)
    # And the reference with the same mask agrees.
    ref = ref_for(layer, padded, mask=np.any(padded != 0, axis=-1))
    np.testing.assert_allclose(out, ref["state"], atol=ATOL)


def test_embedding_mask_zero_final_state():
    vocab, features, units = 10, 3, 4
    tokens = np.array([[3, 5, 7, 0, 0], [2, 0, 0, 9, 4]])
    embed = keras.layers.Embedding(vocab, features, mask_zero=True)
    layer = gru_core.GRU(units)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), embed, layer])
    out = np_(model(tokens))
    vectors = np_(embed(tokens))
    expected0 = np_(layer(vectors[:1, :3]))
    expected1 = np_(layer(vectors[1:, [0, 3, 4]]))
    np.testing.assert_allclose(out, np.concatenate([expected0, expected1]), atol=ATOL)


# --------------------------------------------------------------------------
# 5. Stateful
# --------------------------------------------------------------------------


def test_stateful_continues_and_resets():
    units, features, batch = 3, 2, 2
    weights = random_weights(features, units)
    stateful = gru_core.GRU(units, stateful=True, return_sequences=True)
    stateful.build((batch, None, features))
    stateful.set_weights(weights)
    plain = built_gru(units, features, weights, return_sequences=True)

    x = rand_x(batch, 6, features)
    whole = np_(plain(x))
    first = np_(stateful(x[:, :3]))
    second = np_(stateful(x[:, 3:]))
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=ATOL)
    np.testing.assert_allclose(np_(stateful.states[0]), whole[:, -1], atol=ATOL)

    stateful.reset_states()
    np.testing.assert_array_equal(np_(stateful.states[0]), np.zeros((batch, units)))
    np.testing.assert_allclose(np_(stateful(x[:, 3:])), np_(plain(x[:, 3:])), atol=ATOL)


# --------------------------------------------------------------------------
# 6. go_backwards and Bidirectional
# --------------------------------------------------------------------------


def test_go_backwards_equals_reversed_input():
    weights = random_weights(2, 3)
    backwards = built_gru(3, 2, weights, go_backwards=True, return_sequences=True)
    forwards = built_gru(3, 2, weights, return_sequences=True)
    x = rand_x(2, 5, 2)
    expected = np_(forwards(x[:, ::-1]))
    np.testing.assert_allclose(np_(backwards(x)), expected, atol=ATOL)
    assert not np.allclose(np_(backwards(x)), np_(forwards(x)), atol=1e-3)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_matches_reference(return_sequences):
    units, features = 3, 2
    bidi = keras.layers.Bidirectional(
        gru_core.GRU(units, return_sequences=return_sequences)
    )
    x = rand_x(2, 4, features)
    bidi(x)  # build
    assert isinstance(bidi.backward_layer, gru_core.GRU)
    assert bidi.backward_layer.go_backwards
    rng = np.random.default_rng(3)
    bidi.forward_layer.set_weights(random_weights(features, units, rng=rng))
    bidi.backward_layer.set_weights(random_weights(features, units, rng=rng))

    fwd = ref_for(bidi.forward_layer, x)
    bwd = ref_for(bidi.backward_layer, x[:, ::-1])
    if return_sequences:
        expected = np.concatenate([fwd["state"], bwd["state"][:, ::-1]], -1)
    else:
        expected = np.concatenate([fwd["final"], bwd["final"]], -1)
    np.testing.assert_allclose(np_(bidi(x)), expected, atol=ATOL)


# --------------------------------------------------------------------------
# 7. return_state and initial_state
# --------------------------------------------------------------------------


def test_return_state_and_initial_state():
    units, features = 4, 3
    layer = built_gru(units, features, return_state=True, return_sequences=True)
    x = rand_x(2, 5, features)
    h0 = np.random.default_rng(9).uniform(-1, 1, (2, units)).astype(np.float32)

    seq, state = layer(x, initial_state=h0)
    ref = ref_for(layer, x, h0=h0)
    np.testing.assert_allclose(np_(seq), ref["state"], atol=ATOL)
    np.testing.assert_allclose(np_(state), ref["final"], atol=ATOL)
    np.testing.assert_allclose(np_(state), np_(seq)[:, -1], atol=ATOL)

    seq_list, _ = layer(x, initial_state=[h0])
    np.testing.assert_allclose(np_(seq_list), np_(seq), atol=ATOL)
    seq_zero, _ = layer(x)
    assert not np.allclose(np_(seq_zero), np_(seq), atol=1e-3)


# --------------------------------------------------------------------------
# 8. Dropout
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rates", [dict(dropout=0.5), dict(recurrent_dropout=0.5),
              dict(dropout=0.3, recurrent_dropout=0.3)]
)
def test_dropout_training_vs_inference(rates):
    weights = random_weights(3, 4)
    layer = built_gru(4, 3, weights, seed=5, return_sequences=True, **rates)
    plain = built_gru(4, 3, weights, return_sequences=True)
    x = rand_x(4, 6, 3)

    inference = np_(layer(x, training=False))
    np.testing.assert_array_equal(np_(layer(x, training=False)), inference)
    np.testing.assert_allclose(inference, np_(plain(x)), atol=ATOL)
    np.testing.assert_allclose(np_(layer(x)), inference, atol=ATOL)  # default: no dropout

    trained = np_(layer(x, training=True))
    assert not np.allclose(trained, inference, atol=1e-4)
    assert np.all(np.isfinite(trained))


def test_input_dropout_mask_shared_across_time():
    """Input dropout drops whole features per sequence, as documented."""
    units, features = 3, 4
    weights = random_weights(features, units)
    layer = built_gru(units, features, weights, dropout=0.5, seed=11, return_sequences=True)
    plain = built_gru(units, features, weights, return_sequences=True)
    # One sample, an input that is constant over time: with a per-sequence mask,
    # the dropped input equals x * m for a single 0/2-valued vector m.
    x = np.repeat(rand_x(1, 1, features), 5, axis=1)
    out = np_(layer(x, training=True))
    candidates = []
    for bits in range(2 ** features):
        m = np.array([(bits >> i) & 1 for i in range(features)], np.float32) * 2.0
        candidates.append(np_(plain(x * m)))
    assert any(np.allclose(out, c, atol=ATOL) for c in candidates)


# --------------------------------------------------------------------------
# 9. Initializers, regularizers, constraints
# --------------------------------------------------------------------------


def test_initializers():
    layer = gru_core.GRU(3, kernel_initializer="ones", recurrent_initializer="zeros",
                         bias_initializer=keras.initializers.Constant(0.25))
    layer.build((None, None, 2))
    np.testing.assert_array_equal(np_(layer.cell.kernel), np.ones((2, 9)))
    np.testing.assert_array_equal(np_(layer.cell.recurrent_kernel), np.zeros((3, 9)))
    np.testing.assert_array_equal(np_(layer.cell.bias), np.full(9, 0.25))


def test_regularizers_add_losses():
    layer = gru_core.GRU(3, kernel_regularizer=keras.regularizers.L2(0.1),
                         recurrent_regularizer="l1", bias_regularizer="l2",
                         activity_regularizer="l2")
    unregularized = gru_core.GRU(3)
    x = rand_x(2, 4, 2)
    unregularized(x)
    assert unregularized.losses == []
    layer(x)
    assert len(layer.losses) >= 3
    kernel = np_(layer.cell.kernel)
    weight_losses = [float(np_(loss)) for loss in layer.losses]
    assert any(np.isclose(v, 0.1 * np.sum(kernel ** 2), rtol=1e-5) for v in weight_losses)


def test_constraint_applied_after_optimizer_step():
    units, features = 3, 2
    inputs = keras.Input((4, features))
    layer = gru_core.GRU(units, kernel_constraint=keras.constraints.NonNeg(),
                         recurrent_constraint=keras.constraints.NonNeg())
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    assert np.any(np_(layer.cell.kernel) < 0)  # glorot init has negatives
    x = rand_x(8, 4, features)
    y = np.random.default_rng(2).normal(size=(8, 1)).astype(np.float32)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.all(np_(layer.cell.kernel) >= 0)
    assert np.all(np_(layer.cell.recurrent_kernel) >= 0)


# --------------------------------------------------------------------------
# 10. Serialization and export
# --------------------------------------------------------------------------


def test_config_round_trip():
    layer = gru_core.GRU(
        5, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False,
        kernel_regularizer="l2", recurrent_constraint="non_neg",
        dropout=0.1, recurrent_dropout=0.2, seed=3, return_sequences=True,
        return_state=True, go_backwards=True, unroll=True, name="my_gru",
    )
    config = layer.get_config()
    clone = gru_core.GRU.from_config(config)
    assert clone.get_config() == config
    assert clone.units == 5 and clone.go_backwards and not clone.use_bias
    assert clone.dropout == 0.1 and clone.recurrent_dropout == 0.2
    # Also through the generic Keras serializer (registered class).
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is gru_core.GRU and again.get_config() == config

    cell = gru_core.GRUCell(4, dropout=0.25)
    assert gru_core.GRUCell.from_config(cell.get_config()).get_config() == cell.get_config()


def _small_model(features=3, units=4):
    inputs = keras.Input((None, features))
    h = gru_core.GRU(units, return_sequences=True)(inputs)
    h = gru_core.GRU(units, go_backwards=True)(h)
    return keras.Model(inputs, keras.layers.Dense(2)(h))


def test_keras_file_save_and_load(tmp_path):
    model = _small_model()
    x = rand_x(3, 5, 3)
    expected = np_(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], gru_core.GRU)
    np.testing.assert_allclose(np_(loaded(x)), expected, atol=1e-6)


@tensorflow_only
def test_saved_model_export_loads_without_gru_core(tmp_path):
    model = _small_model()
    x = rand_x(3, 5, 3)
    expected = np_(model(x))
    export_dir = tmp_path / "exported"
    model.export(str(export_dir), verbose=False)
    np.save(tmp_path / "x.npy", x)

    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(export_dir)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, loaded.serve(tf.constant(x)).numpy())
        # Different batch and length through the same signature.
        np.save({str(tmp_path / "y2.npy")!r},
                loaded.serve(tf.constant(x[:1, :2])).numpy())
        assert "gru_core" not in sys.modules, "gru_core was imported"
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    # Serving runs the inference recurrence, which holds no custom gradient.
    assert "unsaved custom gradients" not in result.stderr, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "y2.npy"), np_(model(x[:1, :2])), atol=1e-5)


# --------------------------------------------------------------------------
# 11. Mixed precision
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy,compute_dtype,tol",
    [("mixed_float16", "float16", 1e-2), ("mixed_bfloat16", "bfloat16", 5e-2)],
)
def test_mixed_precision(restore_policy, policy, compute_dtype, tol):
    units, features = 4, 3
    weights = random_weights(features, units)
    x = rand_x(2, 5, features)
    reference = np_(built_gru(units, features, weights, return_sequences=True)(x))

    keras.mixed_precision.set_dtype_policy(policy)
    layer = built_gru(units, features, weights, return_sequences=True, return_state=True)
    seq, state = layer(x)
    dtype_of = keras.backend.standardize_dtype
    assert dtype_of(seq.dtype) == compute_dtype and dtype_of(state.dtype) == compute_dtype
    assert all(v.dtype == "float32" for v in layer.weights)
    np.testing.assert_allclose(np_(keras.ops.cast(seq, "float32")), reference, atol=tol)

    # Also inside a model, and through trace_gates.
    inputs = keras.Input((None, features))
    model = keras.Model(inputs, layer(inputs)[0])
    assert dtype_of(model(x).dtype) == compute_dtype
    traced = gru_core.trace_gates(layer, x)
    np.testing.assert_allclose(traced["state"], reference, atol=tol)


# --------------------------------------------------------------------------
# 12. Dynamic shapes and XLA
# --------------------------------------------------------------------------


def test_variable_batch_and_length():
    features, units = 3, 4
    layer = built_gru(units, features, return_sequences=True)
    inputs = keras.Input((None, features))
    model = keras.Model(inputs, layer(inputs))
    for batch, steps in ((1, 2), (3, 7), (5, 4)):
        x = rand_x(batch, steps, features, seed=batch + steps)
        out = model.predict(x, verbose=0)  # the backend's compiled predict step
        assert out.shape == (batch, steps, units)
        np.testing.assert_allclose(out, ref_for(layer, x)["state"], atol=ATOL)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_empty_batch(return_sequences):
    # A replica can get an empty share of a distributed batch.
    layer = built_gru(4, 3, return_sequences=return_sequences)
    x = np.zeros((0, 5, 3), np.float32)
    mask = keras.ops.ones((0, 5), "bool")
    out = layer(x, mask=mask)
    assert tuple(out.shape) == ((0, 5, 4) if return_sequences else (0, 4))

    seed_state = [v.value for v in layer.non_trainable_variables]

    def loss(kernel, recurrent_kernel, bias):
        return keras.ops.sum(layer.stateless_call([kernel, recurrent_kernel, bias], seed_state, x, mask=mask)[0])

    for gradient in autodiff_gradients(loss, layer.get_weights()):
        np.testing.assert_array_equal(gradient, 0.0)


def test_jit_compile_forward_and_fit():
    features, units = 3, 4
    inputs = keras.Input((None, features))
    model = keras.Model(inputs, keras.layers.Dense(1)(gru_core.GRU(units)(inputs)))
    x = rand_x(4, 5, features)
    y = np.random.default_rng(4).normal(size=(4, 1)).astype(np.float32)

    # Keras compiles with XLA on TensorFlow and JAX; torch.compile is left out (minutes to compile).
    model.compile(optimizer="adam", loss="mse", jit_compile=BACKEND != "torch")
    before = [np_(w).copy() for w in model.weights]
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, np_(b)) for a, b in zip(before, model.weights))
    np.testing.assert_allclose(model.predict(x, verbose=0), np_(model(x)), atol=ATOL)


# --------------------------------------------------------------------------
# 13. Errors
# --------------------------------------------------------------------------


def test_error_messages():
    with pytest.raises(ValueError):
        gru_core.GRU(3)(np.zeros((2, 4), np.float32))

    layer = built_gru(3, 2)
    with pytest.raises(ValueError, match="shape"):
        layer(rand_x(2, 4, 2), initial_state=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="shape"):
        layer(rand_x(2, 4, 2), initial_state=np.zeros((3, 3), np.float32))

    for units in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="units"):
            gru_core.GRU(units)
    with pytest.raises(ValueError, match="units"):
        gru_core.GRUCell(0)

    for kwargs in (dict(dropout=1.5), dict(dropout=-0.1), dict(recurrent_dropout=1.0)):
        with pytest.raises(ValueError, match="dropout"):
            gru_core.GRU(3, **kwargs)


# --------------------------------------------------------------------------
# 14. trace_gates
# --------------------------------------------------------------------------


def test_trace_gates_matches_layer_and_reference():
    batch, steps, features, units = 2, 5, 3, 4
    layer = built_gru(units, features, return_sequences=True)
    x = rand_x(batch, steps, features)
    traced = gru_core.trace_gates(layer, x)
    ref = ref_for(layer, x)
    assert set(traced) == {"update", "reset", "candidate", "state"}
    for name, value in traced.items():
        assert value.shape == (batch, steps, units), name
        np.testing.assert_allclose(value, ref[name], atol=ATOL, err_msg=name)
    np.testing.assert_allclose(traced["state"], np_(layer(x)), atol=ATOL)


def test_trace_gates_with_mask_and_initial_state():
    batch, steps, features, units = 2, 5, 3, 4
    layer = built_gru(units, features, return_sequences=True)
    x = rand_x(batch, steps, features)
    mask = np.ones((batch, steps), bool)
    mask[0, 3:] = False
    mask[1, 1:3] = False
    h0 = np.random.default_rng(5).uniform(-1, 1, (batch, units)).astype(np.float32)
    traced = gru_core.trace_gates(layer, x, initial_state=h0, mask=mask)
    ref = ref_for(layer, x, h0=h0, mask=mask)

    for name in ("update", "reset", "candidate"):
        assert np.all(np.isnan(traced[name][~mask])), name
        assert not np.any(np.isnan(traced[name][mask])), name
        np.testing.assert_allclose(traced[name][mask], ref[name][mask], atol=ATOL)
    state = traced["state"]
    np.testing.assert_array_equal(state[0, 3:], state[0, [2, 2]])
    np.testing.assert_array_equal(state[1, 1:3], state[1, [0, 0]])
    np.testing.assert_allclose(state, ref["state"], atol=ATOL)
    np.testing.assert_allclose(state, np_(layer(x, mask=mask, initial_state=h0)), atol=ATOL)


def test_trace_gates_go_backwards_in_input_order():
    weights = random_weights(2, 3)
    backwards = built_gru(3, 2, weights, go_backwards=True, return_sequences=True)
    x = rand_x(2, 4, 2)
    traced = gru_core.trace_gates(backwards, x)
    ref = ref_for(backwards, x[:, ::-1])
    for name in ("update", "reset", "candidate", "state"):
        np.testing.assert_allclose(traced[name], ref[name][:, ::-1], atol=ATOL)
    # The layer returns the sequence in processing order.
    np.testing.assert_allclose(np_(backwards(x)), traced["state"][:, ::-1], atol=ATOL)


# --------------------------------------------------------------------------
# 15. GRUCell in keras.layers.RNN
# --------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False])
def test_cell_in_keras_rnn_matches_layer(use_bias):
    units, features = 4, 3
    weights = random_weights(features, units, use_bias)
    rnn = keras.layers.RNN(gru_core.GRUCell(units, use_bias=use_bias),
                           return_sequences=True)
    rnn.build((None, None, features))
    rnn.set_weights(weights)
    layer = built_gru(units, features, weights, use_bias=use_bias, return_sequences=True)
    x = rand_x(2, 6, features)
    np.testing.assert_allclose(np_(rnn(x)), np_(layer(x)), atol=ATOL)
    np.testing.assert_allclose(np_(rnn(x)), ref_for(layer, x)["state"], atol=ATOL)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_cell_in_keras_rnn_matches_layer_masked(go_backwards, return_sequences):
    """Leading, middle and trailing masked steps, with an initial state: the
    layer's loop follows Keras's own RNN loop conventions exactly."""
    units, features = 3, 2
    weights = random_weights(features, units)
    kwargs = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                  return_state=True)
    rnn = keras.layers.RNN(gru_core.GRUCell(units), **kwargs)
    rnn.build((None, None, features))
    rnn.set_weights(weights)
    layer = built_gru(units, features, weights, **kwargs)
    x = rand_x(3, 6, features)
    mask = np.ones((3, 6), bool)
    mask[0, :2] = False
    mask[1, 2:4] = False
    mask[2, 4:] = False
    h0 = np.random.default_rng(8).uniform(-1, 1, (3, units)).astype(np.float32)
    for got, want in zip(layer(x, mask=mask, initial_state=h0),
                         rnn(x, mask=mask, initial_state=h0)):
        np.testing.assert_allclose(np_(got), np_(want), atol=ATOL)


def test_cell_dropout_in_keras_rnn():
    units, features = 3, 2
    weights = random_weights(features, units)
    rnn = keras.layers.RNN(gru_core.GRUCell(units, dropout=0.5, recurrent_dropout=0.5, seed=2))
    rnn.build((None, None, features))
    rnn.set_weights(weights)
    plain = built_gru(units, features, weights)
    x = rand_x(3, 4, features)
    np.testing.assert_allclose(np_(rnn(x, training=False)), np_(plain(x)), atol=ATOL)
    assert not np.allclose(np_(rnn(x, training=True)), np_(plain(x)), atol=1e-4)
