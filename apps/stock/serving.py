"""The client of a stock export: its forecast after a series, as a table, a line of text and a chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from apps.common.app import Export
from apps.common.errors import InputError
from apps.common.figures import new_figure, save_figure
from apps.stock.calibration import Calibration
from apps.stock.data import PriceSeries
from apps.stock.intervals import central_intervals


class ExportedForecaster:
    """A stock export's `serving_default`: a price history -> forecast, and quantiles at `levels`.

    `history` prices per forecast: the model's `window`, and with an interval
    calibration (metadata "calibration") the earlier prices it scores. An
    export made before quantile forecasts has the median only (`levels` (0.5,)).
    """

    def __init__(self, export: Export) -> None:
        self._serve = export.signature()
        self.history = int(export.input_specs()["prices"].shape[1])
        self.window = int(export.metadata.get("window") or self.history)
        self.calibration = Calibration.from_json(export.metadata.get("calibration"))
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

    def forecasts(self, histories: np.ndarray) -> dict[str, np.ndarray]:
        """Price quantiles [N, horizon, Q] for price histories [N, history]: "quantiles" as served,
        and "uncalibrated" when the export calibrates them."""
        batches = [self._serve(prices=tf.constant(histories[i:i + 512], tf.float32))
                   for i in range(0, len(histories), 512)]

        def joined(name: str) -> np.ndarray:
            return np.concatenate([batch[name].numpy() for batch in batches]).astype(np.float64)

        if len(self.levels) == 1:
            return {"quantiles": joined("forecast")[..., None]}
        result = {"quantiles": joined("quantiles")}
        if "uncalibrated" in self._serve.structured_outputs:
            result["uncalibrated"] = joined("uncalibrated")
        return result

    def quantiles(self, histories: np.ndarray) -> np.ndarray:
        """Price quantiles [N, horizon, Q] as served (calibrated, when the export calibrates)."""
        return self.forecasts(histories)["quantiles"]

    def __call__(self, histories: np.ndarray) -> np.ndarray:
        """The forecast (median) prices [N, horizon]."""
        return self.quantiles(histories)[..., self.median_index]

    def needs(self) -> str:
        """What a forecast needs, in words: "270 prices (a window of 20, and 250 more to calibrate the interval)"."""
        if self.history == self.window:
            return f"{self.history} prices"
        return (f"{self.history} prices (a window of {self.window}, and {self.history - self.window} earlier "
                "ones whose forecasts calibrate the interval)")


def future_dates(dates: pd.DatetimeIndex, steps: int, interval: str = "1d") -> pd.DatetimeIndex:
    """The `steps` dates after the last: business days for daily data, else the median spacing."""
    last = dates[-1]
    if interval == "1d":
        return pd.bdate_range(last + pd.offsets.BDay(1), periods=steps)
    spacing = pd.Series(dates).diff().median() if len(dates) > 1 else pd.Timedelta(days=1)
    return pd.DatetimeIndex([last + spacing * (k + 1) for k in range(steps)])


def quantile_column(level: float) -> str:
    return f"q{level:g}"


def forecast_series(forecaster: ExportedForecaster, series: PriceSeries,
                    interval: str) -> pd.DataFrame:
    """The export's forecast after the last price of `series`, one row per future date.

    Columns: `forecast` (the median), then `q0.1`, `q0.9`, ... for the other
    quantile levels.
    """
    if len(series) < forecaster.history:
        raise InputError(f"{series.name}: {len(series)} prices, the model needs the last {forecaster.needs()}")
    quantiles = forecaster.quantiles(series.close[None, -forecaster.history:])[0]
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


def plot_forecast(series: PriceSeries, forecast: pd.DataFrame, levels: tuple[float, ...],
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
