"""Strings in, strings out: a `Seq2Seq` model with its vocabularies, and its export."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import tensorflow as tf

from apps.common.app import Serving
from apps.common.errors import InputError
from apps.common.export import EXTRA_DIR, save_extra_model
from apps.common.seq2seq.decoding import beam_search_decode, greedy_decode, sample_decode
from apps.common.seq2seq.model import Seq2Seq
from apps.common.seq2seq.pairs import encode_sources
from apps.common.seq2seq.settings import STRATEGIES, DecodingOptions
from apps.common.text import END, START, TokenIds, read_vocabulary, readable, tokenize, write_vocabulary

# The vocabularies an export keeps in extra/, one token per line.
SOURCE_VOCABULARY, TARGET_VOCABULARY = "source_vocabulary.txt", "target_vocabulary.txt"


def join_tokens(texts: tf.Tensor) -> tf.Tensor:
    """Space-joined tokens -> text: no space before closing or after opening punctuation."""
    texts = tf.strings.regex_replace(texts, r" ([.,!?;:%)\]}»])", r"\1")
    return tf.strings.regex_replace(texts, r"([(\[{¿¡«]) ", r"\1")


class TextSeq2Seq(tf.Module):
    """A trained `Seq2Seq` with its source and target vocabularies.

    Its methods are TensorFlow code that the apps wrap in `tf.function`
    signatures, so the same preprocessing, decoding and detokenization run in
    training-time evaluation and in the export.

    Args:
        model: The trained model.
        source_vocabulary, target_vocabulary: Token ids of both sides.
        max_source_length: Source tokens kept, [START] and [END] included.
        max_target_length: Tokens generated at most, [END] included.
        decoding: The default decoding of `generate`.
    """

    def __init__(
        self,
        model: Seq2Seq,
        source_vocabulary: TokenIds,
        target_vocabulary: TokenIds,
        *,
        max_source_length: int,
        max_target_length: int,
        decoding: DecodingOptions = DecodingOptions(),
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.model = model
        self.source_vocabulary = source_vocabulary
        self.target_vocabulary = target_vocabulary
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.decoding = decoding

    def with_decoding(self, decoding: DecodingOptions) -> "TextSeq2Seq":
        """The same model and vocabularies with another default decoding."""
        return TextSeq2Seq(
            self.model, self.source_vocabulary, self.target_vocabulary,
            max_source_length=self.max_source_length, max_target_length=self.max_target_length,
            decoding=decoding,
        )

    def source_ids(self, texts: tf.Tensor) -> tf.Tensor:
        return encode_sources(texts, self.source_vocabulary, self.max_source_length)

    def generate(
        self,
        texts: tf.Tensor,
        *,
        strategy: tf.Tensor | None = None,
        temperature=None,
        top_k=None,
        top_p=None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`[batch]` strings -> (target ids `[batch, steps]`, attention `[batch, steps, source_time]`).

        `strategy` (a string scalar tensor: "greedy", "beam", "sample", or ""
        for `decoding`'s) picks the decoder at run time; sampling parameters
        default to `decoding`'s and may be tensors.
        """
        source_ids = self.source_ids(texts)
        options = self.decoding
        sampling = {
            "temperature": options.temperature if temperature is None else temperature,
            "top_k": options.top_k if top_k is None else top_k,
            "top_p": options.top_p if top_p is None else top_p,
        }
        decoders = {
            "greedy": lambda: greedy_decode(
                self.model, source_ids, self.max_target_length, options.no_repeat_ngram
            ),
            "beam": lambda: beam_search_decode(
                self.model, source_ids, self.max_target_length, beam_width=options.beam_width,
                length_penalty=options.length_penalty, no_repeat_ngram=options.no_repeat_ngram,
            ),
            "sample": lambda: sample_decode(
                self.model, source_ids, self.max_target_length,
                no_repeat_ngram=options.no_repeat_ngram, **sampling,
            ),
        }
        if strategy is None:
            return decoders[options.strategy]()
        strategy = tf.where(tf.equal(strategy, ""), options.strategy, strategy)
        known = tf.equal(strategy, list(STRATEGIES))
        check = tf.debugging.Assert(
            tf.reduce_any(known),
            [f"decoding must be one of {', '.join(STRATEGIES)} or '' (the export's "
             f"{options.strategy}), got:", readable(strategy)],
        )
        with tf.control_dependencies([check]):
            index = tf.argmax(tf.cast(known, tf.int32), output_type=tf.int32)
        return tf.switch_case(index, [decoders[name] for name in STRATEGIES])

    def reply_texts(self, texts: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
        """The generated text for each of `texts`: "" where a text has no tokens.

        A blank input has nothing to translate or answer, so it gets no output
        rather than whatever the decoder says to an empty source.
        """
        generated = join_tokens(self.detokenize(target_ids))
        has_tokens = tokenize(texts).row_lengths() > 0
        return tf.where(has_tokens, generated, tf.zeros_like(generated))

    def target_log_likelihood(self, texts: tf.Tensor, targets: tf.Tensor):
        """(negative log-likelihood in nats `[batch]`, target tokens `[batch]`) of `targets` given `texts`.

        Teacher-forced, [END] included; sum both over a corpus and take
        `exp(nll / tokens)` for its perplexity.
        """
        source_ids = self.source_ids(texts)
        target_ids = self.target_vocabulary.encode(
            targets, self.max_target_length + 1, add_start_end=True
        )
        logits = self.model((source_ids, target_ids[:, :-1]), training=False)
        expected = target_ids[:, 1:]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=expected, logits=tf.cast(logits, tf.float32)
        )
        mask = tf.cast(expected != 0, tf.float32)
        return tf.reduce_sum(losses * mask, axis=1), tf.reduce_sum(mask, axis=1)

    def detokenize(self, target_ids: tf.Tensor) -> tf.Tensor:
        """Target ids -> `[batch]` strings (space-joined tokens, up to [END])."""
        return self.target_vocabulary.decode(target_ids)

    def source_tokens(self, texts: tf.Tensor) -> tf.Tensor:
        """`[batch, source_time]` token strings aligned with `source_ids` ("" = padding)."""
        tokens = tokenize(texts)[:, : self.max_source_length - 2]
        batch = tokens.nrows()
        tokens = tf.concat([tf.fill([batch, 1], START), tokens, tf.fill([batch, 1], END)], axis=1)
        return tokens.to_tensor(default_value="")

    def target_tokens(self, target_ids: tf.Tensor) -> tf.Tensor:
        """`[batch, steps]` token strings of generated ids ([UNK] for an unknown word)."""
        return tf.gather(self.target_vocabulary.words, target_ids)


def seq2seq_serving(server: TextSeq2Seq, signatures: dict[str, Callable]) -> Serving:
    """The export of `server`: `signatures` (one named "serving_default") and its vocabularies,
    with the Keras model and both vocabularies in `extra/` for the LiteRT and ONNX files."""

    def write_extras(version_dir: Path) -> None:
        save_extra_model(server.model, version_dir)
        extra = version_dir / EXTRA_DIR
        write_vocabulary(extra / SOURCE_VOCABULARY, server.source_vocabulary.vocabulary)
        write_vocabulary(extra / TARGET_VOCABULARY, server.target_vocabulary.vocabulary)

    return Serving(
        dict(signatures),
        [server.model, server.source_vocabulary, server.target_vocabulary],
        metadata={
            "decoding": dataclasses.asdict(server.decoding),
            "max_source_length": server.max_source_length,
            "max_target_length": server.max_target_length,
        },
        extras=write_extras,
    )


def exported_server(version_dir: Path, metadata: dict[str, Any], model: Any) -> TextSeq2Seq:
    """A `TextSeq2Seq` of `model` (the export's own, or a file's `FileSeq2Seq`) with the export's
    vocabularies from `extra/` and its lengths and decoding from `metadata`."""
    extra = Path(version_dir) / EXTRA_DIR
    paths = [extra / SOURCE_VOCABULARY, extra / TARGET_VOCABULARY]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise InputError(f"{version_dir}: the export keeps no {', '.join(missing)} (it was made before "
                         "exports kept their vocabularies; train it again).")
    source, target = (TokenIds(read_vocabulary(path)) for path in paths)
    return TextSeq2Seq(model, source, target, max_source_length=int(metadata["max_source_length"]),
                       max_target_length=int(metadata["max_target_length"]),
                       decoding=DecodingOptions(**metadata["decoding"]))


def run_on_texts(function: Callable, texts: list[str], output: str, batch_size: int = 64) -> list[str]:
    """Runs a `text -> output` string signature over `texts` in batches; returns the outputs."""
    results: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = function(text=tf.constant(texts[start : start + batch_size]))
        results += [value.decode("utf-8") for value in batch[output].numpy()]
    return results
