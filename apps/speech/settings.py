"""The word recogniser's settings: what `gru-suite train|evaluate|predict speech` take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.common.config import Config, ConfigError, DataSource, Number, NumberList, setting
from apps.common.settings import (
    ExportConfig,
    TrainConfig,
    batch_size_setting,
    epochs_setting,
    learning_rate_setting,
    split_seed_setting,
    units_setting,
)
from apps.common.speech_features import MelBandSettings
from apps.speech.data import DATA_SETS

# Speeds a clip may be played at for speed-averaged serving.
SPEEDS = NumberList(Number(float, 0.5, 2.0))


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", f"{', '.join(DATA_SETS)} (sample is synthetic) or a folder (LABEL/*.wav or "
        "LABEL_SPEAKER_INDEX.wav)", check=DataSource(DATA_SETS), group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class SpeechTrain(TrainConfig, DataSettings, MelBandSettings):
    epochs: int = epochs_setting(60)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(64)
    learning_rate: float = learning_rate_setting(2e-3, "peak of the cosine-decaying Adam learning rate")
    test_speeds: tuple[float, ...] = setting(
        (1.0,), "run the model on each clip played at these speeds and average (test accuracy and "
        "the export), e.g. 0.85,0.9,1,1.1,1.15", check=SPEEDS,
        metavar="S1,S2,...", group="model")
    streaming: bool = setting(
        False, "a streaming model (causal features and convolutions, unidirectional gru_core.GRU "
        "layers) whose export adds the `stream` and `initial_state` signatures", group="model")

    def check(self) -> None:
        super().check()
        if self.limit is not None and self.limit < 2:
            raise ConfigError(["limit"], f"must be at least 2 clips, got {self.limit}")
        if self.streaming and self.cell != "gru":
            raise ConfigError(["cell"], f"a --streaming model is built on gru_core.GRU, got --cell {self.cell}")
        if self.streaming and self.test_speeds != (1.0,):
            raise ConfigError(["test_speeds"], "a --streaming model answers the audio as it arrives, at one speed")


@dataclasses.dataclass(frozen=True)
class SpeechEvaluate(ExportConfig, DataSettings):
    output: Path = setting(Path("speech_confusion.png"), "confusion-matrix PNG")


@dataclasses.dataclass(frozen=True)
class SpeechPredict(ExportConfig):
    files: tuple[Path, ...] = setting((), "audio files, any rate and channel count", positional=True,
                                      nargs="+", metavar="FILE")
