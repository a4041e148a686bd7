"""Training a `Seq2Seq` on text pairs: the part `gru-suite train translation|chatbot` share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from apps.common.app import Fitting
from apps.common.errors import InputError
from apps.common.seq2seq.model import (
    Seq2Seq,
    build_seq2seq,
    set_copy_targets,
    set_output_prior,
    target_token_counts,
    token_log_likelihood,
)
from apps.common.seq2seq.pairs import TextPairs, make_dataset
from apps.common.seq2seq.serving import TextSeq2Seq
from apps.common.seq2seq.settings import DecodingOptions, Seq2SeqTrain
from apps.common.text import TokenIds, build_vocabulary


@dataclass
class Seq2SeqRun:
    """A trained model ready to serve, and what training measured."""

    server: TextSeq2Seq
    model: Seq2Seq
    epochs_run: int
    held_out_perplexity: float


def train_seq2seq(
    train: TextPairs,
    held_out: TextPairs,
    config: Seq2SeqTrain,
    fitting: Fitting,
    *,
    max_source_length: int | None = None,
    decoding_options: DecodingOptions | None = None,
) -> Seq2SeqRun:
    """Builds vocabularies and a model from `config`, trains on `train`, measures `held_out`.

    `max_source_length` (tokens, [START]/[END] included) defaults to
    `config.max_length`; the chatbot needs more room for its context.
    `decoding_options` (the server's) defaults to `config.decoding_options()`.
    """
    if len(train) == 0 or len(held_out) == 0:
        raise InputError("Need at least one training and one held-out pair.")
    max_source_length = max_source_length or config.max_length
    source_vocabulary = TokenIds(build_vocabulary(train.sources, config.vocabulary_size))
    target_vocabulary = TokenIds(build_vocabulary(train.targets, config.vocabulary_size))
    with fitting.scope():
        model = build_seq2seq(source_vocabulary.size, target_vocabulary.size, config)
    if config.copy:
        set_copy_targets(model, source_vocabulary.vocabulary, target_vocabulary.vocabulary)

    fixed_lengths = fitting.compiles_with_xla(model)

    def dataset(pairs: TextPairs, shuffle_seed: int | None):
        return make_dataset(
            pairs, source_vocabulary, target_vocabulary,
            max_source_length=max_source_length, max_target_length=config.max_length,
            batch_size=config.batch_size, shuffle_seed=shuffle_seed, fixed_lengths=fixed_lengths,
        )

    train_data = dataset(train, config.seed)
    # Start at the training unigram: a zero output bias lets a big skewed
    # vocabulary saturate the decoder and stall training at the unigram loss.
    set_output_prior(model, target_token_counts(train_data, target_vocabulary.size))
    held_out_data = dataset(held_out, None)
    callbacks = []
    if config.keep_best:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.epochs, restore_best_weights=True))
    history = fitting.fit(
        model, train_data, epochs=config.epochs, validation_data=held_out_data, callbacks=callbacks
    )
    nll, tokens = token_log_likelihood(model, held_out_data)
    server = TextSeq2Seq(
        model, source_vocabulary, target_vocabulary,
        max_source_length=max_source_length, max_target_length=config.max_length,
        decoding=decoding_options or config.decoding_options(),
    )
    return Seq2SeqRun(
        server=server,
        model=model,
        epochs_run=len(history.history.get("loss", [])),
        held_out_perplexity=math.exp(nll / max(tokens, 1)),
    )
