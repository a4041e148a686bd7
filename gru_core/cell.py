"""The GRU cell: one time step of the gated recurrent unit."""

from __future__ import annotations

import keras
from keras import activations, constraints, initializers, ops, regularizers

# Keras's own dropout-mask bookkeeping: `keras.layers.RNN(GRUCell(...))`
# samples one mask per sequence, exactly as it does for Keras's own cells.
from gru_core.keras_private import DropoutRNNCell


def _validate_rate(name: str, value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
    return float(value)


def _is_mirror_symmetric(activation) -> bool:
    """True when f(-x) == 1 - f(x), which the weight converters rely on."""
    probe = ops.convert_to_tensor([-2.0, -0.5, 0.0, 0.7, 3.0])
    lhs = ops.convert_to_numpy(activation(-probe))
    rhs = 1.0 - ops.convert_to_numpy(activation(probe))
    return bool(abs(lhs - rhs).max() < 1e-6)


@keras.saving.register_keras_serializable(package="gru_core")
class GRUCell(keras.layers.Layer, DropoutRNNCell):
    """Cell class for the gated recurrent unit of `gru_core.GRU`.

    For input `x_t` and previous state `h_{t-1}` it computes

        z_t = σ(W_z·[h_{t-1}, x_t] + b_z)             (update gate)
        r_t = σ(W_r·[h_{t-1}, x_t] + b_r)             (reset gate)
        h̃_t = tanh(W·[r_t ⊙ h_{t-1}, x_t] + b)        (candidate)
        h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    so `z_t` weights the *new* candidate, and the reset gate acts on the state
    before the recurrent product. (Keras's `GRUCell` uses the opposite update
    convention; `gru_core.to_keras_gru` / `from_keras_gru` convert weights.)

    Weights follow Keras's GRU layout, each split in the order [z | r | h̃]:
    `kernel` (input_dim, 3·units) holds the x_t parts of W_z, W_r, W;
    `recurrent_kernel` (units, 3·units) holds the h_{t-1} parts; `bias`
    (3·units,) holds b_z, b_r, b.

    Args:
        units: Positive integer, dimensionality of the state.
        activation: Activation of the candidate (σ above is
            `recurrent_activation`, tanh is `activation`). Default `"tanh"`.
        recurrent_activation: Activation of the gates. Default `"sigmoid"`.
        use_bias: Whether to add `bias`. Default `True`.
        kernel_initializer: Initializer of `kernel`.
        recurrent_initializer: Initializer of `recurrent_kernel`.
        bias_initializer: Initializer of `bias`.
        kernel_regularizer: Regularizer of `kernel`.
        recurrent_regularizer: Regularizer of `recurrent_kernel`.
        bias_regularizer: Regularizer of `bias`.
        kernel_constraint: Constraint of `kernel`.
        recurrent_constraint: Constraint of `recurrent_kernel`.
        bias_constraint: Constraint of `bias`.
        dropout: Fraction of the inputs dropped, in [0, 1). One mask per
            sequence, shared by all time steps.
        recurrent_dropout: Fraction of the previous state dropped before the
            recurrent products, in [0, 1). One mask per sequence.
        seed: Random seed for the dropout masks.
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                f"`units` must be a positive integer, got units={units!r}."
            )
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _validate_rate("dropout", dropout)
        self.recurrent_dropout = _validate_rate(
            "recurrent_dropout", recurrent_dropout
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last dimension of the inputs to a GRU cell must be "
                f"defined. Received input_shape={input_shape}."
            )
        self.kernel = self.add_weight(
            shape=(input_dim, 3 * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 3 * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(3 * self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def project_inputs(self, inputs):
        """The input half of all three pre-activations: x·kernel + bias.

        Works on any leading shape, so `gru_core.GRU` projects a whole
        sequence in one matrix product instead of once per step.
        """
        kernel = ops.cast(self.kernel, inputs.dtype)
        # A 2-D product: a batched one is several times slower on CPU. The
        # bias is added before reshaping back, where TensorFlow fuses it into
        # the product.
        flat = (
            inputs
            if len(inputs.shape) == 2
            else ops.reshape(inputs, (-1, inputs.shape[-1]))
        )
        projected = ops.matmul(flat, kernel)
        if self.use_bias:
            projected = projected + ops.cast(self.bias, inputs.dtype)
        if len(inputs.shape) == 2:
            return projected
        return ops.reshape(
            projected, (*ops.shape(inputs)[:-1], 3 * self.units)
        )

    def split_recurrent_kernel(self, dtype):
        """The recurrent kernel as (gate part [z|r], candidate part), in `dtype`.

        `gru_core.GRU` reads and splits it once per sequence, outside the loop.
        """
        recurrent_kernel = ops.cast(self.recurrent_kernel, dtype)
        return (
            recurrent_kernel[:, : 2 * self.units],
            recurrent_kernel[:, 2 * self.units :],
        )

    def recurrent_step(
        self, projected_inputs, h_prev, recurrent_mask=None, recurrent_kernels=None
    ):
        """One step from already projected inputs.

        Args:
            projected_inputs: `project_inputs(x_t)`, shape (batch, 3·units).
            h_prev: The previous state, shape (batch, units).
            recurrent_mask: Optional dropout mask for `h_prev`.
            recurrent_kernels: Optional result of `split_recurrent_kernel`.

        Returns `(h_t, z_t, r_t, h̃_t)`.
        """
        units = self.units
        gate_kernel, candidate_kernel = (
            recurrent_kernels or self.split_recurrent_kernel(h_prev.dtype)
        )
        h_gates = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        x_zr, x_h = projected_inputs[:, : 2 * units], projected_inputs[:, 2 * units :]
        z, r = ops.split(
            self.recurrent_activation(x_zr + ops.matmul(h_gates, gate_kernel)),
            2,
            axis=-1,
        )
        candidate = self.activation(x_h + ops.matmul(r * h_gates, candidate_kernel))
        h = h_prev + z * (candidate - h_prev)
        return h, z, r, candidate

    def call(self, inputs, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self.get_recurrent_dropout_mask(h_prev)
        h, _, _, _ = self.recurrent_step(
            self.project_inputs(inputs), h_prev, recurrent_mask
        )
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(
                self.kernel_initializer
            ),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(
                self.kernel_regularizer
            ),
            "recurrent_regularizer": regularizers.serialize(
                self.recurrent_regularizer
            ),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(
                self.recurrent_constraint
            ),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
