"""The GRU layer: `GRUCell` run over a sequence, inputs projected once."""

from __future__ import annotations

import keras
from keras import ops

from gru_core.cell import GRUCell
from gru_core.keras_private import gradient_may_be_recorded, run_time_loop


def _cell_property(name: str, doc: str = "") -> property:
    return property(lambda self: getattr(self.cell, name), doc=doc or None)


@keras.saving.register_keras_serializable(package="gru_core")
class GRU(keras.layers.RNN):
    """Gated recurrent unit layer (Cho et al. 2014), update gate on the candidate.

    For each time step it computes

        z_t = σ(W_z·[h_{t-1}, x_t] + b_z)             (update gate)
        r_t = σ(W_r·[h_{t-1}, x_t] + b_r)             (reset gate)
        h̃_t = tanh(W·[r_t ⊙ h_{t-1}, x_t] + b)        (candidate)
        h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    This equals `keras.layers.GRU(reset_after=False)` with the update gate
    negated (Keras's z weights the old state); `gru_core.to_keras_gru` and
    `gru_core.from_keras_gru` convert between the two. The input half of every
    pre-activation, x_t·kernel + bias, is computed for all steps in one matrix
    product before the time loop, which then holds only the recurrent
    products. With the default activations on TensorFlow the loop is
    `gru_core.fused`'s: a training recurrence with a hand-written backward
    pass, or, when no gradient can be asked for (`training=False` with no
    gradient tape recording: predict, evaluate, every export), an inference
    recurrence that records nothing for a backward pass.

    The cell's arguments (`activation`, `recurrent_activation`, `use_bias`,
    the initializers, regularizers and constraints of the three weights,
    `dropout`, `recurrent_dropout` and `seed`) are as in `gru_core.GRUCell`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activity_regularizer: Regularizer applied to the layer's output.
        return_sequences: Return the whole output sequence instead of the last
            output. Default `False`.
        return_state: Also return the last state. Default `False`.
        go_backwards: Process the sequence backwards and return the reversed
            sequence. Default `False`.
        stateful: Use the last state of batch sample i as the initial state of
            sample i in the next batch (`reset_states()` zeroes it). Needs a
            fixed batch size. Default `False`.
        unroll: Unroll the time loop (static length only). Default `False`.

    Call arguments:
        inputs: A 3D tensor `(batch, timesteps, features)`.
        mask: Optional boolean `(batch, timesteps)`; a masked step leaves the
            state unchanged (and repeats the previous output).
        training: Whether dropout is active.
        initial_state: Optional `(batch, units)` tensor (or a list of one).

    Gate values for given inputs come from `gru_core.trace_gates(layer, x)`.
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
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        **kwargs,
    ):
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    units = _cell_property("units")
    activation = _cell_property("activation")
    recurrent_activation = _cell_property("recurrent_activation")
    use_bias = _cell_property("use_bias")
    kernel_initializer = _cell_property("kernel_initializer")
    recurrent_initializer = _cell_property("recurrent_initializer")
    bias_initializer = _cell_property("bias_initializer")
    kernel_regularizer = _cell_property("kernel_regularizer")
    recurrent_regularizer = _cell_property("recurrent_regularizer")
    bias_regularizer = _cell_property("bias_regularizer")
    kernel_constraint = _cell_property("kernel_constraint")
    recurrent_constraint = _cell_property("recurrent_constraint")
    bias_constraint = _cell_property("bias_constraint")
    dropout = _cell_property("dropout")
    recurrent_dropout = _cell_property("recurrent_dropout")
    seed = _cell_property("seed")

    def _check_initial_state(self, sequences, initial_state):
        states = (
            initial_state
            if isinstance(initial_state, (list, tuple))
            else [initial_state]
        )
        if len(states) != 1:
            raise ValueError(
                f"A GRU has one state tensor; got {len(states)} initial states."
            )
        shape = tuple(states[0].shape)
        batch = sequences.shape[0]
        if (
            len(shape) != 2
            or (shape[1] is not None and shape[1] != self.units)
            or (batch is not None and shape[0] is not None and shape[0] != batch)
        ):
            raise ValueError(
                f"`initial_state` must have shape (batch, units) = "
                f"({batch}, {self.units}); got shape {shape}."
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is not None:
            self._check_initial_state(sequences, initial_state)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    def _has_fused_loop(self) -> bool:
        """Whether a fused loop can run the time loop: `gru_core.fused` on
        TensorFlow or `gru_core.fused_jax` on JAX, default activations, not
        unrolled. They compute the same values as the generic loop, with a
        hand-written (faster) backward pass."""
        return (
            keras.backend.backend() in ("tensorflow", "jax")
            and not self.unroll
            and self.cell.activation is keras.activations.tanh
            and self.cell.recurrent_activation is keras.activations.sigmoid
        )

    # Overrides keras_private.INNER_LOOP, the method RNN.call runs the loop through.
    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        h0 = initial_state[0]
        if training and cell.dropout > 0:
            input_mask = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(input_mask, 1)
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.get_recurrent_dropout_mask(h0)
        if self._has_fused_loop():
            dtype = sequences.dtype
            options = dict(
                mask=mask,
                recurrent_mask=recurrent_mask,
                go_backwards=self.go_backwards,
                zero_output_for_mask=self.zero_output_for_mask,
                return_sequences=self.return_sequences,
            )
            if keras.backend.backend() == "jax":
                # Imported here: the module needs JAX. A JAX function has no
                # gradient unless jax.grad asks for one, so it needs no flag.
                from gru_core.fused_jax import gru_rnn as jax_gru_rnn

                return jax_gru_rnn(
                    cell.project_inputs(sequences), h0, *cell.split_recurrent_kernel(dtype), **options
                )
            # Imported here: the module needs TensorFlow.
            from gru_core.fused import gru_rnn

            return gru_rnn(
                sequences,
                h0,
                ops.cast(cell.kernel, dtype),
                ops.cast(cell.recurrent_kernel, dtype),
                None if cell.bias is None else ops.cast(cell.bias, dtype),
                **options,
                # Inference (predict, evaluate, every export; training=None
                # too, as Keras reads it) keeps nothing for a backward pass; a
                # tape around a training=False call (fine-tuning under a frozen
                # mode) still gets the fast one.
                need_gradient=(
                    (training is not None and (not isinstance(training, bool) or training))
                    or gradient_may_be_recorded()
                ),
            )
        projected = cell.project_inputs(sequences)
        recurrent_kernels = cell.split_recurrent_kernel(projected.dtype)

        def step(projected_t, states):
            h, _, _, _ = cell.recurrent_step(
                projected_t, states[0], recurrent_mask, recurrent_kernels
            )
            return h, [h]

        return run_time_loop(
            step,
            projected,
            [h0],
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def get_config(self):
        config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        config["activity_regularizer"] = keras.regularizers.serialize(
            self.activity_regularizer
        )
        base_config = super().get_config()
        del base_config["cell"]
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
