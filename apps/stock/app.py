"""The stock app: `gru-suite train|evaluate|predict stock`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from apps.common.app import App, Evaluation, Export, Fitting, Serving, Trained
from apps.common.errors import InputError
from apps.common.export import load_extra_model, save_extra_model
from apps.common.running import register_app
from apps.stock import data as stock_data
from apps.stock.calibration import Calibration, history_length
from apps.stock.data import PriceSeries
from apps.stock.evaluation import (MODEL_NAME, UNCALIBRATED_NAME, compare_intervals, evaluate, model_quantiles,
                                   plot, walk_forward)
from apps.stock.evaluation import Evaluation as Forecasts
from apps.stock.intervals import ROLLING_ANCHORS, ROLLING_TOLERANCE, central_intervals, interval_table
from apps.stock.model import Forecaster, train_forecaster
from apps.stock.page import stock_tab
from apps.stock.serving import ExportedForecaster, forecast_series, quantile_column, with_interval
from apps.stock.settings import DataSettings, StockEvaluate, StockPredict, StockTrain
from apps.stock.windows import Normalization, chronological_split, price_windows

APP = "stock"


class StockApp(App[PriceSeries, PriceSeries]):
    """Price forecasts from a recurrent model over log returns, against honest baselines."""

    name = APP
    help = {
        "train": "train a price forecaster (GRU) on a price history and export it",
        "evaluate": "score a stock export: RMSE against persistence and a moving average, intervals",
        "predict": "run a stock export on a price history: the next prices with their interval",
    }
    Train = StockTrain
    Evaluate = StockEvaluate
    Predict = StockPredict
    serving_inputs = ("prices",)
    smoke_args = ("--epochs", "1", "--units", "8", "--layers", "1")
    quick_args = ("--epochs", "5")

    def load_data(self, config: DataSettings) -> PriceSeries:
        # One series: train, validation and test are its chronological parts (`chronological_split`).
        return config.load_series()

    def train(self, config: StockTrain, series: PriceSeries, fitting: Fitting) -> Trained:
        training = config
        split = chronological_split(len(series), training.window, training.horizon)
        history = history_length(training.window, training.horizon, training.interval_calibration)
        if split.test[-1] < history - 1:
            raise InputError(f"--calibration-length: {series.name} has {len(series)} prices, and a calibrated "
                             f"test forecast needs {history} up to it; give a shorter length, or --calibration none")
        print(f"{series.name}: {len(series)} prices from {series.dates[0].date()} to "
              f"{series.dates[-1].date()}; {len(split.train)} train / {len(split.validation)} "
              f"validation / {len(split.test)} test windows")
        forecaster, epochs = train_forecaster(series, split, training, fitting)
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
            "interval calibration": (
                "off" if forecaster.calibration is None else
                f"{forecaster.calibration.method}, on the last {forecaster.calibration.length} forecasts "
                f"(decay {forecaster.calibration.decay:g}); the export takes {forecaster.history} prices"
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
            "calibration": None if forecaster.calibration is None else forecaster.calibration.to_json(),
            "history": forecaster.history,
            "normalization": forecaster.normalization.to_json(),
        }
        serving = Serving({"serving_default": forecaster.serving_function()}, [forecaster.model], metadata,
                          extras=lambda directory: save_extra_model(forecaster.model, directory))
        return Trained(forecaster.model, serving, epochs, extra)

    def evaluate(self, export: Export, series: PriceSeries, config: StockEvaluate,
                 output_dir: Path | None) -> Evaluation:
        if export.local is not None:
            local = export.local
            window, history, horizon, levels = local.window, local.history, local.horizon, local.levels
            predict = lambda anchors: model_quantiles(local, series, anchors)  # noqa: E731
        else:
            forecaster = ExportedForecaster(export)
            window, history, horizon, levels = (forecaster.window, forecaster.history, forecaster.horizon,
                                                forecaster.levels)

            def predict(anchors: np.ndarray) -> dict[str, np.ndarray]:
                served = forecaster.forecasts(price_windows(series.close, anchors, history))
                return {MODEL_NAME if name == "quantiles" else UNCALIBRATED_NAME: values
                        for name, values in served.items()}
        if len(series) < window + horizon:
            raise InputError(f"{series.name}: {len(series)} prices, fewer than window + horizon = "
                             f"{window + horizon}")
        split = chronological_split(len(series), window, horizon)
        anchors = split.test if config.split == "test" else np.arange(window - 1, len(series) - horizon)
        if history > window:
            known = anchors[anchors >= history - 1]
            if len(known) == 0:
                raise InputError(f"{series.name}: its {config.split} forecasts have fewer than the {history} "
                                 "prices before them that the export's calibrated interval needs")
            if len(known) < len(anchors):
                print(f"note: the first {len(anchors) - len(known)} {config.split} forecasts are left out: "
                      f"a calibrated interval needs {history} prices up to its anchor")
            anchors = known
        models = predict(anchors)
        quantiles = models[MODEL_NAME]
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
            intervals = compare_intervals(series, anchors, models, levels, train_end=split.train_end)
            print(interval_table(intervals, f"{config.split} split intervals"))
            lower, upper, nominal = widest[0]
            for name, metrics in intervals.items():
                details[f"{config.split} {nominal:.0%} coverage, {name}"] = metrics.coverage[nominal]
                details[f"{config.split} {nominal:.0%} interval score, {name}"] = metrics.score[nominal]
                details[f"{config.split} {nominal:.0%} worst {ROLLING_ANCHORS}-day coverage, {name}"] = (
                    metrics.worst_window[nominal])
                details[f"{config.split} {nominal:.0%} {ROLLING_ANCHORS}-day windows within "
                        f"{100 * ROLLING_TOLERANCE:g} points, {name}"] = metrics.windows_kept[nominal]
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
        series = config.load_series()
        interval = config.interval if config.ticker else "1d"
        forecaster = ExportedForecaster(export)
        result = forecast_series(forecaster, series, interval)
        print(f"{series.name}: last price {series.close[-1]:.4f} on {series.dates[-1].date()}; "
              f"the model read the last {forecaster.needs()}")
        for date, row in result.iterrows():
            print(f"  {date.date() if interval == '1d' else date}  {with_interval(row, forecaster.levels)}")
        return result

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        history = ExportedForecaster(export).history
        return {"prices": stock_data.sample_prices().close[-history:].tolist()}

    def page(self, page) -> None:
        stock_tab(page)

    def portable_serving(self, export: Export) -> Serving:
        """The export's `serving_default` rebuilt from its Keras model and metadata (the same graph)."""
        metadata = export.metadata
        if "normalization" not in metadata:
            raise InputError(f"{export.path}: the export records no normalization (it was made before "
                             "exports could be converted; train it again).")
        optional = {key: None if metadata[key] is None else np.asarray(metadata[key])
                    for key in ("shrink", "band_scale")}
        forecaster = Forecaster(
            load_extra_model(export.path), Normalization.from_json(metadata["normalization"]),
            window=int(metadata["window"]), horizon=int(metadata["horizon"]),
            levels=tuple(metadata["quantiles"]), calibration=Calibration.from_json(metadata.get("calibration")),
            **optional,
        )
        return Serving({"serving_default": forecaster.serving_function()}, [forecaster.model], metadata)

    def demo(self, export: Export) -> str:
        forecaster = ExportedForecaster(export)
        series = stock_data.sample_prices()
        result = forecast_series(forecaster, series, "1d")
        return (f"after {series.close[-1]:.2f}, the next {forecaster.horizon} price(s): "
                + ", ".join(with_interval(row, forecaster.levels, 2) for _, row in result.iterrows()))


register_app(StockApp())
