"""Intervals calibrated on the forecaster's own recent errors: rolling, weighted conformal calibration.

One band factor fitted on validation (`fit_band_scale`) keeps its width when
volatility changes, so an "80%" interval covers less after a calm validation
part and more after a turbulent one. Calibration fixes that without
look-ahead: before each forecast, the model's intervals for the last
`length` anchors whose targets are already known are scored against what
happened (conformalised quantile regression, Romano, Patterson & Candès 2019,
on a rolling window as Darts' `ConformalQRModel` does), and today's interval
is widened or narrowed by a conformal quantile of those scores. The scores
are weighted by `decay ** age` (Barber, Candès, Ramdas & Tibshirani 2023,
conformal prediction beyond exchangeability), so recent errors count most
while a long window keeps the quantile from jumping with each new miss.

For a central interval [lo, hi] around the median m with nominal coverage
1 - alpha, and a realized log return y, the score is

* `"additive"`: `max(lo - y, y - hi)` in log return, negative inside; the
  correction `s` is added to both sides (today's bounds never cross the
  median);
* `"scaled"`: `max((lo - y) / (m - lo), (y - hi) / (hi - m))`, how many of
  its own half-widths y fell outside; today's half-widths are multiplied by
  `1 + s`, so the model's shape (skew, widths per step) is kept.

`s` is the smallest score whose weight, with everything below it, reaches
1 - alpha of the total weight plus one (the weight the new point would
have, at +inf); with `decay` 1 this is the ceil((1 - alpha)(length + 1))-th
smallest score, the split-conformal quantile. Step h of a forecast made at
anchor t is calibrated on the anchors t - h - length + 1 .. t - h, the last
ones whose h-step target is known at t. Quantiles outside every central pair
are kept as they are, and all are sorted at the end (the rearrangement of
Chernozhukov et al. 2010), so a calibrated 80% interval never pokes outside a
calibrated 90% one.

`rolling_calibration` is written in TensorFlow ops that run eagerly on NumPy
arrays and inside the export's graph (built-in LiteRT and ONNX ops only), so
evaluation and serving compute the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from apps.common.errors import InputError
from apps.stock.intervals import central_intervals

CALIBRATION_METHODS = ("additive", "scaled")
# A half-width below this (log return) counts as zero in the scaled score's division.
MIN_HALF_WIDTH = 1e-9


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How intervals are calibrated: the score, the number of past forecasts scored and their weights' decay."""

    method: str
    length: int
    decay: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise InputError(f"unknown calibration method {self.method!r}; expected one of {CALIBRATION_METHODS}")
        if self.length < 1:
            raise InputError(f"the calibration length must be at least 1 past forecast (got {self.length})")
        if not 0 < self.decay <= 1:
            raise InputError(f"the calibration decay must lie in (0, 1] (got {self.decay})")

    def weights(self) -> np.ndarray:
        """The weight of each past score, oldest first: `decay ** age`, 1 for the newest."""
        return self.decay ** np.arange(self.length - 1, -1, -1, dtype=np.float64)

    def check_levels(self, levels: Sequence[float]) -> None:
        """Refuses a length and decay whose weights cannot reach the widest central interval of `levels`."""
        total = float(self.weights().sum())
        for _, _, nominal in central_intervals(levels):
            if total / (total + 1) < nominal - 1e-12:
                raise InputError(
                    f"{self.length} past forecasts with decay {self.decay:g} weigh {total:.3g} in all, too "
                    f"little for the {nominal:.0%} interval: it needs a weight of {nominal / (1 - nominal):.3g} "
                    "(a longer length, or a decay nearer 1)")

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, object] | None) -> "Calibration | None":
        return None if values is None else cls(str(values["method"]), int(values["length"]), float(values["decay"]))


def history_length(window: int, horizon: int, calibration: Calibration | None) -> int:
    """Prices up to an anchor that its forecast needs: the window, and with a calibration the
    prices of the `length` earlier forecasts of every step (`length + horizon - 1` more)."""
    return window if calibration is None else window + calibration.length + horizon - 1


def _calibration_indices(anchors: int, horizon: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather indices into flattened [horizon * anchors] per-step scores, and realized-return indices.

    First: [anchors - length - horizon + 1, horizon, length], for output i (anchor
    length + horizon - 1 + i) and step k, the anchors i + horizon - 1 - k + j, j < length,
    oldest first. Second: [anchors, horizon], the anchor k + 1 steps after each one
    (clipped at the last; those entries are never scored).
    """
    outputs = anchors - length - horizon + 1
    step = np.arange(horizon)[None, :, None]
    scored = np.arange(outputs)[:, None, None] + horizon - 1 - step + np.arange(length)[None, None, :]
    later = np.minimum(np.arange(anchors)[:, None] + np.arange(1, horizon + 1)[None, :], anchors - 1)
    return (step * anchors + scored).astype(np.int32), later.astype(np.int32)


def weighted_conformal_quantile(scores, weights: np.ndarray, nominal: float):
    """The weighted conformal quantile of `scores` [..., L] with `weights` [L], over the last axis."""
    # An ascending sort by top_k of the negated scores (TopK is a built-in op everywhere).
    negated, order = tf.math.top_k(-scores, k=int(scores.shape[-1]))
    weights = tf.constant(weights / (weights.sum() + 1.0), scores.dtype)
    reached = tf.cumsum(tf.gather(weights, order), axis=-1) >= nominal - 1e-9
    return tf.reduce_min(tf.where(reached, -negated, tf.constant(np.inf, scores.dtype)), axis=-1)


def rolling_calibration(log_quantiles, anchor_log_prices, levels: Sequence[float], median_index: int,
                        calibration: Calibration):
    """Calibrated log-return quantiles for each anchor with enough known past (NumPy or TensorFlow in).

    `log_quantiles` [B, A, H, Q]: the model's log-return quantiles at A consecutive
    anchors; `anchor_log_prices` [B, A]: the log price at each anchor (the realized
    return of anchor s at step k is the difference of entries s + k and s). A must be
    known statically. Returns [B, A - length - H + 1, H, Q] for the anchors
    length + H - 1 .. A - 1, rising along the last axis.
    """
    log_quantiles = tf.convert_to_tensor(log_quantiles)
    anchors, horizon = int(log_quantiles.shape[1]), int(log_quantiles.shape[2])
    length = calibration.length
    if anchors < length + horizon:
        raise InputError(f"calibration needs {length + horizon} consecutive forecasts "
                         f"(length {length} + horizon {horizon}), got {anchors}")
    calibration.check_levels(levels)
    scored_index, later_index = _calibration_indices(anchors, horizon, length)
    anchor_log_prices = tf.cast(anchor_log_prices, log_quantiles.dtype)
    realized = tf.gather(anchor_log_prices, later_index, axis=1) - anchor_log_prices[:, :, None]  # [B, A, H]
    today = log_quantiles[:, anchors - scored_index.shape[0]:]
    median = today[..., median_index]
    columns = [today[..., index] for index in range(len(levels))]
    for lower, upper, nominal in central_intervals(levels):
        low, high, center = log_quantiles[..., lower], log_quantiles[..., upper], log_quantiles[..., median_index]
        if calibration.method == "scaled":
            score = tf.maximum((low - realized) / tf.maximum(center - low, MIN_HALF_WIDTH),
                               (realized - high) / tf.maximum(high - center, MIN_HALF_WIDTH))
        else:
            score = tf.maximum(low - realized, realized - high)
        per_step = tf.reshape(tf.transpose(score, [0, 2, 1]), [-1, horizon * anchors])
        past = tf.gather(per_step, scored_index, axis=1)  # [B, outputs, H, length]
        correction = weighted_conformal_quantile(past, calibration.weights(), nominal)
        if calibration.method == "scaled":
            factor = tf.maximum(1.0 + correction, 0.0)
            columns[lower] = median - factor * (median - columns[lower])
            columns[upper] = median + factor * (columns[upper] - median)
        else:
            columns[lower] = tf.minimum(columns[lower] - correction, median)
            columns[upper] = tf.maximum(columns[upper] + correction, median)
    return tf.sort(tf.stack(columns, axis=-1), axis=-1)
