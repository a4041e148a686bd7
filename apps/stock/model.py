"""The stock forecaster: chronological splits, features without look-ahead, the model and its export.

An example is anchored at an observation `t` (the last price the forecaster
sees). Its input is the `window` prices up to and including `t`, turned into
`window - 1` log returns (plus optional extra features per step); its target is
the cumulative log return from `t` to each of the next `horizon` steps,
`log(p[t+h] / p[t])`. A forecast of zero is the persistence forecast, which is
where an untrained model (zero output bias) starts.

Normalization is fitted on the training part of the series only, and the
validation split picks how much of the model's predicted move to keep (a
per-step shrink factor in (0, 1], see `fit_shrink`). The test split is never
used for a choice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common.cells import recurrent_layer
from apps.common.errors import InputError
from apps.common.training import fit
from apps.stock.data import PriceSeries

EXTRA_FEATURES = ("volume", "range")
# The smallest shrink factor: the forecast keeps the model's direction even
# when validation says its magnitude is worth (almost) nothing.
MIN_SHRINK = 0.01


@dataclasses.dataclass(frozen=True)
class Split:
    """Anchor indices of each chronological split, and the boundaries in prices.

    Prices `[0, train_end)` are the training part (normalization is fitted on
    them), `[train_end, val_end)` validation, `[val_end, n)` test. Every
    target of an anchor lies inside its split; inputs may reach back into
    earlier splits (they are the past, known at forecast time).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_end: int
    val_end: int


def chronological_split(
    length: int, window: int, horizon: int, *, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> Split:
    """Splits a series of `length` prices into train / validation / test anchors, in time order."""
    if window < 2:
        raise InputError(f"the window must be at least 2 prices (got {window})")
    if horizon < 1:
        raise InputError(f"the horizon must be at least 1 step (got {horizon})")
    if length < window + horizon:
        raise InputError(
            f"series of {length} prices is shorter than window + horizon = {window + horizon}"
        )
    val_end = length - round(length * test_fraction)
    train_end = val_end - round(length * val_fraction)
    shares = f"{1 - val_fraction - test_fraction:.0%}/{val_fraction:.0%}/{test_fraction:.0%} chronological split"
    return split_at(train_end, val_end, length, window, horizon, description=shares)


def split_at(
    train_end: int, val_end: int, test_end: int, window: int, horizon: int, *, description: str = "split"
) -> Split:
    """The split with explicit price boundaries; test anchors end where targets reach `test_end`."""
    split = Split(
        train=np.arange(window - 1, train_end - horizon),
        validation=np.arange(train_end - 1, val_end - horizon),
        test=np.arange(val_end - 1, test_end - horizon),
        train_end=train_end,
        val_end=val_end,
    )
    for name in ("train", "validation", "test"):
        if len(getattr(split, name)) == 0:
            raise InputError(
                f"series of {test_end} prices leaves no {name} examples for window {window} and "
                f"horizon {horizon} with a {description}; use more data or a smaller window/horizon"
            )
    return split


def step_features(series: PriceSeries, features: tuple[str, ...] = ()) -> np.ndarray:
    """Per-observation features, float64 [n, 1 + len(features)]; row t uses data up to t only.

    Column 0 is the log return `log(p[t] / p[t-1])` (0 for the first row);
    "volume" adds `log(1 + volume[t])`, "range" the high-low range
    `log(high[t] / low[t])`.
    """
    columns = [np.concatenate([[0.0], np.diff(np.log(series.close))])]
    for feature in features:
        if feature == "volume":
            if series.volume is None:
                raise InputError(f"{series.name}: --features volume needs a Volume column")
            columns.append(np.log1p(np.maximum(series.volume, 0.0)))
        elif feature == "range":
            if series.high is None or series.low is None:
                raise InputError(f"{series.name}: --features range needs High and Low columns")
            high = np.maximum(series.high, series.close)
            low = np.clip(np.minimum(series.low, series.close), 1e-12, None)
            columns.append(np.log(high / low))
        else:
            raise InputError(f"unknown feature {feature!r}; expected one of {EXTRA_FEATURES}")
    return np.stack(columns, axis=1)


def price_windows(close: np.ndarray, anchors: np.ndarray, window: int) -> np.ndarray:
    """The `window` prices ending at each anchor, [N, window], oldest first."""
    return np.stack([close[t - window + 1:t + 1] for t in anchors])


def target_log_returns(close: np.ndarray, anchors: np.ndarray, horizon: int) -> np.ndarray:
    """`log(p[t+h] / p[t])` for h = 1..horizon, [N, horizon]."""
    return np.stack([np.log(close[t + 1:t + horizon + 1] / close[t]) for t in anchors])


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Feature means/stds and per-step target scales, fitted on the training part only."""

    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, close: np.ndarray, split: Split, horizon: int) -> "Normalization":
        """Fits on rows 1..train_end-1 (the first row has no return) and on the training targets."""
        train_rows = features[1:split.train_end]
        std = train_rows.std(axis=0)
        targets = target_log_returns(close, split.train, horizon)
        scale = np.sqrt(np.mean(targets**2, axis=0))
        return cls(
            feature_mean=train_rows.mean(axis=0),
            feature_std=np.where(std > 0, std, 1.0),
            target_scale=np.where(scale > 0, scale, 1.0),
        )

    def inputs(self, features: np.ndarray, anchors: np.ndarray, window: int) -> np.ndarray:
        """Normalized feature windows for the anchors, float32 [N, window - 1, F]."""
        steps = np.stack([features[t - window + 2:t + 1] for t in anchors])
        return ((steps - self.feature_mean) / self.feature_std).astype(np.float32)


def build_model(
    window: int,
    horizon: int,
    num_features: int = 1,
    *,
    cell: str = "gru",
    units: int = 32,
    layers: int = 2,
    dropout: float = 0.0,
) -> keras.Model:
    """Stacked recurrent layers over the return window -> Dense(horizon) normalized log returns."""
    if layers < 1:
        raise InputError(f"a model needs at least 1 recurrent layer (got {layers})")
    inputs = keras.Input((window - 1, num_features), name="returns")
    hidden = inputs
    for index in range(layers):
        hidden = recurrent_layer(
            cell, units, return_sequences=index < layers - 1, dropout=dropout, name=f"{cell}_{index}"
        )(hidden)
    # A zero output is the persistence forecast; start there.
    outputs = keras.layers.Dense(horizon, kernel_initializer="zeros", name="forecast")(hidden)
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


@dataclasses.dataclass
class Forecaster:
    """A trained model with its normalization and validation-fitted shrink factors."""

    model: keras.Model
    normalization: Normalization
    window: int
    horizon: int
    features: tuple[str, ...] = ()
    shrink: np.ndarray | None = None

    def predict_log_returns(self, series: PriceSeries, anchors: np.ndarray, *, shrunk: bool = True) -> np.ndarray:
        """Forecast log returns from each anchor's last price, [N, horizon]."""
        inputs = self.normalization.inputs(step_features(series, self.features), anchors, self.window)
        # A direct call: `predict` would retrace for every new series length.
        normalized = np.asarray(self.model(inputs, training=False), np.float64)
        returns = normalized * self.normalization.target_scale
        if shrunk and self.shrink is not None:
            returns = returns * self.shrink
        return returns

    def predict_prices(self, series: PriceSeries, anchors: np.ndarray) -> np.ndarray:
        """Forecast prices for the `horizon` steps after each anchor, [N, horizon]."""
        return series.close[anchors, None] * np.exp(self.predict_log_returns(series, anchors))

    def serving_function(self) -> tf.types.experimental.PolymorphicFunction:
        """`serving_default`: `prices` float32 [None, window] -> `forecast` float32 [None, horizon].

        Only for close-price models (no extra features): the signature takes
        closing prices only. Non-finite or non-positive prices fail an
        in-graph assertion whose message names the problem.
        """
        if self.features:
            raise ValueError("a model with extra features cannot serve from closing prices alone")
        model = self.model
        mean = tf.constant(self.normalization.feature_mean[0], tf.float32)
        std = tf.constant(self.normalization.feature_std[0], tf.float32)
        scale = self.normalization.target_scale * (1.0 if self.shrink is None else self.shrink)
        scale = tf.constant(scale, tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, self.window], tf.float32, name="prices")])
        def serve(prices):
            prices = tf.debugging.assert_all_finite(
                prices, "prices: every price must be finite (found NaN or inf)"
            )
            positive = tf.debugging.assert_positive(
                prices, message="prices: every price must be > 0 (found zero or negative)"
            )
            with tf.control_dependencies([positive]):
                prices = tf.identity(prices)
            returns = tf.math.log(prices[:, 1:] / prices[:, :-1])
            normalized = model(((returns - mean) / std)[:, :, None], training=False)
            log_returns = tf.cast(normalized, tf.float32) * scale
            return {"forecast": prices[:, -1:] * tf.exp(log_returns)}

        return serve


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one training run."""

    window: int = 20
    horizon: int = 1
    features: tuple[str, ...] = ()
    cell: str = "gru"
    units: int = 32
    layers: int = 2
    dropout: float = 0.0
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 5
    shrink: bool = True
    limit: int | None = None
    verbose: int = 1


def train_forecaster(
    series: PriceSeries,
    split: Split,
    config: TrainingConfig,
    *,
    strategy: tf.distribute.Strategy | None = None,
    backup_dir: Path | None = None,
    checkpoint_every: int | str = "epoch",
    fresh: bool = False,
) -> tuple[Forecaster, int]:
    """Fits normalization and the model on `split`, early-stopped on validation loss.

    Returns the forecaster (with shrink factors fitted on validation unless
    `config.shrink` is False) and the number of epochs run. `config.limit`
    keeps the most recent training examples. The model is built in
    `strategy`'s scope; `backup_dir`, `checkpoint_every` and `fresh` are
    `apps.common.training.fit`'s.
    """
    features = step_features(series, config.features)
    normalization = Normalization.fit(features, series.close, split, config.horizon)
    train = split.train if config.limit is None else split.train[-config.limit:]

    def dataset(anchors: np.ndarray):
        inputs = normalization.inputs(features, anchors, config.window)
        targets = target_log_returns(series.close, anchors, config.horizon) / normalization.target_scale
        return inputs, targets.astype(np.float32)

    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(
            config.window, config.horizon, features.shape[1], cell=config.cell,
            units=config.units, layers=config.layers, dropout=config.dropout,
        )
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    train_inputs, train_targets = dataset(train)
    history = fit(
        model,
        train_inputs,
        y=train_targets,
        batch_size=config.batch_size,
        shuffle=True,
        epochs=config.epochs,
        validation_data=dataset(split.validation),
        verbose=config.verbose,
        callbacks=[keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        )],
        backup_dir=backup_dir,
        checkpoint_every=checkpoint_every,
        fresh=fresh,
    )
    forecaster = Forecaster(model, normalization, config.window, config.horizon, config.features)
    if config.shrink:
        predicted = forecaster.predict_log_returns(series, split.validation, shrunk=False)
        actual = target_log_returns(series.close, split.validation, config.horizon)
        forecaster.shrink = fit_shrink(predicted, actual)
    return forecaster, len(history.epoch)
