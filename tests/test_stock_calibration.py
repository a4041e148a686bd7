"""Tests for the stock intervals' calibration on recent errors: the conformal quantile, no look-ahead,
recovery after a volatility jump, and the same numbers in evaluation and in the served graph."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

from apps.common.errors import InputError
from apps.stock.calibration import Calibration, rolling_calibration, weighted_conformal_quantile
from apps.stock.data import sample_prices
from apps.stock.model import Forecaster, build_model
from apps.stock.settings import DEFAULT_CALIBRATION, StockTrain
from apps.stock.windows import Normalization, chronological_split, price_windows, step_features

LEVELS = (0.1, 0.5, 0.9)


def test_without_decay_the_quantile_is_the_split_conformal_rank_and_decay_forgets_old_errors():
    scores = tf.constant([[5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 0.0]])
    # ceil(0.8 * (10 + 1)) = 9: the 9th smallest of 0..9.
    assert float(weighted_conformal_quantile(scores, np.ones(10), 0.8)[0]) == 8.0
    old_misses = tf.constant([[100.0] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0]])  # oldest first
    assert float(weighted_conformal_quantile(old_misses, np.ones(10), 0.5)[0]) == 100.0
    halving = Calibration("additive", 10, 0.5).weights()
    np.testing.assert_allclose(halving[-3:], [0.25, 0.5, 1.0])
    assert float(weighted_conformal_quantile(old_misses, halving, 0.5)[0]) == 5.0


def test_too_little_weight_for_the_interval_is_refused():
    with pytest.raises(InputError, match="too little for the 80% interval"):
        Calibration("additive", 3).check_levels(LEVELS)
    with pytest.raises(InputError, match="too little for the 80% interval"):
        Calibration("additive", 250, 0.5).check_levels(LEVELS)
    Calibration("additive", 4).check_levels(LEVELS)  # 4 / 5 reaches 0.8 exactly
    with pytest.raises(InputError, match="decay"):
        Calibration("additive", 10, 1.5)


@pytest.mark.parametrize("method", ["additive", "scaled"])
def test_after_a_volatility_jump_calibrated_coverage_returns_to_nominal_and_uncalibrated_does_not(method):
    rng = np.random.default_rng(0)
    count, jump = 3000, 1200
    returns = rng.normal(0.0, np.where(np.arange(count) < jump, 0.01, 0.03))
    log_prices = np.concatenate([[0.0], np.cumsum(returns)])
    # A band right for the calm part, the same at every anchor.
    band = np.broadcast_to(norm.ppf(LEVELS) * 0.01, (1, count, 1, 3))
    calibration = Calibration(method, DEFAULT_CALIBRATION.length, DEFAULT_CALIBRATION.decay)
    calibrated = rolling_calibration(band, log_prices[None, :count], LEVELS, 1, calibration).numpy()[0, :, 0]
    first = calibration.length  # the first calibrated anchor (horizon 1)
    anchors = np.arange(first, count)

    def coverage(bounds: np.ndarray, span: slice) -> float:
        inside = (returns[anchors] >= bounds[:, 0]) & (returns[anchors] <= bounds[:, 2])
        return float(inside[span].mean())

    settled = slice(jump + calibration.length - first, None)
    assert coverage(calibrated, slice(0, jump - first)) == pytest.approx(0.8, abs=0.04)
    assert coverage(calibrated, settled) == pytest.approx(0.8, abs=0.04)
    assert coverage(np.broadcast_to(band[0, 0, 0], (len(anchors), 3)), settled) < 0.45
    assert np.all(np.diff(calibrated, axis=-1) >= 0)


@pytest.fixture(scope="module")
def forecaster() -> Forecaster:
    """An untrained two-step model (random quantile steps) with a short calibration."""
    series = sample_prices()
    config = StockTrain(window=8, horizon=2, units=4, layers=1)
    split = chronological_split(len(series), config.window, config.horizon)
    normalization = Normalization.fit(step_features(series), series.close, split, config.horizon)
    tf.keras.utils.set_random_seed(3)
    return Forecaster(build_model(config), normalization, config.window, config.horizon,
                      calibration=Calibration("additive", 40, 0.97))


def test_later_prices_never_move_an_earlier_calibrated_band(forecaster):
    series = sample_prices()
    anchors = np.arange(300, 400)
    before = forecaster.predict_price_quantiles(series, anchors)
    changed = series.close.copy()
    changed[351:] *= np.exp(np.random.default_rng(1).normal(0, 0.05, len(changed) - 351))
    after = forecaster.predict_price_quantiles(dataclasses.replace(series, close=changed), anchors)
    np.testing.assert_array_equal(after[anchors <= 350], before[anchors <= 350])
    assert not np.allclose(after[anchors > 350], before[anchors > 350])
    with pytest.raises(InputError, match="needs 49 prices up to it"):
        forecaster.predict_price_quantiles(series, np.arange(40, 50))


def test_the_served_graph_calibrates_as_evaluation_does_and_checks_its_history(forecaster):
    series = sample_prices()
    anchors = np.arange(600, 700, 7)
    serve = forecaster.serving_function()
    assert forecaster.history == 8 + 40 + 2 - 1
    histories = price_windows(series.close, anchors, forecaster.history).astype(np.float32)
    served = serve(prices=tf.constant(histories))
    np.testing.assert_allclose(served["quantiles"].numpy(), forecaster.predict_price_quantiles(series, anchors),
                               rtol=2e-5)
    np.testing.assert_allclose(served["uncalibrated"].numpy(),
                               forecaster.predict_price_quantiles(series, anchors, calibrated=False), rtol=2e-5)
    np.testing.assert_array_equal(served["forecast"].numpy(), served["quantiles"].numpy()[..., 1])
    assert not np.allclose(served["quantiles"].numpy(), served["uncalibrated"].numpy())
    for bad, message in ((np.nan, "must be finite"), (0.0, "must be > 0")):
        broken = histories.copy()
        broken[0, 0] = bad  # the oldest price, read by calibration only
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(prices=tf.constant(broken))
    with pytest.raises(TypeError, match="shape=\\(None, 49\\)"):
        serve(prices=tf.constant(histories[:, -forecaster.window:]))
