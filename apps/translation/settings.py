"""The translation app's settings: what `gru-suite train|evaluate|predict|explain translation` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.common.config import Config, DataSource, Text, setting
from apps.common.seq2seq.settings import (
    Seq2SeqEvaluate,
    Seq2SeqTrain,
    decoding_setting,
    max_length_setting,
    texts_setting,
    vocabulary_size_setting,
)
from apps.common.settings import ExportConfig, batch_size_setting, epochs_setting, units_setting


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", "sample (synthetic English->Spanish), anki:LANG (Tatoeba English->LANG), "
        "multi30k (German->English), a tab-separated pairs file, or SOURCE,TARGET line-aligned files",
        check=DataSource(("sample", "multi30k"), ("anki",), pairs=True), group="data")
    reverse: bool = setting(False, "translate the data set's target language into its source language",
                            group="data")


@dataclasses.dataclass(frozen=True)
class TranslationTrain(Seq2SeqTrain, DataSettings):
    epochs: int = epochs_setting(8)
    batch_size: int = batch_size_setting(64)
    units: int = units_setting(128)
    max_length: int = max_length_setting(30)
    vocabulary_size: int = vocabulary_size_setting(8000)
    decoding: str = decoding_setting("beam")


@dataclasses.dataclass(frozen=True)
class TranslationEvaluate(Seq2SeqEvaluate, DataSettings):
    pass


@dataclasses.dataclass(frozen=True)
class TranslationPredict(ExportConfig):
    texts: tuple[str, ...] = texts_setting("sentences to translate")


@dataclasses.dataclass(frozen=True)
class TranslationExplain(ExportConfig):
    text: str = setting("", "one sentence to translate", positional=True, check=Text(True),
                        metavar="TEXT")
    output: Path = setting(Path("attention.png"), "PNG to write")
