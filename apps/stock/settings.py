"""The stock app's settings: what `gru-suite train|evaluate|predict stock` take.

`train_forecaster` takes `StockTrain` itself, so each default is written here once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apps.common.config import (
    Config,
    ConfigError,
    ExistingPath,
    Names,
    NumberList,
    Text,
    at_least,
    fraction,
    setting,
)
from apps.common.errors import InputError
from apps.common.settings import (
    ExportConfig,
    TrainConfig,
    batch_size_setting,
    dropout_setting,
    epochs_setting,
    learning_rate_setting,
    units_setting,
)
from apps.stock import data as stock_data
from apps.stock.calibration import CALIBRATION_METHODS, Calibration

EXTRA_FEATURES = ("volume", "range")
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)  # the median and an 80% interval
# Chosen on stocks_long/ at horizons 1 and 5 (docs/apps/stock.md): a long window of
# past errors, weighted toward the recent ones.
DEFAULT_CALIBRATION = Calibration("additive", length=250, decay=0.985)


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    ticker: str | None = setting(None, "download this symbol's history with yfinance (cached)",
                                 check=Text(True), group="data (one of --ticker, --csv, --data sample)")
    csv: Path | None = setting(None, "a CSV with a date column and numeric columns (a Yahoo Finance "
                               "export works)", check=ExistingPath("file"),
                               group="data (one of --ticker, --csv, --data sample)")
    data: str = setting("sample", "sample: a synthetic, deterministic daily series",
                        choices=("sample",), group="data (one of --ticker, --csv, --data sample)")
    target: str = setting("Close", "column to forecast", check=Text(True), group="data")
    start: str = setting(stock_data.DEFAULT_START, "--ticker: first date", group="data")
    end: str | None = setting(None, "--ticker: end date (exclusive), default today", group="data")
    interval: str = setting("1d", "--ticker: bar interval", check=Text(True), group="data")
    cache_dir: Path = setting(stock_data.DEFAULT_CACHE_DIR, "--ticker: download cache", group="data")
    refresh: bool = setting(False, "--ticker: download again even if cached", group="data")

    def check(self) -> None:
        super().check()
        if self.ticker is not None and self.csv is not None:
            raise ConfigError(["ticker", "csv"], "give one of them, not both")

    def load_series(self) -> stock_data.PriceSeries:
        """The series these settings name, with a note printed if the loader has one."""
        if self.ticker:
            series = stock_data.load_yfinance(
                self.ticker, start=self.start, end=self.end, interval=self.interval,
                target=self.target, cache_dir=self.cache_dir, refresh=self.refresh,
            )
        elif self.csv:
            series = stock_data.load_csv(self.csv, target=self.target)
        else:
            series = stock_data.sample_prices()
        if series.note:
            print(f"note: {series.note}")
        return series


@dataclasses.dataclass(frozen=True)
class StockTrain(TrainConfig, DataSettings):
    epochs: int = epochs_setting(40)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(32)
    window: int = setting(20, "prices per input window (window - 1 returns)",
                          check=at_least(2, maximum=10_000), group="model")
    horizon: int = setting(1, "steps to forecast", check=at_least(1, maximum=1000), group="model")
    layers: int = setting(2, "stacked recurrent layers", check=at_least(1, maximum=16), group="model")
    dropout: float = dropout_setting(0.0, "input dropout of each layer")
    features: tuple[str, ...] = setting(
        (), f"extra inputs, comma separated from {','.join(EXTRA_FEATURES)}; such a model is "
        "evaluated but not exported (serving takes closes only)", check=Names(EXTRA_FEATURES),
        group="model")
    learning_rate: float = learning_rate_setting(1e-3)
    patience: int | None = setting(
        5, "stop after this many epochs without a lower validation loss, and restore the weights "
        "of the best epoch", check=at_least(1), metavar="EPOCHS", group="training")
    quantiles: tuple[float, ...] = setting(
        DEFAULT_QUANTILES, "quantile levels to forecast, trained with the pinball loss; 0.5 (the median) is "
        "the point forecast, and each pair q, 1-q is a central interval (default: an 80%% one)",
        check=NumberList(fraction(zero=False), increasing=True), metavar="Q,Q,...", group="model")
    no_shrink: bool = setting(False, "keep the raw model forecast (no validation-fitted shrink "
                              "toward persistence, no validation-fitted band width)", group="model")
    calibration: str = setting(
        DEFAULT_CALIBRATION.method, "recalibrate each interval on the model's own errors over the last "
        "--calibration-length forecasts, inside the export (additive: widen or narrow by a log return; "
        "scaled: by a factor of its own width; none: the validation-fitted band only)",
        choices=(*CALIBRATION_METHODS, "none"), group="intervals")
    calibration_length: int = setting(
        DEFAULT_CALIBRATION.length, "past forecasts each calibration scores; the export then takes window + "
        "length + horizon - 1 prices", check=at_least(1, maximum=5000), metavar="FORECASTS", group="intervals")
    calibration_decay: float = setting(
        DEFAULT_CALIBRATION.decay, "weight of a past forecast's score per step of age (1: all weigh the same)",
        check=fraction(zero=False, one=True), group="intervals")
    ma_window: int = setting(5, "prices in the moving-average baseline", check=at_least(1),
                             group="evaluation")
    walk_forward: int = setting(0, "also retrain and test on K consecutive folds after the "
                                "training part", check=at_least(0, maximum=100), metavar="K",
                                group="evaluation")
    plot: Path | None = setting(None, "write a forecast-vs-actual PNG here", group="evaluation")

    def check(self) -> None:
        super().check()
        if 0.5 not in self.quantiles:
            raise ConfigError(["quantiles"], "must include 0.5: the median is the point forecast")
        if self.interval_calibration is not None:
            try:
                self.interval_calibration.check_levels(self.quantiles)
            except InputError as error:
                raise ConfigError(["calibration_length", "calibration_decay"], str(error)) from None

    @property
    def interval_calibration(self) -> Calibration | None:
        """The calibration these settings ask for; None with `--calibration none`."""
        if self.calibration == "none":
            return None
        return Calibration(self.calibration, self.calibration_length, self.calibration_decay)


@dataclasses.dataclass(frozen=True)
class StockEvaluate(ExportConfig, DataSettings):
    split: str = setting("test", "test: the last 15%% of the series, as in training; all: every window",
                         choices=("test", "all"))
    ma_window: int = setting(5, "prices in the moving-average baseline", check=at_least(1))
    plot: Path | None = setting(Path("stock_forecast.png"), "forecast-vs-actual PNG")


@dataclasses.dataclass(frozen=True)
class StockPredict(ExportConfig, DataSettings):
    pass
