"""Translation and chatbot exports as LiteRT or ONNX files: the encoder and one decoder step.

The whole decoder is not written into a file. Its strategies are
`tf.while_loop`s that grow TensorArrays and histories of dynamic shape, and
the export's string tokenization and detokenization (tensorflow-text, lookup
tables) are no built-in ops of LiteRT or ONNX either. So a file holds two
signatures (`step_functions`), and the client runs the loop:

- `encode`: `source_ids` (int64 `[batch, time]`, [START] … [END], 0 pads) ->
  `encoder_outputs` (`[batch, time, 2·units]`) and the decoder's first
  `state_0` (`state_1` too for an LSTM).
- `decode_step`: `token_ids` (int64 `[batch]`, the previous token),
  `encoder_outputs`, `source_ids` and the states -> next-token `logits`
  (`[batch, target vocabulary]`), the new states `next_state_0` … (ONNX
  names no value twice) and the attention `weights` (`[batch, time]`).

`FileSeq2Seq` puts the two behind the interface `apps.common.seq2seq.decoding`
calls (`model.encoder(...)`, `model.decoder.step(...)`, teacher forcing by
`model((source_ids, target_ids))`), so `TextSeq2Seq` and the app's own
signatures, greedy, beam and sampling alike, run on a file unchanged: the
same decoding code as the SavedModel, with the file computing every step.
"""

from __future__ import annotations

import tensorflow as tf

from apps.common.formats import FileSignature
from apps.common.seq2seq.layers import state_count
from apps.common.seq2seq.model import Seq2Seq

ENCODE, DECODE_STEP = "encode", "decode_step"


def step_functions(model: Seq2Seq) -> dict[str, tf.types.experimental.GenericFunction]:
    """`encode` and `decode_step` of `model` (see the module docstring), in that order."""
    names = [f"state_{index}" for index in range(state_count(model.cell))]
    source_spec = tf.TensorSpec([None, None], tf.int64, name="source_ids")
    encoded_spec = tf.TensorSpec([None, None, 2 * model.units], tf.float32, name="encoder_outputs")
    state_specs = [tf.TensorSpec([None, model.units], tf.float32, name=name) for name in names]

    @tf.function(input_signature=[source_spec], autograph=False)
    def encode(source_ids):
        outputs, states = model.encoder(source_ids, training=False)
        return {"encoder_outputs": tf.cast(outputs, tf.float32),
                **{name: tf.cast(state, tf.float32) for name, state in zip(names, states)}}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="token_ids"), encoded_spec, source_spec,
                                  *state_specs], autograph=False)
    def decode_step(token_ids, encoder_outputs, source_ids, *states):
        logits, states, weights = model.decoder.step(token_ids, encoder_outputs, source_ids, states)
        return {"logits": tf.cast(logits, tf.float32), "weights": tf.cast(weights, tf.float32),
                **{f"next_{name}": tf.cast(state, tf.float32) for name, state in zip(names, states)}}

    return {ENCODE: encode, DECODE_STEP: decode_step}


def _in_graph(signature: FileSignature, outputs: list[str], inputs: dict[str, tf.Tensor]) -> list[tf.Tensor]:
    """`signature`'s `outputs` on `inputs` as one op (`tf.numpy_function`), shaped as its description says."""
    names = list(inputs)

    def run(*values):
        answered = signature.numpy(**dict(zip(names, values)))
        return [answered[name] for name in outputs]

    specs = [signature.structured_outputs[name] for name in outputs]
    results = tf.numpy_function(run, list(inputs.values()), [spec.dtype for spec in specs], stateful=False)
    return [tf.ensure_shape(result, spec.shape) for result, spec in zip(results, specs)]


class _FileEncoder:
    def __init__(self, encode: FileSignature, states: list[str]):
        self._encode, self._states = encode, states

    def __call__(self, source_ids, training=False):
        outputs, *states = _in_graph(self._encode, ["encoder_outputs", *self._states],
                                     {"source_ids": tf.cast(source_ids, tf.int64)})
        return outputs, states


class _FileDecoder:
    def __init__(self, decode_step: FileSignature, states: list[str]):
        self._step, self._states = decode_step, states
        self.vocabulary_size = int(decode_step.structured_outputs["logits"].shape[-1])

    def step(self, token_ids, encoder_outputs, source_ids, states):
        inputs = {"token_ids": tf.cast(token_ids, tf.int64), "encoder_outputs": encoder_outputs,
                  "source_ids": tf.cast(source_ids, tf.int64), **dict(zip(self._states, states))}
        logits, weights, *states = _in_graph(self._step, ["logits", "weights", *(f"next_{name}" for name in self._states)],
                                             inputs)
        return logits, states, weights


class FileSeq2Seq:
    """A file's `encode` and `decode_step` where `apps.common.seq2seq` expects a `Seq2Seq` model."""

    def __init__(self, encode: FileSignature, decode_step: FileSignature):
        states = sorted(name for name in encode.structured_outputs if name.startswith("state_"))
        self.encoder = _FileEncoder(encode, states)
        self.decoder = _FileDecoder(decode_step, states)

    def __call__(self, inputs, training=False):
        """Teacher forcing, one file step per target token: `(source_ids, target_ids)` -> logits
        `[batch, target_time, vocabulary]` (what `TextSeq2Seq.target_log_likelihood` scores).

        Padding ends each row, so the steps over it change no logit before it.
        """
        source_ids, target_ids = inputs
        encoder_outputs, states = self.encoder(source_ids)
        first = tf.zeros([tf.shape(source_ids)[0], self.decoder.vocabulary_size], tf.float32)

        def step(carried, token_ids):
            logits, states, _ = self.decoder.step(token_ids, encoder_outputs, source_ids, carried[1])
            return logits, states

        logits, _ = tf.scan(step, tf.transpose(tf.cast(target_ids, tf.int64)), initializer=(first, states))
        return tf.transpose(logits, [1, 0, 2])
