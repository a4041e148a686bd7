"""The settings of the text-to-text apps' commands, and how an export decodes (`DecodingOptions`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from apps.common.config import Config, Number, at_least, fraction, positive, setting
from apps.common.settings import (
    ExportConfig,
    TrainConfig,
    dropout_setting,
    embedding_dim_setting,
    learning_rate_setting,
)

STRATEGIES = ("greedy", "beam", "sample")


@dataclass(frozen=True)
class DecodingOptions:
    """How an exported model generates.

    Attributes:
        strategy: "greedy", "beam" (beam search) or "sample" (top-k / nucleus).
        beam_width: Beams kept by "beam".
        length_penalty: GNMT length-normalization exponent of "beam".
        temperature, top_k, top_p: Defaults of "sample" (see `sample_decode`).
        no_repeat_ngram: No n-gram of this size repeats within an output
            (0: off), in every strategy (see `block_repeated_ngrams`).
    """

    strategy: str = "greedy"
    beam_width: int = 4
    length_penalty: float = 0.6
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 0.9
    no_repeat_ngram: int = 0

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown decoding {self.strategy!r}; expected one of {STRATEGIES}.")
        if self.beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {self.beam_width}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"top_k must be ≥ 0 and top_p in (0, 1]; got {self.top_k} and {self.top_p}."
            )
        if self.no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be ≥ 0, got {self.no_repeat_ngram}.")

    @property
    def label(self) -> str:
        """A short description, such as "beam 4, length penalty 0.6, no repeated 3-grams"."""
        if self.strategy == "beam":
            parts = [f"beam {self.beam_width}", f"length penalty {self.length_penalty:g}"]
        elif self.strategy == "sample":
            parts = [f"sample at temperature {self.temperature:g}"]
            parts += [f"top-k {self.top_k}"] if self.top_k else []
            parts += [f"top-p {self.top_p:g}"] if self.top_p < 1 else []
        else:
            parts = ["greedy"]
        if self.no_repeat_ngram:
            parts.append(f"no repeated {self.no_repeat_ngram}-grams")
        return ", ".join(parts)


def texts_setting(help: str) -> Any:
    """The positional TEXT... of a `predict` that maps texts to texts."""
    return setting((), help, positional=True, nargs="+", metavar="TEXT")


def max_length_setting(default: int) -> Any:
    return setting(default, "tokens kept per source / generated per target",
                   check=at_least(3, maximum=10_000), group="model")


def vocabulary_size_setting(default: int) -> Any:
    return setting(default, "tokens per side, reserved ones included",
                   check=at_least(5, maximum=10_000_000), group="model")


def decoding_setting(default: str, choices: tuple[str, ...] = STRATEGIES, help: str = "") -> Any:
    return setting(default, help or "decoding of the export", choices=choices, group="decoding")


@dataclasses.dataclass(frozen=True)
class SamplingSettings(Config):
    """How a sampling decoder draws tokens: `train`'s defaults for the export, `chat`'s per turn."""

    temperature: float = setting(0.8, "sampling temperature (when the export samples)",
                                 check=positive(100.0), group="decoding")
    top_k: int = setting(0, "top-k sampling, 0 = off", check=at_least(0), group="decoding")
    top_p: float = setting(0.9, "nucleus sampling mass", check=fraction(zero=False, one=True),
                           group="decoding")


@dataclasses.dataclass(frozen=True)
class Seq2SeqTrain(TrainConfig, SamplingSettings):
    """The settings of a seq2seq app's `train`: model, training and decoding."""

    embedding_dim: int = embedding_dim_setting(128)
    attention: str = setting("luong", "multiplicative (luong) or additive (bahdanau) attention",
                             choices=("luong", "bahdanau"), group="model")
    dropout: float = dropout_setting(0.1)
    learning_rate: float = learning_rate_setting(2e-3)
    max_length: int = max_length_setting(30)
    vocabulary_size: int = vocabulary_size_setting(8000)
    copy: bool = setting(False, "let the decoder copy source tokens (a pointer-generator: "
                         "replies and translations can repeat a source's rare words and names)",
                         group="model")
    contrastive_weight: float = setting(
        0.0, "weight of a ranking term that makes each training target likelier after its own "
        "source than after another pair's (0 = off; each batch then costs about twice as much)",
        check=at_least(0.0, float, maximum=100.0), group="training")
    keep_best: bool = setting(False, "end with the weights of the epoch with the lowest validation "
                              "loss (on real data the last epoch often fits the training pairs "
                              "better and the held-out ones worse)", group="training")
    decoding: str = decoding_setting("greedy")
    beam_width: int = setting(4, "beams of --decoding beam", check=at_least(1, maximum=256),
                              group="decoding")
    length_penalty: float = setting(0.6, "GNMT length-normalization exponent of beam search",
                                    check=Number(float, 0.0, 10.0), group="decoding")
    no_repeat_ngram: int = setting(0, "no n-gram of this size repeats within an output (0 = off)",
                                   check=at_least(0, maximum=100), group="decoding")

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
