"""Forecast metrics against honest baselines, and the forecast-vs-actual plot.

Every forecast is compared with two baselines on the same anchors:
persistence (the last price, for every step ahead) and a moving average of
the last `ma_window` prices. Metrics are over all (anchor, step) pairs, in
prices: RMSE, MAE, MAPE, and directional accuracy (did the forecast move the
same way as the price, from the anchor's last price; steps where the price
did not move are left out). Persistence never moves, so it has no direction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from apps.common.figures import new_figure, save_figure
from apps.stock.data import PriceSeries


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
        return self.metrics[self.model_name].rmse / self.metrics["persistence"].rmse

    @property
    def direction(self) -> float | None:
        return self.metrics[self.model_name].direction

    def up_share(self) -> float:
        """Share of (anchor, step) moves that went up: the 'always up' directional accuracy."""
        move = np.sign(self.actual - self.series.close[self.anchors, None])
        return float(np.mean(move[move != 0] > 0))

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
                f"  {name:<22}{metrics.rmse / persistence:>13.3f}{metrics.rmse:>10.3f}"
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
    actual = np.stack([close[t + 1:t + horizon + 1] for t in anchors])
    moving_average = np.array([close[max(0, t - ma_window + 1):t + 1].mean() for t in anchors])
    forecasts = {
        model_name: predicted,
        "persistence": np.repeat(last[:, None], horizon, axis=1),
        f"moving average ({ma_window})": np.repeat(moving_average[:, None], horizon, axis=1),
    }
    metrics = {name: forecast_metrics(last, actual, values) for name, values in forecasts.items()}
    return Evaluation(series, anchors, actual, forecasts, metrics, model_name)


def plot(evaluation: Evaluation, path: Path | str, *, step: int = 1) -> Path:
    """Writes a PNG of actual prices and the `step`-ahead forecasts (model and baselines)."""
    series, anchors = evaluation.series, evaluation.anchors
    targets = anchors + step
    figure = new_figure(11, 5)
    axes = figure.subplots()
    span = slice(max(0, anchors[0] - 3 * len(anchors) // 2), targets[-1] + 1)
    axes.plot(series.dates[span], series.close[span], color="black", linewidth=1.4, label="actual")
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
