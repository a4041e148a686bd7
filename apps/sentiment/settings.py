"""The sentiment app's settings: what `gru-suite train|evaluate|predict|explain sentiment` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.common.config import Config, DataSource, Text, at_least, fraction, setting
from apps.common.settings import (
    ExportConfig,
    TrainConfig,
    batch_size_setting,
    dropout_setting,
    embedding_dim_setting,
    epochs_setting,
    learning_rate_setting,
    split_seed_setting,
    units_setting,
)
from apps.common.text import RESERVED_TOKENS
from apps.sentiment.data import BUILT_IN


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", f"{', '.join(BUILT_IN)} (sample is synthetic), a CSV/TSV file, an aclImdb-style "
        "folder, or a folder with train.tsv/.csv and dev or test tables",
        check=DataSource(BUILT_IN), group="data")
    text_column: str | None = setting(None, "text column of a CSV/TSV file", check=Text(True),
                                      group="data")
    label_column: str | None = setting(None, "label column of a CSV/TSV file", check=Text(True),
                                       group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class SentimentTrain(TrainConfig, DataSettings):
    epochs: int = epochs_setting(6)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(32)
    max_length: int = setting(100, "tokens kept per text (the first ones)",
                              check=at_least(1, maximum=100_000), group="model")
    embedding_dim: int = embedding_dim_setting(64, "word vector size")
    vocabulary_size: int = setting(20000, "most frequent training tokens kept",
                                   check=at_least(len(RESERVED_TOKENS) + 1, maximum=10_000_000),
                                   group="model")
    min_count: int = setting(2, "rarer training tokens become [UNK]", check=at_least(1),
                             group="model")
    subword_buckets: int = setting(
        0, "hash buckets for character 3-5-gram features of every token (vectors for unseen "
        "words); 0 for none", check=at_least(0, maximum=10_000_000), group="model")
    dropout: float = dropout_setting(0.3)
    word_dropout: float = setting(0.1, "fraction of training tokens replaced by [UNK] each epoch",
                                  check=fraction(), group="training")
    learning_rate: float = learning_rate_setting(3e-3)
    validation_fraction: float = setting(
        0.1, "share of the training examples held out as the validation split (its loss drives "
        "--patience and TensorBoard's validation curves); 0 trains on all of them",
        check=fraction(), group="data")


@dataclasses.dataclass(frozen=True)
class SentimentEvaluate(ExportConfig, DataSettings):
    batch_size: int = setting(256, "texts per call of the export", check=at_least(1, maximum=65_536))


@dataclasses.dataclass(frozen=True)
class SentimentPredict(ExportConfig):
    texts: tuple[str, ...] = setting((), "texts to classify; without any, one text per line of stdin",
                                     positional=True, nargs="*", metavar="TEXT")
    batch_size: int = setting(256, "texts per call of the export", check=at_least(1, maximum=65_536))


@dataclasses.dataclass(frozen=True)
class SentimentExplain(ExportConfig):
    text: str = setting("", "the text to explain", positional=True, check=Text(True), metavar="TEXT")
    output: Path = setting(Path("sentiment_explain.png"), "where the PNG goes")
