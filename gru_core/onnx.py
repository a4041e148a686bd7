"""ONNX export of models holding `gru_core.GRU` layers, each as ONNX's native `GRU` op.

tf2onnx turns a recurrent layer's `tf.while_loop` into an ONNX `Loop`, which
ONNX Runtime runs step by step through a subgraph. ONNX's own `GRU` op with
`linear_before_reset=0` computes these equations in one kernel, except that
its update gate z' weights the old state, h_t = (1 − z')·h̃ + z'·h_{t−1}:
z' = 1 − z = σ(−a), so the update gate's weights and bias are negated.

`export_onnx` traces the model with each layer's recurrence replaced by a
placeholder op (`tf.numpy_function`) that carries the layer's inputs and
weights, converts with tf2onnx, and writes a native `GRU` node in each
placeholder's place. Keras's output conventions are rebuilt around it:
batch-major outputs, `go_backwards` order, and masked steps showing the
last output (or zeros with `zero_output_for_mask`). A mask becomes the
op's `sequence_lens`, so masks must cover a prefix of each row (right
padding, as `Masking` and `Embedding(mask_zero=True)` give).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gru_core.functions import model_function, traced_anew
from gru_core.tracing import onnx_tracing

# The ONNX opset written: 17 has every op used here, and ONNX Runtime 1.16+ runs it.
OPSET = 17
# The ONNX IR version written: ONNX Runtime 1.31 reads up to 10 and refused newer ones.
IR_VERSION = 8
# Added to the name of an output that a function's input also has (ONNX names each value once).
OUTPUT_SUFFIX = "_out"

def _never_run(*args):
    raise RuntimeError("gru_core's ONNX placeholder ran: it exists only to be converted by export_onnx.")


def native_gru_placeholder(sequences, h0, kernel, recurrent_kernel, bias, mask, *, go_backwards: bool,
                           zero_output_for_mask: bool, return_sequences: bool):
    """`gru_core.fused.gru_rnn`'s results from a placeholder op that `export_onnx` replaces.

    Returns `(last_output, outputs, [last_state])` as `gru_rnn` does.
    """
    batch, steps = tf.shape(sequences)[0], tf.shape(sequences)[1]
    units = recurrent_kernel.shape[0]
    if mask is None:
        lengths = tf.fill([batch], steps)
    else:
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    if bias is None:
        bias = tf.zeros([3 * units], sequences.dtype)
    flags = tf.constant([int(go_backwards), int(zero_output_for_mask), int(mask is not None)], tf.int32)
    outputs, last_state = tf.numpy_function(
        _never_run, [sequences, h0, kernel, recurrent_kernel, bias, lengths, flags],
        [sequences.dtype, sequences.dtype], stateful=False, name="gru_core_native_gru",
    )
    outputs = tf.ensure_shape(outputs, [None, None, units])
    last_state = tf.ensure_shape(last_state, [None, units])
    last_output = outputs[:, -1]
    if not return_sequences:
        outputs = tf.expand_dims(last_output, 1)
    return last_output, outputs, [last_state]


def _onnx_weights(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray):
    """Keras [z | r | h] weights -> ONNX GRU's W, R, B (one direction), z negated."""
    units = recurrent_kernel.shape[0]
    sign = np.concatenate([-np.ones(units), np.ones(2 * units)]).astype(kernel.dtype)
    w = (kernel * sign).T[np.newaxis]
    r = (recurrent_kernel * sign).T[np.newaxis]
    b = np.concatenate([bias * sign, np.zeros(3 * units, bias.dtype)])[np.newaxis]
    return w, r, b


def _replace_placeholder(ctx, node, name, args):
    """tf2onnx handler: the placeholder `PyFunc` -> a native GRU and Keras's output conventions."""
    from onnx import TensorProto
    sequences, h0, *weights, lengths, flags = node.input
    values = []
    for weight in weights:
        producer = ctx.get_node_by_output(weight)
        if not producer.is_const():
            raise ValueError(f"{node.name}: the GRU's weights must be constants to export to ONNX.")
        values.append(producer.get_tensor_value(as_list=False))
    go_backwards, zero_output_for_mask, masked = ctx.get_node_by_output(flags).get_tensor_value()
    w, r, b = _onnx_weights(*values)
    units = r.shape[-1]
    outputs, last_state = node.output
    ctx.remove_node(node.name)

    def const(label, value):
        return ctx.make_const(f"{name}_{label}", np.asarray(value)).output[0]

    time_major = ctx.make_node("Transpose", [sequences], attr={"perm": [1, 0, 2]}).output[0]
    initial = ctx.make_node("Unsqueeze", [h0, const("axis0", [0])]).output[0]
    gru = ctx.make_node(
        "GRU", [time_major, const("W", w), const("R", r), const("B", b), lengths, initial],
        attr={"hidden_size": units, "linear_before_reset": 0,
              "direction": "reverse" if go_backwards else "forward"},
        output_count=2,
    )
    states = ctx.make_node("Squeeze", [gru.output[0], const("axis1", [1])]).output[0]  # [T, B, U]
    if go_backwards:
        # Keras gives a reversed layer's outputs in the order it ran: last step first.
        states = ctx.make_node("Slice", [states, const("start", [-1]), const("end", [np.iinfo(np.int64).min]),
                                         const("axes", [0]), const("step", [-1])]).output[0]
    elif masked and not zero_output_for_mask:
        # Past a row's length Keras repeats its last output, where ONNX writes zeros.
        steps = ctx.make_node("Shape", [time_major], attr={"start": 0, "end": 1}).output[0]
        time = ctx.make_node("Range", [const("zero", np.int64(0)),
                                       ctx.make_node("Squeeze", [steps, const("axis0b", [0])]).output[0],
                                       const("one", np.int64(1))]).output[0]
        last = ctx.make_node("Sub", [ctx.make_node("Cast", [lengths], attr={"to": TensorProto.INT64}).output[0],
                                     const("one_b", np.int64(1))]).output[0]
        index = ctx.make_node("Min", [ctx.make_node("Unsqueeze", [time, const("axis1b", [1])]).output[0],
                                      ctx.make_node("Unsqueeze", [last, const("axis0c", [0])]).output[0]])
        index = ctx.make_node("Max", [index.output[0], const("zero_b", np.int64(0))]).output[0]  # [T, B]
        index = ctx.make_node("Unsqueeze", [index, const("axis2", [2])]).output[0]
        index = ctx.make_node("Expand", [index, ctx.make_node("Shape", [states]).output[0]]).output[0]
        states = ctx.make_node("GatherElements", [states, index], attr={"axis": 0}).output[0]
    ctx.make_node("Transpose", [states], attr={"perm": [1, 0, 2]}, outputs=[outputs])
    ctx.make_node("Squeeze", [gru.output[1], const("axis0d", [0])], outputs=[last_state])


def onnx_from_function(function) -> Any:
    """An ONNX model of `function`, a `tf.function` with an input signature, each GRU a native op.

    Traced with each recurrence as a placeholder, frozen (captured
    constants and variables become constants), converted by tf2onnx with the
    placeholders replaced by native `GRU` nodes, and given the signature's
    input and output names (a dict of outputs gives its keys; ONNX names each
    value once, so an output named as an input, a state passed back, is
    named with `OUTPUT_SUFFIX` added). Checked by
    `onnx.checker`, with IR version `IR_VERSION`. Returns an
    `onnx.ModelProto`. Needs the `onnx` extra.
    """
    import onnx
    import tf2onnx
    from tf2onnx import tf_loader

    retraced = traced_anew(function)
    with onnx_tracing():
        concrete = retraced.get_concrete_function()
    # The signature's own inputs come first; captured constants follow and are frozen, not inputs.
    inputs = [tensor.name for tensor in concrete.inputs[:len(function.input_signature)]]
    outputs = [tensor.name for tensor in concrete.outputs]
    # tf2onnx warns that it cannot infer the placeholders' shapes, which the GRU nodes then give.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        # tf2onnx's freezing, which also drops the dropout seed updates Keras makes in inference.
        graph_def = tf_loader.from_function(concrete, inputs, outputs)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, opset=OPSET, input_names=inputs, output_names=outputs,
            # A stateless numpy_function is a PyFuncStateless op.
            custom_op_handlers={"PyFuncStateless": (_replace_placeholder, [])},
        )
    finally:
        logger.setLevel(level)
    structured = concrete.structured_outputs
    output_names = sorted(structured) if isinstance(structured, dict) else [
        f"output_{index}" for index in range(len(outputs))]
    input_names = [spec.name or f"input_{index}" for index, spec in enumerate(function.input_signature)]
    output_names = [name + OUTPUT_SUFFIX if name in input_names else name for name in output_names]
    _rename(proto, dict(zip(inputs, input_names)) | dict(zip(outputs, output_names)))
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def _rename(proto, names: dict[str, str]) -> None:
    """Renames graph values everywhere they appear (inputs, outputs, node inputs and outputs)."""
    graph = proto.graph
    for value in [*graph.input, *graph.output]:
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]


def export_onnx(model: keras.Model, filepath: str | Path,
                input_signature: Sequence[tf.TensorSpec] | None = None) -> Path:
    """Writes `model` to `filepath` (ending in `.onnx`) with each `gru_core.GRU` as a native `GRU` node.

    The layers around the recurrences are converted by tf2onnx (the `onnx`
    extra: tf2onnx, onnx, onnxruntime), as Keras's own
    `model.export(format="onnx")` does. `input_signature`: one
    `tf.TensorSpec` per input of `model`, in `keras.tree.flatten(model.input)`
    order (default: the inputs' own shapes, batch and time dynamic). See
    `onnx_from_function`.
    """
    import onnx

    filepath = Path(filepath)
    if filepath.suffix != ".onnx":
        raise ValueError(f"An ONNX file ends in .onnx; got {filepath}.")
    onnx.save(onnx_from_function(model_function(model, input_signature)), str(filepath))
    return filepath
