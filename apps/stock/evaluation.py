"""Forecast metrics against honest baselines, and the forecast-vs-actual plot.

Every forecast is compared with two baselines on the same anchors:
persistence (the last price, for every step ahead) and a moving average of
the last `ma_window` prices. Metrics are over all (anchor, step) pairs, in
prices: RMSE, MAE, MAPE, and directional accuracy (did the forecast move the
same way as the price, from the anchor's last price; steps where the price
did not move are left out). Persistence never moves, so it has no direction.

Quantile forecasts are also compared, by `compare_intervals`, with a normal
band from the last 20 days' volatility and with GARCH(1,1) (see
`apps.stock.intervals`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from apps.common.figures import new_figure, save_figure
from apps.stock.data import PriceSeries
from apps.stock.intervals import Garch11, IntervalMetrics, interval_metrics, normal_band
from apps.stock.model import Forecaster, train_forecaster
from apps.stock.windows import split_at
from apps.stock.settings import StockTrain

MODEL_NAME = "model"  # the trained model's row in every comparison (its intervals as served)
UNCALIBRATED_NAME = "model, uncalibrated"  # its intervals before calibration, when it has one

VOLATILITY_DAYS = 20  # the naive band's look-back


@dataclasses.dataclass(frozen=True)
class Metrics:
    rmse: float
    mae: float
    mape: float
    direction: float | None


def forecast_metrics(last: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> Metrics:
    """Metrics of `predicted` [N, H] against `actual` [N, H], from last prices `last` [N]."""
    error = predicted - actual
    actual_move = np.sign(actual - last[:, None])
    predicted_move = np.sign(predicted - last[:, None])
    moved = actual_move != 0
    direction = None
    if np.any(predicted_move != 0) and np.any(moved):
        direction = float(np.mean(predicted_move[moved] == actual_move[moved]))
    return Metrics(
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        mape=float(100 * np.mean(np.abs(error) / np.abs(actual))),
        direction=direction,
    )


def rmse_ratio(rmse: float, persistence_rmse: float) -> float:
    """`rmse / persistence_rmse`; on a series that never moved, 1.0 if the forecast did not move either."""
    if persistence_rmse == 0:
        return 1.0 if rmse == 0 else float("inf")
    return rmse / persistence_rmse


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Forecasts of a model and the baselines on one set of anchors."""

    series: PriceSeries
    anchors: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    metrics: dict[str, Metrics]
    model_name: str

    @property
    def ratio(self) -> float:
        """Model RMSE / persistence RMSE (below 1 beats persistence)."""
        return rmse_ratio(self.metrics[self.model_name].rmse, self.metrics["persistence"].rmse)

    @property
    def direction(self) -> float | None:
        return self.metrics[self.model_name].direction

    def up_share(self) -> float:
        """Share of (anchor, step) moves that went up: the 'always up' directional accuracy."""
        move = np.sign(self.actual - self.series.close[self.anchors, None])
        return float(np.mean(move[move != 0] > 0)) if np.any(move != 0) else float("nan")

    def table(self, title: str) -> str:
        first, last = self.series.dates[self.anchors[0]], self.series.dates[self.anchors[-1]]
        horizon = self.actual.shape[1]
        lines = [
            f"{title}: {len(self.anchors)} forecasts of {horizon} step(s) from "
            f"{first.date()} to {last.date()} ({self.series.name})",
            f"  {'forecast':<22}{'RMSE/persist':>13}{'RMSE':>10}{'MAE':>10}{'MAPE %':>9}{'direction':>11}",
        ]
        persistence = self.metrics["persistence"].rmse
        for name, metrics in self.metrics.items():
            direction = "n/a" if metrics.direction is None else f"{100 * metrics.direction:.1f}%"
            lines.append(
                f"  {name:<22}{rmse_ratio(metrics.rmse, persistence):>13.3f}{metrics.rmse:>10.3f}"
                f"{metrics.mae:>10.3f}{metrics.mape:>9.2f}{direction:>11}"
            )
        lines.append(f"  (prices went up in {100 * self.up_share():.1f}% of the moves)")
        return "\n".join(lines)


def evaluate(
    series: PriceSeries,
    anchors: np.ndarray,
    predicted: np.ndarray,
    *,
    model_name: str,
    ma_window: int = 5,
) -> Evaluation:
    """Scores `predicted` prices [N, H] for `anchors` against persistence and a moving average."""
    horizon = predicted.shape[1]
    close = series.close
    last = close[anchors]
    actual = actual_prices(close, anchors, horizon)
    moving_average = np.array([close[max(0, t - ma_window + 1):t + 1].mean() for t in anchors])
    forecasts = {
        model_name: predicted,
        "persistence": np.repeat(last[:, None], horizon, axis=1),
        f"moving average ({ma_window})": np.repeat(moving_average[:, None], horizon, axis=1),
    }
    metrics = {name: forecast_metrics(last, actual, values) for name, values in forecasts.items()}
    return Evaluation(series, anchors, actual, forecasts, metrics, model_name)


def actual_prices(close: np.ndarray, anchors: np.ndarray, horizon: int) -> np.ndarray:
    """The prices of the `horizon` steps after each anchor, [N, horizon]."""
    return np.stack([close[t + 1:t + horizon + 1] for t in anchors])


def compare_intervals(
    series: PriceSeries, anchors: np.ndarray, models: dict[str, np.ndarray], levels: tuple[float, ...], *,
    train_end: int,
) -> dict[str, IntervalMetrics]:
    """Interval metrics of each model's price quantiles [N, H, Q] (`models`: row name -> quantiles),
    then of the two baselines, on `anchors`.

    GARCH(1,1) is fitted on the prices before `train_end` (the training part)
    and run forward without look-ahead; the normal band uses the last
    `VOLATILITY_DAYS` returns before each anchor.
    """
    close, horizon = series.close, next(iter(models.values())).shape[1]
    actual = actual_prices(close, anchors, horizon)
    return {
        **{name: interval_metrics(actual, quantiles, levels) for name, quantiles in models.items()},
        f"normal band ({VOLATILITY_DAYS} days)": interval_metrics(
            actual, normal_band(close, anchors, horizon, levels, lookback=VOLATILITY_DAYS), levels),
        "GARCH(1,1)": interval_metrics(
            actual, Garch11.fit(close, train_end).band(close, anchors, horizon, levels), levels),
    }


def plot(evaluation: Evaluation, path: Path | str, *, step: int = 1,
         band: tuple[np.ndarray, np.ndarray, float] | None = None) -> Path:
    """Writes a PNG of actual prices and the `step`-ahead forecasts (model and baselines).

    `band`: the model's (lower, upper, nominal coverage) prices [N, H], drawn
    around its forecast.
    """
    series, anchors = evaluation.series, evaluation.anchors
    targets = anchors + step
    figure = new_figure(11, 5)
    axes = figure.subplots()
    span = slice(max(0, anchors[0] - 3 * len(anchors) // 2), targets[-1] + 1)
    axes.plot(series.dates[span], series.close[span], color="black", linewidth=1.4, label="actual")
    if band is not None:
        lower, upper, nominal = band
        axes.fill_between(series.dates[targets], lower[:, step - 1], upper[:, step - 1], color="tab:red",
                          alpha=0.15, label=f"{evaluation.model_name}, {nominal:.0%} interval")
    styles = {evaluation.model_name: ("tab:red", "-"), "persistence": ("tab:gray", ":")}
    for name, values in evaluation.forecasts.items():
        color, style = styles.get(name, ("tab:blue", "--"))
        axes.plot(series.dates[targets], values[:, step - 1], color=color, linestyle=style,
                  linewidth=1.1, label=f"{name}, {step} step(s) ahead")
    axes.axvline(pd.Timestamp(series.dates[anchors[0]]), color="tab:gray", linewidth=0.8)
    axes.set_title(f"{series.name}: forecast vs actual (ratio to persistence "
                   f"{evaluation.ratio:.3f})")
    axes.set_ylabel("price")
    axes.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return save_figure(figure, path, dpi=110)


def model_quantiles(forecaster: Forecaster, series: PriceSeries, anchors: np.ndarray) -> dict[str, np.ndarray]:
    """`compare_intervals`' models for a trained forecaster: its intervals as served, and
    uncalibrated when it calibrates them."""
    models = {MODEL_NAME: forecaster.predict_price_quantiles(series, anchors)}
    if forecaster.calibration is not None:
        models[UNCALIBRATED_NAME] = forecaster.predict_price_quantiles(series, anchors, calibrated=False)
    return models


@dataclasses.dataclass(frozen=True)
class Fold:
    """One walk-forward fold: its point forecasts, and its intervals against the baselines."""

    point: Evaluation
    intervals: dict[str, IntervalMetrics]


def walk_forward(
    series: PriceSeries, config: StockTrain, folds: int, *, ma_window: int = 5,
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
        models = model_quantiles(forecaster, series, split.test)
        point = evaluate(series, split.test, models[MODEL_NAME][..., forecaster.median_index],
                         model_name=MODEL_NAME, ma_window=ma_window)
        results.append(Fold(point, compare_intervals(series, split.test, models, forecaster.levels,
                                                     train_end=split.train_end)))
    return results
