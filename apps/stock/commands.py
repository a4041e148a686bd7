"""`gru-suite train|evaluate|predict stock`: CLI wiring for the stock forecaster."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from apps.common.distributed import make_strategy
from apps.common.errors import InputError
from apps.common.export import export_serving_model, load_exported
from apps.common.training import (
    Stopwatch,
    TrainReport,
    add_training_arguments,
    publish_report,
    run_directory,
    set_seed,
)
from apps.registry import Command, register
from apps.stock import data as stock_data
from apps.stock.evaluation import Evaluation, evaluate, plot
from apps.stock.model import (
    EXTRA_FEATURES,
    Forecaster,
    TrainingConfig,
    chronological_split,
    price_windows,
    split_at,
    train_forecaster,
)

APP = "stock"
METADATA_FILE = "stock.json"


# --------------------------------------------------------------------------
# Arguments shared by the three commands
# --------------------------------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (one of --ticker, --csv, --data sample)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--ticker", help="download this symbol's history with yfinance (cached)")
    source.add_argument("--csv", type=Path,
                        help="a CSV with a date column and numeric columns (Yahoo Finance export works)")
    source.add_argument("--data", choices=["sample"], default="sample",
                        help="sample: a synthetic, deterministic daily series (default)")
    group.add_argument("--target", default="Close", help="column to forecast, default Close")
    group.add_argument("--start", default=stock_data.DEFAULT_START,
                       help=f"--ticker: first date, default {stock_data.DEFAULT_START}")
    group.add_argument("--end", default=None, help="--ticker: end date (exclusive), default today")
    group.add_argument("--interval", default="1d", help="--ticker: bar interval, default 1d")
    group.add_argument("--cache-dir", type=Path, default=stock_data.DEFAULT_CACHE_DIR,
                       help=f"--ticker: download cache, default {stock_data.DEFAULT_CACHE_DIR}")
    group.add_argument("--refresh", action="store_true", help="--ticker: download again even if cached")


def load_series(args: argparse.Namespace) -> stock_data.PriceSeries:
    if args.ticker:
        series = stock_data.load_yfinance(
            args.ticker, start=args.start, end=args.end, interval=args.interval,
            target=args.target, cache_dir=args.cache_dir, refresh=args.refresh,
        )
    elif args.csv:
        series = stock_data.load_csv(args.csv, target=args.target)
    else:
        series = stock_data.sample_prices()
    if series.note:
        print(f"note: {series.note}")
    return series


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def _features(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(set(names) - set(EXTRA_FEATURES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown feature(s) {unknown}; choose from {EXTRA_FEATURES}")
    return names


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------


def configure_train(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    group = parser.add_argument_group("model")
    group.add_argument("--window", type=_positive, default=20,
                       help="prices per input window (window - 1 returns), default 20")
    group.add_argument("--horizon", type=_positive, default=1, help="steps to forecast, default 1")
    group.add_argument("--layers", type=_positive, default=2, help="stacked recurrent layers, default 2")
    group.add_argument("--dropout", type=float, default=0.0, help="input dropout of each layer, default 0")
    group.add_argument("--features", type=_features, default=(),
                       help=f"extra inputs, comma separated from {','.join(EXTRA_FEATURES)}; "
                       "such a model is evaluated but not exported (serving takes closes only)")
    group.add_argument("--learning-rate", type=float, default=1e-3, help="default 1e-3")
    group.add_argument("--patience", type=_positive, default=5,
                       help="early-stopping patience on validation loss, default 5")
    group.add_argument("--no-shrink", action="store_true",
                       help="keep the raw model forecast (no validation-fitted shrink toward persistence)")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--ma-window", type=_positive, default=5,
                            help="prices in the moving-average baseline, default 5")
    evaluation.add_argument("--walk-forward", type=int, default=0, metavar="K",
                            help="also retrain and test on K consecutive folds after the training part")
    evaluation.add_argument("--plot", type=Path, default=None, help="write a forecast-vs-actual PNG here")
    add_training_arguments(parser, epochs=40, batch_size=32, units=32)


def _config(args: argparse.Namespace) -> TrainingConfig:
    if not 0.0 <= args.dropout < 1.0:
        raise InputError(f"--dropout must be in [0, 1) (got {args.dropout})")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1 (got {args.limit})")
    if args.walk_forward < 0:
        raise InputError(f"--walk-forward must be 0 or more folds (got {args.walk_forward})")
    return TrainingConfig(
        window=args.window, horizon=args.horizon, features=args.features, cell=args.cell,
        units=args.units, layers=args.layers, dropout=args.dropout, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        shrink=not args.no_shrink, limit=args.limit, verbose=args.verbose,
    )


def walk_forward(
    series: stock_data.PriceSeries, config: TrainingConfig, folds: int, *, ma_window: int = 5,
    val_fraction: float = 0.15, first_test_fraction: float = 0.30,
) -> list[Evaluation]:
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
        results.append(evaluate(series, split.test, forecaster.predict_prices(series, split.test),
                                model_name=f"model ({config.cell})", ma_window=ma_window))
    return results


def run_train(args: argparse.Namespace) -> TrainReport:
    config = _config(args)
    set_seed(args.seed)
    series = load_series(args)
    split = chronological_split(len(series), config.window, config.horizon)
    print(f"{series.name}: {len(series)} prices from {series.dates[0].date()} to {series.dates[-1].date()}; "
          f"{len(split.train)} train / {len(split.validation)} validation / {len(split.test)} test windows")
    with Stopwatch() as clock:
        forecaster, epochs = train_forecaster(
            series, split, config, strategy=make_strategy(args.strategy),
            backup_dir=run_directory(APP, args) / "backup",
            checkpoint_every=args.checkpoint_every, fresh=args.fresh,
        )
    model_name = f"model ({config.cell})"
    validation = evaluate(series, split.validation, forecaster.predict_prices(series, split.validation),
                          model_name=model_name, ma_window=args.ma_window)
    test = evaluate(series, split.test, forecaster.predict_prices(series, split.test),
                    model_name=model_name, ma_window=args.ma_window)
    print(test.table("test split"))
    extra = {
        "window / horizon": f"{config.window} / {config.horizon}",
        "validation RMSE / persistence": round(validation.ratio, 4),
        "test RMSE": round(test.metrics[model_name].rmse, 4),
        "test directional accuracy": None if test.direction is None else round(test.direction, 4),
        "shrink (fitted on validation)": (
            "off" if forecaster.shrink is None else [round(float(s), 3) for s in forecaster.shrink]
        ),
    }
    if args.walk_forward:
        folds = walk_forward(series, config, args.walk_forward, ma_window=args.ma_window)
        for index, fold in enumerate(folds, start=1):
            print(fold.table(f"walk-forward fold {index}/{len(folds)}"))
        extra["walk-forward RMSE / persistence"] = [round(f.ratio, 4) for f in folds]
        extra["walk-forward mean RMSE / persistence"] = round(float(np.mean([f.ratio for f in folds])), 4)
    if args.plot:
        extra["plot"] = str(plot(test, args.plot))

    export_path = None
    if config.features and not args.no_export:
        extra["export"] = ("skipped: extra features need volume/high/low, and the serving "
                           "signature takes closing prices only; train without --features to export")
    elif not args.no_export:
        exported = _export(forecaster, series, config, test, args.export_dir)
        export_path = str(exported) if exported else None
    report = TrainReport(
        app=APP, data=series.name, cell=config.cell, metric="test RMSE / persistence",
        value=test.ratio, train_seconds=clock.seconds, epochs=epochs,
        export_path=export_path, extra=extra,
    )
    return publish_report(report, args, forecaster.model)


def _export(forecaster: Forecaster, series: stock_data.PriceSeries, config: TrainingConfig,
            test: Evaluation, root: Path) -> Path | None:
    metadata = {
        "window": config.window,
        "horizon": config.horizon,
        "cell": config.cell,
        "trained_on": series.name,
        "last_training_date": str(series.dates[-1].date()),
        "test_rmse_ratio_to_persistence": test.ratio,
        "shrink": None if forecaster.shrink is None else forecaster.shrink.tolist(),
    }

    def write_metadata(directory: Path) -> None:
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))

    return export_serving_model(
        APP, forecaster.serving_function(), [forecaster.model], root, extras=write_metadata
    )


# --------------------------------------------------------------------------
# evaluate / predict (on an export)
# --------------------------------------------------------------------------


class ExportedForecaster:
    """The `serving_default` signature of a stock export, with its window and horizon."""

    def __init__(self, model_dir: Path) -> None:
        self._loaded = load_exported(model_dir)
        self._serve = self._loaded.signatures["serving_default"]
        inputs = self._serve.structured_input_signature[1]
        if "prices" not in inputs or "forecast" not in self._serve.structured_outputs:
            raise InputError(f"{model_dir}: not a stock export (no prices -> forecast signature)")
        self.window = int(inputs["prices"].shape[1])
        self.horizon = int(self._serve.structured_outputs["forecast"].shape[1])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        outputs = [
            self._serve(prices=tf.constant(windows[i:i + 512], tf.float32))["forecast"].numpy()
            for i in range(0, len(windows), 512)
        ]
        return np.concatenate(outputs).astype(np.float64)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True,
                        help="an export folder, or saved_models/stock for the newest version")


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--split", choices=["test", "all"], default="test",
                        help="test: the last 15%% of the series, as in training (default); all: every window")
    parser.add_argument("--ma-window", type=_positive, default=5,
                        help="prices in the moving-average baseline, default 5")
    parser.add_argument("--plot", type=Path, default=Path("stock_forecast.png"),
                        help="forecast-vs-actual PNG, default stock_forecast.png")


def run_evaluate(args: argparse.Namespace) -> Evaluation:
    exported = ExportedForecaster(args.model)
    series = load_series(args)
    if args.split == "test":
        anchors = chronological_split(len(series), exported.window, exported.horizon).test
    else:
        if len(series) < exported.window + exported.horizon:
            raise InputError(f"{series.name}: {len(series)} prices, fewer than window + horizon = "
                             f"{exported.window + exported.horizon}")
        anchors = np.arange(exported.window - 1, len(series) - exported.horizon)
    predicted = exported(price_windows(series.close, anchors, exported.window))
    result = evaluate(series, anchors, predicted, model_name="model", ma_window=args.ma_window)
    print(result.table(f"{args.split} split"))
    print(f"plot: {plot(result, args.plot)}")
    return result


def configure_predict(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    add_data_arguments(parser)


def future_dates(dates: pd.DatetimeIndex, steps: int, interval: str = "1d") -> pd.DatetimeIndex:
    """The `steps` dates after the last: business days for daily data, else the median spacing."""
    last = dates[-1]
    if interval == "1d":
        return pd.bdate_range(last + pd.offsets.BDay(1), periods=steps)
    spacing = pd.Series(dates).diff().median() if len(dates) > 1 else pd.Timedelta(days=1)
    return pd.DatetimeIndex([last + spacing * (k + 1) for k in range(steps)])


def run_predict(args: argparse.Namespace) -> pd.Series:
    exported = ExportedForecaster(args.model)
    series = load_series(args)
    if len(series) < exported.window:
        raise InputError(f"{series.name}: {len(series)} prices, the model needs the last {exported.window}")
    forecast = exported(series.close[None, -exported.window:])[0]
    interval = args.interval if args.ticker else "1d"
    result = pd.Series(forecast, index=future_dates(series.dates, exported.horizon, interval), name="forecast")
    print(f"{series.name}: last price {series.close[-1]:.4f} on {series.dates[-1].date()}")
    for date, price in result.items():
        print(f"  {date.date() if interval == '1d' else date}  {price:.4f}")
    return result


def demo(export_path: str) -> str:
    """Forecasts the sample series' next prices with an export (for `gru-suite reproduce`)."""
    exported = ExportedForecaster(Path(export_path))
    series = stock_data.sample_prices()
    forecast = exported(series.close[None, -exported.window:])[0]
    return (f"after {series.close[-1]:.2f}, the next {exported.horizon} price(s): "
            + ", ".join(f"{price:.2f}" for price in forecast))


register(Command("train", APP, "forecast prices from yfinance, a CSV or the synthetic sample",
                 configure_train, run_train, quick_args=("--epochs", "5"), demo=demo))
register(Command("evaluate", APP, "score a stock export against persistence and a moving average",
                 configure_evaluate, run_evaluate))
register(Command("predict", APP, "forecast the next horizon prices with a stock export",
                 configure_predict, run_predict))
