"""The chatbot's settings: what `gru-suite train|evaluate|predict chatbot` and `chat` take."""

from __future__ import annotations

import dataclasses

from apps.common.config import Config, DataSource, at_least, fraction, positive, setting
from apps.common.seq2seq.settings import (
    STRATEGIES,
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
        "sample", "sample (the chatterbot-corpus English conversations), cornell (Cornell "
        "Movie-Dialogs), a tab-separated pairs file, PATH.enc (with PATH.dec), or "
        "UTTERANCES,REPLIES line-aligned files",
        check=DataSource(("sample", "cornell"), pairs=True), group="data")


@dataclasses.dataclass(frozen=True)
class ChatbotTrain(Seq2SeqTrain, DataSettings):
    epochs: int = epochs_setting(15)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(128)
    max_length: int = max_length_setting(24)
    vocabulary_size: int = vocabulary_size_setting(8000)
    unconditioned: float = setting(
        0.0, "add this share of the training replies again with an empty prompt, so the model "
        "also learns P(reply) alone, which the relative-likelihood ranking divides by",
        check=fraction(one=True), group="training")
    copy: bool = setting(
        True, "let the decoder copy prompt tokens (a pointer-generator); on movie dialog it "
        "raises how often the model prefers the true reply of 20 from about 0.09 to 0.15 "
        "(see docs/apps/translation-chatbot.md)",
        group="model")
    decoding: str = decoding_setting(
        "auto", STRATEGIES + ("auto",),
        "decoding of the export; auto: the best of several on the validation split "
        "(see docs/apps/translation-chatbot.md), which ignores the beam and sampling flags")


@dataclasses.dataclass(frozen=True)
class ChatbotEvaluate(Seq2SeqEvaluate, DataSettings):
    pass


@dataclasses.dataclass(frozen=True)
class ChatbotPredict(ExportConfig):
    texts: tuple[str, ...] = texts_setting("utterances to reply to")


@dataclasses.dataclass(frozen=True)
class ChatConfig(ExportConfig):
    decoding: str = setting("", "greedy, beam or sample (default: the export's own)",
                            choices=("",) + STRATEGIES)
    temperature: float | None = setting(None, "sampling temperature (default: the export's)",
                                        check=positive(100.0), group="decoding")
    top_k: int | None = setting(None, "top-k sampling, 0 = off (default: the export's)",
                                check=at_least(0), group="decoding")
    top_p: float | None = setting(None, "nucleus sampling mass (default: the export's)",
                                  check=fraction(zero=False, one=True), group="decoding")
    no_context: bool = setting(False, "do not give the bot's previous reply as context")
