"""The stock app: `gru-suite train|evaluate|predict stock`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from apps.common.app import (
    App,
    Evaluation,
    Export,
    ExportConfig,
    Fitting,
    Serving,
    Splits,
    Trained,
    TrainConfig,
    batch_size_setting,
    epochs_setting,
    register_app,
    units_setting,
)
from apps.common.config import (
    Config,
    ConfigError,
    ExistingPath,
    Names,
    NumberList,
    Text,
    at_least,
    fraction,
    positive,
    setting,
)
from apps.common.errors import InputError
from apps.common.figures import new_figure, save_figure
from apps.stock import data as stock_data
from apps.stock.evaluation import Evaluation as Forecasts
from apps.stock.evaluation import compare_intervals, evaluate, plot
from apps.stock.intervals import IntervalMetrics, central_intervals, interval_table
from apps.stock.model import (
    DEFAULT_QUANTILES,
    EXTRA_FEATURES,
    TrainingConfig,
    chronological_split,
    price_windows,
    split_at,
    train_forecaster,
)

APP = "stock"
MODEL_NAME = "model"


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


def load_series(config: DataSettings) -> stock_data.PriceSeries:
    if config.ticker:
        series = stock_data.load_yfinance(
            config.ticker, start=config.start, end=config.end, interval=config.interval,
            target=config.target, cache_dir=config.cache_dir, refresh=config.refresh,
        )
    elif config.csv:
        series = stock_data.load_csv(config.csv, target=config.target)
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
    dropout: float = setting(0.0, "input dropout of each layer", check=fraction(), group="model")
    features: tuple[str, ...] = setting(
        (), f"extra inputs, comma separated from {','.join(EXTRA_FEATURES)}; such a model is "
        "evaluated but not exported (serving takes closes only)", check=Names(EXTRA_FEATURES),
        group="model")
    learning_rate: float = setting(1e-3, "Adam learning rate", check=positive(10.0), group="model")
    patience: int = setting(5, "early-stopping patience on validation loss", check=at_least(1),
                            group="model")
    quantiles: tuple[float, ...] = setting(
        DEFAULT_QUANTILES, "quantile levels to forecast, trained with the pinball loss; 0.5 (the median) is "
        "the point forecast, and each pair q, 1-q is a central interval (default: an 80%% one)",
        check=NumberList(fraction(zero=False), increasing=True), metavar="Q,Q,...", group="model")
    no_shrink: bool = setting(False, "keep the raw model forecast (no validation-fitted shrink "
                              "toward persistence, no validation-fitted band width)", group="model")
    ma_window: int = setting(5, "prices in the moving-average baseline", check=at_least(1),
                             group="evaluation")
    walk_forward: int = setting(0, "also retrain and test on K consecutive folds after the "
                                "training part", check=at_least(0, maximum=100), metavar="K",
                                group="evaluation")
    plot: Path | None = setting(None, "write a forecast-vs-actual PNG here", group="evaluation")

    @property
    def training(self) -> TrainingConfig:
        return TrainingConfig(
            window=self.window, horizon=self.horizon, features=self.features, cell=self.cell,
            units=self.units, layers=self.layers, dropout=self.dropout, epochs=self.epochs,
            batch_size=self.batch_size, learning_rate=self.learning_rate, patience=self.patience,
            quantiles=self.quantiles, shrink=not self.no_shrink, limit=self.limit, verbose=self.verbose,
        )

    def check(self) -> None:
        super().check()
        if 0.5 not in self.quantiles:
            raise ConfigError(["quantiles"], "must include 0.5: the median is the point forecast")


@dataclasses.dataclass(frozen=True)
class StockEvaluate(ExportConfig, DataSettings):
    split: str = setting("test", "test: the last 15%% of the series, as in training; all: every window",
                         choices=("test", "all"))
    ma_window: int = setting(5, "prices in the moving-average baseline", check=at_least(1))
    plot: Path | None = setting(Path("stock_forecast.png"), "forecast-vs-actual PNG")


@dataclasses.dataclass(frozen=True)
class StockPredict(ExportConfig, DataSettings):
    pass


@dataclasses.dataclass(frozen=True)
class Fold:
    """One walk-forward fold: its point forecasts, and its intervals against the baselines."""

    point: Forecasts
    intervals: dict[str, IntervalMetrics]


def walk_forward(
    series: stock_data.PriceSeries, config: TrainingConfig, folds: int, *, ma_window: int = 5,
    val_fraction: float = 0.15, first_test_fraction: float = 0.30,
) -> list[Fold]:
    """Retrains on an expanding history and tests on each of `folds` consecutive blocks.

    The last `first_test_fraction` of the series is cut into `folds` blocks;
    fold k trains on everything before its block (its last `val_fraction` of
    the series as validation) and is tested on the block.
    """
    length = len(series)
    start = length - round(length * first_test_fraction)
    bounds = np.linspace(start, length, folds + 1).round().astype(int)
    val_length = round(length * val_fraction)
    results = []
    for fold, (test_start, test_end) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        split = split_at(test_start - val_length, test_start, test_end, config.window, config.horizon,
                         description=f"walk-forward fold {fold} of {folds}")
        forecaster, _ = train_forecaster(series, split, dataclasses.replace(config, verbose=0))
        quantiles = forecaster.predict_price_quantiles(series, split.test)
        point = evaluate(series, split.test, quantiles[..., forecaster.median_index], model_name=MODEL_NAME,
                         ma_window=ma_window)
        results.append(Fold(point, compare_intervals(series, split.test, quantiles, forecaster.levels,
                                                     train_end=split.train_end, model_name=MODEL_NAME)))
    return results


class ExportedForecaster:
    """A stock export's `serving_default`: prices -> forecast, and quantiles at `levels`.

    An export made before quantile forecasts has the median only (`levels` (0.5,)).
    """

    def __init__(self, export: Export) -> None:
        self._serve = export.signature()
        self.window = int(export.input_specs()["prices"].shape[1])
        self.horizon = int(self._serve.structured_outputs["forecast"].shape[1])
        self.levels = (0.5,)
        if "quantiles" in self._serve.structured_outputs:
            self.levels = tuple(export.metadata.get("quantiles") or ())
            if 0.5 not in self.levels:
                raise InputError(f"{export.path or 'the model'}: the export returns quantiles, but its metadata "
                                 "names no levels with 0.5 among them (\"quantiles\" in assets.extra/gru_suite.json)")

    @property
    def median_index(self) -> int:
        return self.levels.index(0.5)

    def quantiles(self, windows: np.ndarray) -> np.ndarray:
        """Price quantiles [N, horizon, Q] for price windows [N, window]."""
        output = "quantiles" if len(self.levels) > 1 else "forecast"
        outputs = [
            self._serve(prices=tf.constant(windows[i:i + 512], tf.float32))[output].numpy()
            for i in range(0, len(windows), 512)
        ]
        result = np.concatenate(outputs).astype(np.float64)
        return result if len(self.levels) > 1 else result[..., None]

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """The forecast (median) prices [N, horizon]."""
        return self.quantiles(windows)[..., self.median_index]


def future_dates(dates: pd.DatetimeIndex, steps: int, interval: str = "1d") -> pd.DatetimeIndex:
    """The `steps` dates after the last: business days for daily data, else the median spacing."""
    last = dates[-1]
    if interval == "1d":
        return pd.bdate_range(last + pd.offsets.BDay(1), periods=steps)
    spacing = pd.Series(dates).diff().median() if len(dates) > 1 else pd.Timedelta(days=1)
    return pd.DatetimeIndex([last + spacing * (k + 1) for k in range(steps)])


def quantile_column(level: float) -> str:
    return f"q{level:g}"


def forecast_series(forecaster: ExportedForecaster, series: stock_data.PriceSeries,
                    interval: str) -> pd.DataFrame:
    """The export's forecast after the last price of `series`, one row per future date.

    Columns: `forecast` (the median), then `q0.1`, `q0.9`, ... for the other
    quantile levels.
    """
    if len(series) < forecaster.window:
        raise InputError(f"{series.name}: {len(series)} prices, the model needs the last {forecaster.window}")
    quantiles = forecaster.quantiles(series.close[None, -forecaster.window:])[0]
    columns = {"forecast": quantiles[:, forecaster.median_index]}
    columns.update({quantile_column(level): quantiles[:, index] for index, level in enumerate(forecaster.levels)
                    if index != forecaster.median_index})
    return pd.DataFrame(columns, index=future_dates(series.dates, forecaster.horizon, interval))


def widest_interval(levels: tuple[float, ...]) -> tuple[str, str, float] | None:
    """The columns of the outermost central interval of `forecast_series`, and its coverage."""
    intervals = central_intervals(levels)
    if not intervals:
        return None
    lower, upper, nominal = intervals[0]
    return quantile_column(levels[lower]), quantile_column(levels[upper]), nominal


def with_interval(row: pd.Series, levels: tuple[float, ...], digits: int = 4) -> str:
    """A row of `forecast_series` as "166.18 (80%: 164.45 to 168.30)" (the widest interval, if any)."""
    text = f"{row['forecast']:.{digits}f}"
    widest = widest_interval(levels)
    if widest is None:
        return text
    lower, upper, nominal = widest
    return f"{text} ({nominal:.0%}: {row[lower]:.{digits}f} to {row[upper]:.{digits}f})"


def plot_forecast(series: stock_data.PriceSeries, forecast: pd.DataFrame, levels: tuple[float, ...],
                  path: Path, history: int = 120) -> Path:
    """A PNG of the last `history` prices, the forecast after them and its widest interval."""
    figure = new_figure(9, 4)
    axes = figure.subplots()
    axes.plot(series.dates[-history:], series.close[-history:], color="black", linewidth=1.2, label="history")
    widest = widest_interval(levels)
    if widest is not None:
        lower, upper, nominal = widest
        axes.fill_between([series.dates[-1], *forecast.index], [series.close[-1], *forecast[lower]],
                          [series.close[-1], *forecast[upper]], color="tab:red", alpha=0.2,
                          label=f"{nominal:.0%} interval")
    axes.plot([series.dates[-1], *forecast.index], [series.close[-1], *forecast["forecast"]], color="tab:red",
              marker="o", markersize=3, linewidth=1.4, label="forecast (median)")
    axes.set_title(f"{series.name}: the next {len(forecast)} price(s)")
    axes.set_ylabel("price")
    axes.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return save_figure(figure, path, dpi=100)


class StockApp(App):
    """Price forecasts from a recurrent model over log returns, against honest baselines."""

    name = APP
    help = {
        "train": "forecast prices from yfinance, a CSV or the synthetic sample",
        "evaluate": "score a stock export against persistence and a moving average",
        "predict": "forecast the next horizon prices with a stock export",
    }
    Train = StockTrain
    Evaluate = StockEvaluate
    Predict = StockPredict
    serving_inputs = ("prices",)
    smoke_args = ("--epochs", "1", "--units", "8", "--layers", "1")
    quick_args = ("--epochs", "5")

    def load_data(self, config: DataSettings) -> Splits:
        series = load_series(config)
        # One series: train, validation and test are its chronological parts (`chronological_split`).
        return Splits(series.name, series, None, series)

    def train(self, config: StockTrain, data: Splits, fitting: Fitting) -> Trained:
        series, training = data.train, config.training
        split = chronological_split(len(series), training.window, training.horizon)
        print(f"{series.name}: {len(series)} prices from {series.dates[0].date()} to "
              f"{series.dates[-1].date()}; {len(split.train)} train / {len(split.validation)} "
              f"validation / {len(split.test)} test windows")
        forecaster, epochs = train_forecaster(
            series, split, training, strategy=fitting.strategy, backup_dir=fitting.backup_dir,
            checkpoint_every=fitting.checkpoint_every, fresh=fitting.fresh,
        )
        validation = evaluate(series, split.validation, forecaster.predict_prices(series, split.validation),
                              model_name=MODEL_NAME, ma_window=config.ma_window)
        extra = {
            "window / horizon": f"{training.window} / {training.horizon}",
            "validation RMSE / persistence": round(validation.ratio, 4),
            "shrink (fitted on validation)": (
                "off" if forecaster.shrink is None else [round(float(s), 3) for s in forecaster.shrink]
            ),
            "band width below / above the median (fitted on validation)": (
                "off" if forecaster.band_scale is None else forecaster.band_scale.round(3).tolist()
            ),
        }
        if config.walk_forward:
            folds = walk_forward(series, training, config.walk_forward, ma_window=config.ma_window)
            for index, fold in enumerate(folds, start=1):
                title = f"walk-forward fold {index}/{len(folds)}"
                print(fold.point.table(title))
                if len(forecaster.levels) > 1:
                    print(interval_table(fold.intervals, title))
            extra["walk-forward RMSE / persistence"] = [round(f.point.ratio, 4) for f in folds]
            extra["walk-forward mean RMSE / persistence"] = round(
                float(np.mean([f.point.ratio for f in folds])), 4)
            widest = central_intervals(forecaster.levels)
            if widest:
                nominal = widest[0][2]
                for name in folds[0].intervals:
                    extra[f"walk-forward {nominal:.0%} coverage / interval score, {name}"] = [
                        [round(f.intervals[name].coverage[nominal], 4), round(f.intervals[name].score[nominal], 4)]
                        for f in folds]
        if training.features:
            return Trained(forecaster.model, Serving({}, []), epochs, extra, local=forecaster,
                           export_skipped="extra features need volume/high/low, and the serving "
                           "signature takes closing prices only; train without --features to export")
        metadata = {
            "window": training.window,
            "horizon": training.horizon,
            "cell": training.cell,
            "trained_on": series.name,
            "last_training_date": str(series.dates[-1].date()),
            "shrink": None if forecaster.shrink is None else forecaster.shrink.tolist(),
            "quantiles": list(forecaster.levels),
            "band_scale": None if forecaster.band_scale is None else forecaster.band_scale.tolist(),
        }
        serving = Serving({"serving_default": forecaster.serving_function()}, [forecaster.model], metadata)
        return Trained(forecaster.model, serving, epochs, extra)

    def evaluate(self, export: Export, data: Splits, config: StockEvaluate,
                 output_dir: Path | None) -> Evaluation:
        series = data.test
        if export.local is not None:
            local = export.local
            window, horizon, levels = local.window, local.horizon, local.levels
            predict = lambda anchors: local.predict_price_quantiles(series, anchors)  # noqa: E731
        else:
            forecaster = ExportedForecaster(export)
            window, horizon, levels = forecaster.window, forecaster.horizon, forecaster.levels
            predict = lambda anchors: forecaster.quantiles(price_windows(series.close, anchors, window))  # noqa: E731
        if len(series) < window + horizon:
            raise InputError(f"{series.name}: {len(series)} prices, fewer than window + horizon = "
                             f"{window + horizon}")
        split = chronological_split(len(series), window, horizon)
        anchors = split.test if config.split == "test" else np.arange(window - 1, len(series) - horizon)
        quantiles = predict(anchors)
        result: Forecasts = evaluate(series, anchors, quantiles[..., levels.index(0.5)], model_name=MODEL_NAME,
                                     ma_window=config.ma_window)
        print(result.table(f"{config.split} split"))
        details = {
            f"{config.split} RMSE": result.metrics[MODEL_NAME].rmse,
            f"{config.split} directional accuracy": result.direction,
        }
        widest = central_intervals(levels)
        band = None
        if widest:
            # GARCH is fitted on the training part: in-sample for --split all's early anchors.
            intervals = compare_intervals(series, anchors, quantiles, levels, train_end=split.train_end,
                                          model_name=MODEL_NAME)
            print(interval_table(intervals, f"{config.split} split intervals"))
            lower, upper, nominal = widest[0]
            for name, metrics in intervals.items():
                details[f"{config.split} {nominal:.0%} coverage, {name}"] = metrics.coverage[nominal]
                details[f"{config.split} {nominal:.0%} interval score, {name}"] = metrics.score[nominal]
            details[f"{config.split} pinball loss per quantile"] = dict(
                zip(map(quantile_column, levels), intervals[MODEL_NAME].pinball))
            band = (quantiles[..., lower], quantiles[..., upper], nominal)
        if config.plot is not None:
            details["plot"] = str(plot(result, config.plot, band=band))
        return Evaluation(
            f"{config.split} RMSE / persistence", result.ratio, details,
            summary=f"RMSE / persistence {result.ratio:.4f} on {len(anchors)} {config.split} "
            f"forecasts of {series.name}",
        )

    def predict(self, export: Export, config: StockPredict) -> pd.Series:
        series = load_series(config)
        interval = config.interval if config.ticker else "1d"
        forecaster = ExportedForecaster(export)
        result = forecast_series(forecaster, series, interval)
        print(f"{series.name}: last price {series.close[-1]:.4f} on {series.dates[-1].date()}")
        for date, row in result.iterrows():
            print(f"  {date.date() if interval == '1d' else date}  {with_interval(row, forecaster.levels)}")
        return result

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        window = ExportedForecaster(export).window
        return {"prices": stock_data.sample_prices().close[-window:].tolist()}

    def page(self, page) -> None:
        import gradio as gr

        upload = gr.File(label="A price CSV (a date column and a Close column; empty: the synthetic sample)",
                         file_types=[".csv"], type="filepath")
        button = gr.Button("Forecast", variant="primary")
        chart = gr.Image(label="History and forecast", type="filepath")
        table = gr.Dataframe(label="Forecast (the median, and the other quantiles)", interactive=False)

        def forecast(path: str | None):
            forecaster = ExportedForecaster(page.export())
            series = load_series(StockPredict(csv=Path(path)) if path else StockPredict())
            result = forecast_series(forecaster, series, "1d")
            picture = plot_forecast(series, result, forecaster.levels, page.figure_path("forecast.png"))
            rows = result.round(4).reset_index(names="date")
            rows["date"] = rows["date"].dt.strftime("%Y-%m-%d")
            return str(picture), rows

        button.click(page.handler(forecast), upload, [chart, table])

    def demo(self, export: Export) -> str:
        forecaster = ExportedForecaster(export)
        series = stock_data.sample_prices()
        result = forecast_series(forecaster, series, "1d")
        return (f"after {series.close[-1]:.2f}, the next {forecaster.horizon} price(s): "
                + ", ".join(with_interval(row, forecaster.levels, 2) for _, row in result.iterrows()))


register_app(StockApp())
