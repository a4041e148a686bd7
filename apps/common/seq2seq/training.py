"""Training a `Seq2Seq` on text pairs: the part `gru-suite train translation|chatbot` share."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import keras

from apps.common.app import Fitting
from apps.common.config import Config, Number, at_least, fraction, positive, setting
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
from apps.common.seq2seq.serving import STRATEGIES, DecodingOptions, TextSeq2Seq
from apps.common.settings import ExportConfig, TrainConfig
from apps.common.text import TokenIds, build_vocabulary
from apps.common.training import TimeBudget


def max_length_setting(default: int) -> Any:
    return setting(default, "tokens kept per source / generated per target",
                   check=at_least(3, maximum=10_000), group="sequence to sequence")


def vocabulary_size_setting(default: int) -> Any:
    return setting(default, "tokens per side, reserved ones included",
                   check=at_least(5, maximum=10_000_000), group="sequence to sequence")


def decoding_setting(default: str, choices: tuple[str, ...] = STRATEGIES, help: str = "") -> Any:
    return setting(default, help or "decoding of the export", choices=choices,
                   group="sequence to sequence")


@dataclasses.dataclass(frozen=True)
class SamplingSettings(Config):
    """How a sampling decoder draws tokens: `train`'s defaults for the export, `chat`'s per turn."""

    temperature: float = setting(0.8, "sampling temperature (when the export samples)",
                                 check=positive(100.0), group="sampling")
    top_k: int = setting(0, "top-k sampling, 0 = off", check=at_least(0), group="sampling")
    top_p: float = setting(0.9, "nucleus sampling mass", check=fraction(zero=False, one=True),
                           group="sampling")


@dataclasses.dataclass(frozen=True)
class Seq2SeqTrain(TrainConfig, SamplingSettings):
    """The settings of a seq2seq app's `train`: model, training and decoding."""

    embedding_dim: int = setting(128, "token vector size", check=at_least(1, maximum=4096),
                                 group="sequence to sequence")
    attention: str = setting("luong", "multiplicative (luong) or additive (bahdanau) attention",
                             choices=("luong", "bahdanau"), group="sequence to sequence")
    dropout: float = setting(0.1, "dropout rate", check=fraction(), group="sequence to sequence")
    learning_rate: float = setting(2e-3, "Adam learning rate", check=positive(10.0),
                                   group="sequence to sequence")
    max_length: int = max_length_setting(30)
    vocabulary_size: int = vocabulary_size_setting(8000)
    minutes: float | None = setting(None, "stop training after this many minutes (ends the "
                                    "running epoch early)", check=positive(), group="sequence to sequence")
    copy: bool = setting(False, "let the decoder copy source tokens (a pointer-generator: "
                         "replies and translations can repeat a source's rare words and names)",
                         group="sequence to sequence")
    keep_best: bool = setting(False, "end with the weights of the epoch with the lowest validation "
                              "loss (on real data the last epoch often fits the training pairs "
                              "better and the held-out ones worse)", group="sequence to sequence")
    decoding: str = decoding_setting("greedy")
    beam_width: int = setting(4, "beams of --decoding beam", check=at_least(1, maximum=256),
                              group="sequence to sequence")
    length_penalty: float = setting(0.6, "GNMT length-normalization exponent of beam search",
                                    check=Number(float, 0.0, 10.0), group="sequence to sequence")
    no_repeat_ngram: int = setting(0, "no n-gram of this size repeats within an output (0 = off)",
                                   check=at_least(0, maximum=100), group="sequence to sequence")

    def decoding_options(self) -> DecodingOptions:
        """The export's decoding from these settings."""
        return DecodingOptions(
            strategy=self.decoding, beam_width=self.beam_width,
            length_penalty=self.length_penalty, temperature=self.temperature, top_k=self.top_k,
            top_p=self.top_p, no_repeat_ngram=self.no_repeat_ngram,
        )


@dataclasses.dataclass(frozen=True)
class Seq2SeqEvaluate(ExportConfig):
    """The settings a seq2seq app's `evaluate` adds to its data settings."""

    score_limit: int | None = setting(None, "score at most this many pairs", check=at_least(1),
                                      flag="--limit")


@dataclass
class Seq2SeqRun:
    """A trained model ready to serve, and what training measured."""

    server: TextSeq2Seq
    model: Seq2Seq
    epochs_run: int
    held_out_perplexity: float
    stopped_early: bool


def train_seq2seq(
    train: TextPairs,
    held_out: TextPairs,
    config: Seq2SeqTrain,
    fitting: Fitting,
    *,
    max_source_length: int | None = None,
    decoding: DecodingOptions | None = None,
    contrastive_weight: float = 0.0,
) -> Seq2SeqRun:
    """Builds vocabularies and a model from `config`, trains on `train`, measures `held_out`.

    `max_source_length` (tokens, [START]/[END] included) defaults to
    `config.max_length`; the chatbot needs more room for its context.
    `decoding` (the server's) defaults to `config.decoding_options()`.
    `contrastive_weight` is the model's (see `Seq2Seq`).
    """
    if len(train) == 0 or len(held_out) == 0:
        raise InputError("Need at least one training and one held-out pair.")
    max_source_length = max_source_length or config.max_length
    source_vocabulary = TokenIds(build_vocabulary(train.sources, config.vocabulary_size))
    target_vocabulary = TokenIds(build_vocabulary(train.targets, config.vocabulary_size))
    with fitting.scope():
        model = build_seq2seq(
            source_vocabulary.size,
            target_vocabulary.size,
            embedding_dim=config.embedding_dim,
            units=config.units,
            cell=config.cell,
            attention=config.attention,
            dropout=config.dropout,
            learning_rate=config.learning_rate,
            contrastive_weight=contrastive_weight,
            copy=config.copy,
        )
    if config.copy:
        set_copy_targets(model, source_vocabulary.vocabulary, target_vocabulary.vocabulary)

    def dataset(pairs: TextPairs, shuffle_seed: int | None):
        return make_dataset(
            pairs, source_vocabulary, target_vocabulary,
            max_source_length=max_source_length, max_target_length=config.max_length,
            batch_size=config.batch_size, shuffle_seed=shuffle_seed,
        )

    train_data = dataset(train, config.seed)
    # Start at the training unigram: a zero output bias lets a big skewed
    # vocabulary saturate the decoder and stall training at the unigram loss.
    set_output_prior(model, target_token_counts(train_data, target_vocabulary.size))
    held_out_data = dataset(held_out, None)
    callbacks = []
    budget = TimeBudget(config.minutes) if config.minutes else None
    if budget:
        callbacks.append(budget)
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
        decoding=decoding or config.decoding_options(),
    )
    return Seq2SeqRun(
        server=server,
        model=model,
        epochs_run=len(history.history.get("loss", [])),
        held_out_perplexity=math.exp(nll / max(tokens, 1)),
        stopped_early=bool(budget and budget.stopped_early),
    )
