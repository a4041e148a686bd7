"""The transcriber's settings: what `gru-suite train|evaluate|predict transcriber` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.common.config import Config, ConfigError, DataSource, at_least, setting
from apps.common.settings import (
    ExportConfig,
    TrainConfig,
    batch_size_setting,
    dropout_setting,
    epochs_setting,
    learning_rate_setting,
    split_seed_setting,
    units_setting,
)
from apps.common.speech_features import MelBandSettings
from apps.transcriber.datasets import TRANSCRIPTION_DATA_SETS
from apps.transcriber.labels import DECODINGS, LABEL_SETS

# The longest file `transcribe` takes; the recurrent layers were trained on utterances of seconds.
MAX_SECONDS = 30.0
DATA_HELP = (f"{', '.join(TRANSCRIPTION_DATA_SETS)} (digits: joined from the shipped clips; "
             "digits-espeak: made with espeak-ng on first use; NAME:N for N strings), or a folder "
             "of audio with a .txt beside each clip or a TSV/CSV manifest of path,text")
TRANSCRIPTION_DATA = DataSource(("digits", "digits-espeak", "ljspeech"),
                                prefixes=("librispeech", "digits", "digits-espeak"))


@dataclasses.dataclass(frozen=True)
class TranscriptionSettings(Config):
    data: str = setting("digits", DATA_HELP, check=TRANSCRIPTION_DATA, group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class TranscriberTrain(TrainConfig, TranscriptionSettings, MelBandSettings):
    epochs: int = epochs_setting(40)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(128)
    layers: int = setting(3, "stacked bidirectional recurrent layers", check=at_least(1, maximum=12),
                          group="model")
    conv_filters: int = setting(128, "filters of each of the two convolutions before them",
                                check=at_least(1, maximum=4096), group="model")
    dropout: float = dropout_setting(0.1, "dropout after each recurrent layer")
    learning_rate: float = learning_rate_setting(1e-3, "peak of the cosine-decaying Adam learning rate")
    labels: str = setting("auto", "what the frames choose between: characters, or digits (the ten "
                          "digit words); auto: digits when every transcript is digit words",
                          choices=("auto", *LABEL_SETS), group="model")
    decoding: str = setting("beam", "how serving_default decodes (the export has both as the "
                            "greedy and beam signatures)", choices=DECODINGS, group="decoding")
    beam_width: int = setting(16, "prefixes kept by beam search", check=at_least(1, maximum=1024),
                              group="decoding")


    streaming: bool = setting(
        False, "a streaming model (causal features and convolutions, unidirectional gru_core.GRU "
        "layers) whose export adds the `stream` and `initial_state` signatures", group="model")

    def check(self) -> None:
        super().check()
        if self.streaming and self.cell != "gru":
            raise ConfigError(["cell"], f"a --streaming model is built on gru_core.GRU, got --cell {self.cell}")


@dataclasses.dataclass(frozen=True)
class TranscriberEvaluate(ExportConfig, TranscriptionSettings):
    data: str | None = setting(None, DATA_HELP + "; default: the data the export was trained on",
                               check=TRANSCRIPTION_DATA, group="data")
    decoding: str | None = setting(None, "evaluate this signature instead of serving_default",
                                   choices=DECODINGS)


@dataclasses.dataclass(frozen=True)
class TranscriberPredict(ExportConfig):
    files: tuple[Path, ...] = setting((), "audio files, any rate and channel count, up to "
                                      f"{MAX_SECONDS:g} s each", positional=True, nargs="+", metavar="FILE")
    stream: bool = setting(False, "read each file in 100 ms chunks through the export's `stream` signature "
                           "and print the transcript each time it grows (a --streaming export)")
