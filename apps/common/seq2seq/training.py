"""Training a `Seq2Seq` on text pairs: the part `gru-suite train translation|chatbot` share."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import keras

from apps.common.distributed import make_strategy
from apps.common.errors import InputError
from apps.common.seq2seq.model import (
    Seq2Seq,
    build_seq2seq,
    set_output_prior,
    target_token_counts,
    token_log_likelihood,
)
from apps.common.seq2seq.pairs import TextPairs, make_dataset
from apps.common.seq2seq.serving import STRATEGIES, DecodingOptions, TextSeq2Seq
from apps.common.text import TokenIds, build_vocabulary
from apps.common.training import Stopwatch, fit, run_directory


def add_seq2seq_arguments(
    parser: argparse.ArgumentParser,
    *,
    max_length: int,
    vocabulary_size: int,
    decoding: str,
) -> None:
    """Model and decoding arguments of a seq2seq app's `train` command."""
    group = parser.add_argument_group("sequence to sequence")
    group.add_argument("--embedding-dim", type=int, default=128, help="default 128")
    group.add_argument("--attention", choices=("luong", "bahdanau"), default="luong",
                       help="multiplicative (luong, default) or additive (bahdanau) attention")
    group.add_argument("--dropout", type=float, default=0.1, help="default 0.1")
    group.add_argument("--learning-rate", type=float, default=2e-3, help="default 0.002")
    group.add_argument("--max-length", type=int, default=max_length,
                       help=f"tokens kept per source / generated per target, default {max_length}")
    group.add_argument("--vocabulary-size", type=int, default=vocabulary_size,
                       help=f"tokens per side, reserved ones included, default {vocabulary_size}")
    group.add_argument("--minutes", type=float, default=None,
                       help="stop training after this many minutes (ends the running epoch early)")
    group.add_argument("--decoding", choices=STRATEGIES, default=decoding,
                       help=f"decoding of the export, default {decoding}")
    group.add_argument("--beam-width", type=int, default=4, help="beams of --decoding beam, default 4")
    group.add_argument("--length-penalty", type=float, default=0.6,
                       help="GNMT length-normalization exponent of beam search, default 0.6")
    group.add_argument("--temperature", type=float, default=0.8,
                       help="sampling temperature of --decoding sample, default 0.8")
    group.add_argument("--top-k", type=int, default=0, help="top-k sampling, 0 = off (default)")
    group.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass, default 0.9")


def check_seq2seq_arguments(args: argparse.Namespace) -> None:
    """Rejects argument values that cannot work, before any data is read."""
    checks = [
        (args.epochs >= 1, f"--epochs must be at least 1, got {args.epochs}"),
        (args.batch_size >= 1, f"--batch-size must be at least 1, got {args.batch_size}"),
        (args.units >= 1, f"--units must be at least 1, got {args.units}"),
        (args.embedding_dim >= 1, f"--embedding-dim must be at least 1, got {args.embedding_dim}"),
        (0 <= args.dropout < 1, f"--dropout must be in [0, 1), got {args.dropout}"),
        (args.max_length >= 3, f"--max-length must be at least 3, got {args.max_length}"),
        (args.vocabulary_size >= 5,
         f"--vocabulary-size must be at least 5, got {args.vocabulary_size}"),
        (args.minutes is None or args.minutes > 0, f"--minutes must be positive, got {args.minutes}"),
        (args.limit is None or args.limit >= 2, f"--limit must be at least 2, got {args.limit}"),
        (args.beam_width >= 1, f"--beam-width must be at least 1, got {args.beam_width}"),
        (args.temperature > 0, f"--temperature must be positive, got {args.temperature}"),
        (args.top_k >= 0, f"--top-k must be ≥ 0, got {args.top_k}"),
        (0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def decoding_options(args: argparse.Namespace) -> DecodingOptions:
    return DecodingOptions(
        strategy=args.decoding,
        beam_width=args.beam_width,
        length_penalty=args.length_penalty,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
    )


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `minutes` have passed (checked after every batch)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._start > self.seconds:
            self.model.stop_training = True
            self.stopped_early = True


@dataclass
class Seq2SeqRun:
    """A trained model ready to serve, and what training measured."""

    server: TextSeq2Seq
    model: Seq2Seq
    train_seconds: float
    epochs_run: int
    held_out_perplexity: float
    stopped_early: bool


def train_seq2seq(
    train: TextPairs,
    held_out: TextPairs,
    args: argparse.Namespace,
    *,
    app: str,
    max_source_length: int | None = None,
) -> Seq2SeqRun:
    """Builds vocabularies and a model from `args`, trains on `train`, measures `held_out`.

    `app` names the run folder (backups for resuming, see
    `apps.common.training.run_directory`). `max_source_length` (tokens,
    [START]/[END] included) defaults to `args.max_length`; the chatbot needs
    more room for its context.
    """
    if len(train) == 0 or len(held_out) == 0:
        raise InputError("Need at least one training and one held-out pair.")
    max_source_length = max_source_length or args.max_length
    source_vocabulary = TokenIds(build_vocabulary(train.sources, args.vocabulary_size))
    target_vocabulary = TokenIds(build_vocabulary(train.targets, args.vocabulary_size))
    with make_strategy(args.strategy).scope():
        model = build_seq2seq(
            source_vocabulary.size,
            target_vocabulary.size,
            embedding_dim=args.embedding_dim,
            units=args.units,
            cell=args.cell,
            attention=args.attention,
            dropout=args.dropout,
            learning_rate=args.learning_rate,
        )

    def dataset(pairs: TextPairs, shuffle_seed: int | None):
        return make_dataset(
            pairs, source_vocabulary, target_vocabulary,
            max_source_length=max_source_length, max_target_length=args.max_length,
            batch_size=args.batch_size, shuffle_seed=shuffle_seed,
        )

    train_data = dataset(train, args.seed)
    # Start at the training unigram: a zero output bias lets a big skewed
    # vocabulary saturate the decoder and stall training at the unigram loss.
    set_output_prior(model, target_token_counts(train_data, target_vocabulary.size))
    held_out_data = dataset(held_out, None)
    callbacks = []
    budget = TimeBudget(args.minutes) if args.minutes else None
    if budget:
        callbacks.append(budget)
    with Stopwatch() as watch:
        history = fit(
            model, train_data, epochs=args.epochs,
            validation_data=held_out_data, verbose=args.verbose, callbacks=callbacks,
            backup_dir=run_directory(app, args) / "backup",
            checkpoint_every=args.checkpoint_every, fresh=args.fresh,
        )
    nll, tokens = token_log_likelihood(model, held_out_data)
    server = TextSeq2Seq(
        model, source_vocabulary, target_vocabulary,
        max_source_length=max_source_length, max_target_length=args.max_length,
        decoding=decoding_options(args),
    )
    return Seq2SeqRun(
        server=server,
        model=model,
        train_seconds=watch.seconds,
        epochs_run=len(history.history.get("loss", [])),
        held_out_perplexity=math.exp(nll / max(tokens, 1)),
        stopped_early=bool(budget and budget.stopped_early),
    )
