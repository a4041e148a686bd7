"""The chatbot's settings: what `gru-suite train|evaluate|predict chatbot` and `chat` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.chatbot.data import SPLITS
from apps.common.config import (Config, ConfigError, DataSource, ExistingPath, at_least, fraction,
                                positive, setting)
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


# How the chatbot answers (`--mode`): see `apps.chatbot.retrieval`.
MODES = ("generative", "retrieval", "hybrid")


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", "sample (the chatterbot-corpus English conversations), cornell (Cornell "
        "Movie-Dialogs), a tab-separated pairs file, PATH.enc (with PATH.dec), or "
        "UTTERANCES,REPLIES line-aligned files",
        check=DataSource(("sample", "cornell"), pairs=True), group="data")
    split: str = setting(
        "blocks", "how sample and cornell hold out their validation and test pairs: blocks (whole "
        "stretches of conversation, so test movies are not training movies) or random (a seeded 10%% "
        "of the pairs, as before)", choices=SPLITS, group="data")


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
    mode: str = setting(
        "hybrid", "generative: an encoder-decoder writes each reply; retrieval: a GRU dual encoder picks "
        "the best of the --replies; hybrid: both, the picked reply when its score clears a threshold "
        "chosen on validation, else the written one", choices=MODES, group="model")
    replies: Path | None = setting(
        None, "retrieval and hybrid: the candidate replies, one per line (default: the training replies)",
        check=ExistingPath("file"), group="data")
    separate_encoders: bool = setting(
        False, "retrieval and hybrid: separate prompt and reply encoders (default: one shared encoder, "
        "a head per side)", group="model")
    retrieval_temperature: float = setting(
        0.05, "retrieval and hybrid: the dual encoder's scores are cosines divided by this",
        check=positive(10.0), group="model")
    decoding: str = decoding_setting(
        "auto", STRATEGIES + ("auto",),
        "decoding of the export; auto: the best of several on the validation split "
        "(see docs/apps/translation-chatbot.md), which ignores the beam and sampling flags")

    def check(self) -> None:
        super().check()
        if self.mode != "generative" and self.backend != "tensorflow":
            raise ConfigError(["backend", "mode"], "retrieval and hybrid train two models, on TensorFlow only")
        if self.replies is not None and self.mode == "generative":
            raise ConfigError(["replies", "mode"], "an index of replies needs --mode retrieval or hybrid")


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
