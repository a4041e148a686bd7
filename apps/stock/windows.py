"""The stock forecaster's examples: chronological splits, features without look-ahead, normalization.

An example is anchored at an observation `t` (the last price the forecaster
sees). Its input is the `window` prices up to and including `t`, turned into
`window - 1` log returns (plus optional extra features per step); its target is
the cumulative log return from `t` to each of the next `horizon` steps,
`log(p[t+h] / p[t])`. Normalization is fitted on the training part only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from apps.common.errors import InputError
from apps.stock.data import PriceSeries
from apps.stock.settings import EXTRA_FEATURES


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

    def to_json(self) -> dict[str, list[float]]:
        return {field.name: getattr(self, field.name).tolist() for field in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, values: dict[str, list[float]]) -> "Normalization":
        return cls(**{field.name: np.asarray(values[field.name], np.float64) for field in dataclasses.fields(cls)})

    def inputs(self, features: np.ndarray, anchors: np.ndarray, window: int) -> np.ndarray:
        """Normalized feature windows for the anchors, float32 [N, window - 1, F]."""
        steps = np.stack([features[t - window + 2:t + 1] for t in anchors])
        return ((steps - self.feature_mean) / self.feature_std).astype(np.float32)
