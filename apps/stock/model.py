"""The stock forecaster: the model, its training and its export.

Its examples (windows of log returns and their targets, split in time order)
are `apps.stock.windows`'. A forecast of zero is the persistence forecast,
which is where an untrained model (zero output bias) starts.

The model forecasts quantiles of those log returns (levels such as 0.1, 0.5,
0.9, trained with the pinball loss): the median, and steps outward from it
that are positive by construction (`MonotoneQuantiles`), so quantiles never
cross. The median is the point forecast.

Normalization is fitted on the training part of the series only, and the
validation split picks how much of the model's predicted move to keep (a
per-step shrink factor in (0, 1] for the median, see `fit_shrink`) and how
wide the band is (a factor per side and step on the distances from the median,
see `fit_band_scale`). The test split is never used for a choice. On top of
that band, each forecast's intervals are recalibrated on the model's own
errors over the forecasts just before it (`apps.stock.calibration`), in
evaluation and in the export's graph alike.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from apps.common.app import Fitting
from apps.common.cells import recurrent_layer
from apps.common.errors import InputError
from apps.stock.calibration import Calibration, history_length, rolling_calibration
from apps.stock.data import PriceSeries
from apps.stock.intervals import check_levels, pinball_loss
from apps.stock.settings import DEFAULT_QUANTILES, StockTrain
from apps.stock.windows import Normalization, Split, step_features, target_log_returns

# The smallest shrink factor: the forecast keeps the model's direction even
# when validation says its magnitude is worth (almost) nothing.
MIN_SHRINK = 0.01

# The band-width factors validation may choose from (see `fit_band_scale`);
# 0 is there for a series that never moves.
BAND_SCALES = np.concatenate([[0.0], np.geomspace(0.1, 10.0, 201)])


def check_quantiles(levels: tuple[float, ...]) -> int:
    """The index of the median in `levels`, which must rise strictly inside (0, 1) and hold 0.5."""
    check_levels(levels)
    if 0.5 not in levels:
        raise InputError(f"quantile levels must include 0.5, the median, which is the point forecast "
                         f"(got {list(levels)})")
    return levels.index(0.5)


@keras.saving.register_keras_serializable(package="gru_suite")
class MonotoneQuantiles(keras.layers.Layer):
    """Quantiles that never cross, by construction.

    Given the median `m` [B, H] and unconstrained steps `s` [B, H, Q - 1],
    the quantile just above the median is `m + softplus(s)`, the next one adds
    another softplus step, and so on outward; below the median likewise with
    minus signs. Every gap is positive, so the Q outputs rise with their level
    for any input and any weights.

    Args:
        levels: The quantile levels, rising, with 0.5 among them.
    """

    def __init__(self, levels: tuple[float, ...], **kwargs):
        super().__init__(**kwargs)
        self.levels = tuple(float(q) for q in levels)
        self.median_index = check_quantiles(self.levels)

    def call(self, median, steps):
        gaps = keras.ops.softplus(steps)
        below, above = gaps[..., :self.median_index], gaps[..., self.median_index:]
        center = median[..., None]
        # cumsum from the median outward; below is then reversed into rising order.
        lower = center - keras.ops.flip(keras.ops.cumsum(below, axis=-1), axis=-1)
        upper = center + keras.ops.cumsum(above, axis=-1)
        return keras.ops.concatenate([lower, center, upper], axis=-1)

    def compute_output_shape(self, median_shape, steps_shape):
        return (*median_shape, len(self.levels))

    def get_config(self) -> dict:
        return {**super().get_config(), "levels": list(self.levels)}


@keras.saving.register_keras_serializable(package="gru_suite")
class PinballLoss(keras.losses.Loss):
    """The mean pinball loss of quantile forecasts [B, H, Q] of targets [B, H].

    `max(q * (y - f), (q - 1) * (y - f))` per level q, averaged over levels,
    steps and the batch; its minimizer is the q-quantile of y.
    """

    def __init__(self, levels: tuple[float, ...], name: str = "pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.levels = tuple(float(q) for q in levels)

    def call(self, y_true, y_pred):
        levels = keras.ops.convert_to_tensor(self.levels, dtype=y_pred.dtype)
        error = keras.ops.cast(y_true, y_pred.dtype)[..., None] - y_pred
        return keras.ops.mean(keras.ops.maximum(levels * error, (levels - 1.0) * error), axis=(-2, -1))

    def get_config(self) -> dict:
        return {**super().get_config(), "levels": list(self.levels)}


def build_model(config: StockTrain, num_features: int = 1) -> keras.Model:
    """Stacked recurrent layers over the return window -> normalized log-return quantiles [B, horizon, Q].

    From `config` (what `gru-suite train stock` fills): `window`, `horizon`,
    `cell`, `units`, `layers`, `dropout` and `quantiles`; `num_features`
    inputs per step (the log return and `config.features`).
    """
    window, horizon, cell, units = config.window, config.horizon, config.cell, config.units
    layers, dropout, quantiles = config.layers, config.dropout, config.quantiles
    if layers < 1:
        raise InputError(f"a model needs at least 1 recurrent layer (got {layers})")
    check_quantiles(quantiles)
    inputs = keras.Input((window - 1, num_features), name="returns")
    hidden = inputs
    for index in range(layers):
        hidden = recurrent_layer(
            cell, units, return_sequences=index < layers - 1, dropout=dropout, name=f"{cell}_{index}"
        )(hidden)
    # A zero median is the persistence forecast; start there.
    # The output layers stay float32 under a mixed precision policy: the pinball
    # loss and the served quantiles need float32's resolution.
    median = keras.layers.Dense(horizon, kernel_initializer="zeros", dtype="float32", name="forecast")(hidden)
    steps = keras.layers.Dense(horizon * (len(quantiles) - 1), dtype="float32", name="quantile_steps")(hidden)
    steps = keras.layers.Reshape((horizon, len(quantiles) - 1), dtype="float32")(steps)
    outputs = MonotoneQuantiles(quantiles, dtype="float32", name="quantiles")(median, steps)
    return keras.Model(inputs, outputs, name=f"stock_{cell}")


def fit_shrink(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-step factor in [MIN_SHRINK, 1] minimizing the squared error of `factor * predicted`.

    Fitted on validation log returns: the least-squares slope through the
    origin, clipped, so an uninformative model moves toward persistence.
    """
    numerator = np.sum(predicted * actual, axis=0)
    denominator = np.sum(predicted**2, axis=0)
    slope = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return np.clip(slope, MIN_SHRINK, 1.0)


def fit_band_scale(center: np.ndarray, spread: np.ndarray, actual: np.ndarray,
                   levels: tuple[float, ...]) -> np.ndarray:
    """Per side and step, the factor on the distances from the median that minimizes validation pinball loss.

    `center` [N, H] is the (shrunk) median, `spread` [N, H, Q] each quantile's
    distance from it (negative below, positive above), `actual` [N, H] the
    log returns. Returns [2, H]: the factor below the median and above it,
    from `BAND_SCALES`. One factor per side keeps the quantiles in order.
    """
    median_index = check_quantiles(levels)
    scales = np.ones((2, actual.shape[1]))
    for side, part in ((0, slice(0, median_index)), (1, slice(median_index + 1, len(levels)))):
        if part.start == part.stop:
            continue
        for step in range(actual.shape[1]):
            steps = slice(step, step + 1)
            losses = [pinball_loss(actual[:, steps], center[:, steps, None] + scale * spread[:, steps, part],
                                   levels[part]).mean() for scale in BAND_SCALES]
            scales[side, step] = BAND_SCALES[int(np.argmin(losses))]
    return scales


def quantile_log_returns(normalized, center_scale, spread_scale, median_index: int):
    """Log-return quantiles from the model's normalized ones [N, H, Q] (NumPy or TensorFlow).

    The median is scaled by `center_scale` [H] (target scale times shrink),
    each quantile's distance from it by `spread_scale` [H, Q] (target scale
    times the band factor of its side). One formula for `Forecaster` and the
    export, so both give the same numbers.
    """
    center = normalized[..., median_index:median_index + 1]
    return center * center_scale[:, None] + (normalized - center) * spread_scale


@dataclasses.dataclass
class Forecaster:
    """A trained model with its normalization and validation-fitted shrink and band factors."""

    model: keras.Model
    normalization: Normalization
    window: int
    horizon: int
    features: tuple[str, ...] = ()
    levels: tuple[float, ...] = DEFAULT_QUANTILES
    shrink: np.ndarray | None = None  # [H], for the median
    band_scale: np.ndarray | None = None  # [2, H]: below and above the median
    calibration: Calibration | None = None

    @property
    def history(self) -> int:
        """Prices before and including the anchor that a forecast needs (its calibration's too)."""
        return history_length(self.window, self.horizon, self.calibration)

    @property
    def median_index(self) -> int:
        return self.levels.index(0.5)

    def scales(self) -> tuple[np.ndarray, np.ndarray]:
        """`quantile_log_returns`'s `center_scale` [H] and `spread_scale` [H, Q]."""
        target = self.normalization.target_scale
        center = target * (1.0 if self.shrink is None else self.shrink)
        side = np.ones((self.horizon, len(self.levels)))
        if self.band_scale is not None:
            side[:, :self.median_index] = self.band_scale[0][:, None]
            side[:, self.median_index + 1:] = self.band_scale[1][:, None]
        return center, target[:, None] * side

    def normalized_quantiles(self, series: PriceSeries, anchors: np.ndarray) -> np.ndarray:
        """The model's own output for each anchor, [N, horizon, Q] (normalized, before any factor)."""
        inputs = self.normalization.inputs(step_features(series, self.features), anchors, self.window)
        # A direct call: `predict` would retrace for every new series length.
        return np.asarray(self.model(inputs, training=False), np.float64)

    def predict_log_quantiles(self, series: PriceSeries, anchors: np.ndarray, *,
                              calibrated: bool = True) -> np.ndarray:
        """Log-return quantiles from each anchor's last price, [N, horizon, Q].

        Calibrated (when the forecaster has a calibration and `calibrated`): each
        anchor needs `history - 1` prices before it.
        """
        if self.calibration is None or not calibrated:
            return quantile_log_returns(self.normalized_quantiles(series, anchors), *self.scales(),
                                        self.median_index)
        first = int(np.min(anchors)) - self.calibration.length - self.horizon + 1
        if first < self.window - 1:
            raise InputError(f"{series.name}: a calibrated forecast at price {int(np.min(anchors))} needs "
                             f"{self.history} prices up to it")
        scored = np.arange(first, int(np.max(anchors)) + 1)
        calibrated_quantiles = rolling_calibration(
            self.predict_log_quantiles(series, scored, calibrated=False)[None],
            np.log(series.close[scored])[None], self.levels, self.median_index, self.calibration)
        # The calibrated output starts at the earliest anchor asked for.
        return calibrated_quantiles.numpy()[0][np.asarray(anchors) - int(np.min(anchors))]

    def predict_log_returns(self, series: PriceSeries, anchors: np.ndarray, *, shrunk: bool = True) -> np.ndarray:
        """Forecast (median) log returns from each anchor's last price, [N, horizon].

        Calibration moves the interval, not the median, so the median needs only the window.
        """
        if not shrunk:
            median = self.normalized_quantiles(series, anchors)[..., self.median_index]
            return median * self.normalization.target_scale
        return self.predict_log_quantiles(series, anchors, calibrated=False)[..., self.median_index]

    def predict_prices(self, series: PriceSeries, anchors: np.ndarray) -> np.ndarray:
        """Forecast (median) prices for the `horizon` steps after each anchor, [N, horizon]."""
        return series.close[anchors, None] * np.exp(self.predict_log_returns(series, anchors))

    def predict_price_quantiles(self, series: PriceSeries, anchors: np.ndarray, *,
                                calibrated: bool = True) -> np.ndarray:
        """Price quantiles for the `horizon` steps after each anchor, [N, horizon, Q]."""
        log_quantiles = self.predict_log_quantiles(series, anchors, calibrated=calibrated)
        return series.close[anchors, None, None] * np.exp(log_quantiles)

    def fit_on_validation(self, series: PriceSeries, anchors: np.ndarray) -> None:
        """Fits the median's shrink, then the band's width factors, on the validation anchors."""
        normalized = self.normalized_quantiles(series, anchors)
        actual = target_log_returns(series.close, anchors, self.horizon)
        median = normalized[..., self.median_index] * self.normalization.target_scale
        self.shrink = fit_shrink(median, actual)
        self.band_scale = None
        log_quantiles = quantile_log_returns(normalized, *self.scales(), self.median_index)
        center = log_quantiles[..., self.median_index]
        self.band_scale = fit_band_scale(center, log_quantiles - center[..., None], actual, self.levels)

    def serving_function(self) -> tf.types.experimental.PolymorphicFunction:
        """`serving_default`: `prices` float32 [None, history] -> `forecast` float32 [None, horizon]
        (the median) and `quantiles` float32 [None, horizon, Q] (rising along the last axis).

        `history` is the window, or with a calibration the window plus the
        `length + horizon - 1` earlier prices whose forecasts calibrate the
        interval; then `uncalibrated` [None, horizon, Q] also holds the
        quantiles before calibration. Only for close-price models (no extra
        features): the signature takes closing prices only. Non-finite or
        non-positive prices fail an in-graph assertion whose message names the
        problem.
        """
        if self.features:
            raise ValueError("a model with extra features cannot serve from closing prices alone")
        model, window, history, calibration = self.model, self.window, self.history, self.calibration
        mean = tf.constant(self.normalization.feature_mean[0], tf.float32)
        std = tf.constant(self.normalization.feature_std[0], tf.float32)
        center_scale, spread_scale = (tf.constant(scale, tf.float32) for scale in self.scales())
        median_index, levels = self.median_index, self.levels
        anchors = history - window + 1  # consecutive forecasts: today's and those calibrating it
        window_index = tf.constant(np.arange(anchors)[:, None] + np.arange(window - 1)[None, :], tf.int32)

        @tf.function(input_signature=[tf.TensorSpec([None, history], tf.float32, name="prices")])
        def serve(prices):
            prices = tf.debugging.assert_all_finite(
                prices, "prices: every price must be finite (found NaN or inf)"
            )
            positive = tf.debugging.assert_positive(
                prices, message="prices: every price must be > 0 (found zero or negative)"
            )
            with tf.control_dependencies([positive]):
                prices = tf.identity(prices)
            log_prices = tf.math.log(prices)
            returns = (log_prices[:, 1:] - log_prices[:, :-1] - mean) / std
            windows = tf.reshape(tf.gather(returns, window_index, axis=1), [-1, window - 1, 1])
            normalized = tf.cast(model(windows, training=False), tf.float32)
            log_quantiles = quantile_log_returns(tf.reshape(normalized, [-1, anchors, *normalized.shape[1:]]),
                                                 center_scale, spread_scale, median_index)
            last = prices[:, -1:, None]
            outputs = {"quantiles": last * tf.exp(log_quantiles[:, -1])}
            if calibration is not None:
                outputs["uncalibrated"] = outputs["quantiles"]
                calibrated = rolling_calibration(log_quantiles, log_prices[:, window - 1:], levels,
                                                 median_index, calibration)
                outputs["quantiles"] = last * tf.exp(calibrated[:, -1])
            outputs["forecast"] = outputs["quantiles"][..., median_index]
            return outputs

        return serve


def train_forecaster(
    series: PriceSeries,
    split: Split,
    config: StockTrain,
    fitting: Fitting | None = None,
) -> tuple[Forecaster, int]:
    """Fits normalization and the model on `split`, early-stopped on validation loss.

    Returns the forecaster (with the shrink and band factors fitted on
    validation unless `config.no_shrink`, and `config`'s interval calibration)
    and the number of epochs run. `config.limit`
    keeps the most recent training examples. The model is built in
    `fitting`'s strategy scope and fitted through it (without: the default
    strategy, no backups).
    """
    fitting = fitting or Fitting(config)
    features = step_features(series, config.features)
    normalization = Normalization.fit(features, series.close, split, config.horizon)
    train = split.train if config.limit is None else split.train[-config.limit:]

    def dataset(anchors: np.ndarray):
        inputs = normalization.inputs(features, anchors, config.window)
        targets = target_log_returns(series.close, anchors, config.horizon) / normalization.target_scale
        return inputs, targets.astype(np.float32)

    with fitting.scope():
        model = build_model(config, features.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=PinballLoss(config.quantiles))
    train_inputs, train_targets = dataset(train)
    history = fitting.fit(
        model,
        train_inputs,
        y=train_targets,
        batch_size=config.batch_size,
        shuffle=True,
        epochs=config.epochs,
        validation_data=dataset(split.validation),
    )
    forecaster = Forecaster(model, normalization, config.window, config.horizon, config.features,
                            config.quantiles, calibration=config.interval_calibration)
    if not config.no_shrink:
        forecaster.fit_on_validation(series, split.validation)
    return forecaster, len(history.epoch)
