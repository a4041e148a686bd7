"""Tests for the stock prediction-interval metrics and the normal-band and GARCH(1,1) baselines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from apps.common.errors import InputError
from apps.stock import intervals
from apps.stock.evaluation import actual_prices

LEVELS = (0.1, 0.5, 0.9)
# Two anchors, two steps: actual prices and their (0.1, 0.5, 0.9) quantiles.
ACTUAL = np.array([[10.0, 12.0], [8.0, 20.0]])
QUANTILES = np.array([
    [[9.0, 10.0, 11.0], [12.0, 13.0, 14.0]],
    [[9.0, 10.0, 11.0], [15.0, 16.0, 17.0]],
])

# A simulated GARCH(1,1) series (returns in percent) with known parameters.
TRUE_MU, TRUE_OMEGA, TRUE_ALPHA, TRUE_BETA = 0.03, 0.05, 0.10, 0.85
GARCH_DAYS, GARCH_TRAIN_END = 3000, 2000


def random_walk(days: int, sigma: float, seed: int) -> np.ndarray:
    """Prices with iid Normal(0, sigma^2) daily log returns, starting at 100."""
    returns = np.random.default_rng(seed).normal(0.0, sigma, days - 1)
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


@pytest.fixture(scope="module")
def garch_close() -> np.ndarray:
    rng = np.random.default_rng(7)
    returns = np.empty(GARCH_DAYS - 1)
    variance = TRUE_OMEGA / (1 - TRUE_ALPHA - TRUE_BETA)
    for i in range(len(returns)):
        shock = np.sqrt(variance) * rng.standard_normal()
        returns[i] = TRUE_MU + shock
        variance = TRUE_OMEGA + TRUE_ALPHA * shock**2 + TRUE_BETA * variance
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns / 100)]))


@pytest.fixture(scope="module")
def garch_model(garch_close) -> intervals.Garch11:
    return intervals.Garch11.fit(garch_close, GARCH_TRAIN_END)


def band_coverage(close: np.ndarray, anchors: np.ndarray, band: np.ndarray) -> float:
    actual = actual_prices(close, anchors, band.shape[1])
    return intervals.coverage(actual, band[..., 0], band[..., -1])


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def test_pinball_loss_matches_a_hand_computation():
    # Per (anchor, step), levels 0.1 / 0.5 / 0.9, error e = y - f:
    #   y=10, f=(9, 10, 11):  e=( 1,  0, -1) -> (0.1, 0.0, 0.1)
    #   y=12, f=(12, 13, 14): e=( 0, -1, -2) -> (0.0, 0.5, 0.2)
    #   y=8,  f=(9, 10, 11):  e=(-1, -2, -3) -> (0.9, 1.0, 0.3)
    #   y=20, f=(15, 16, 17): e=( 5,  4,  3) -> (0.5, 2.0, 2.7)
    # Means: (1.5 / 4, 3.5 / 4, 3.3 / 4).
    loss = intervals.pinball_loss(ACTUAL, QUANTILES, LEVELS)
    np.testing.assert_allclose(loss, [0.375, 0.875, 0.825])


def test_central_intervals_pair_levels_outermost_first():
    assert intervals.central_intervals((0.1, 0.5, 0.9)) == [(0, 2, 0.8)]
    assert intervals.central_intervals((0.05, 0.1, 0.5, 0.9, 0.95)) == [(0, 4, 0.9), (1, 3, 0.8)]
    assert intervals.central_intervals((0.025, 0.975)) == [(0, 1, 0.95)]
    # 0.2 has no partner (0.8 is missing), 0.5 pairs with nothing.
    assert intervals.central_intervals((0.1, 0.2, 0.5, 0.9)) == [(0, 3, 0.8)]
    assert intervals.central_intervals((0.5,)) == []
    assert intervals.central_intervals((0.1, 0.5, 0.9 + 1e-12)) == [(0, 2, 0.8)]


def test_coverage_and_interval_score_by_hand():
    lower, upper = np.full(4, 1.0), np.full(4, 3.0)
    actual = np.array([2.0, 0.5, 3.5, 3.0])  # inside, below, above, on the upper bound
    assert intervals.coverage(actual, lower, upper) == 0.5
    # Width 2 each; alpha = 0.2 so a miss costs 10 per unit: 2, 2 + 5, 2 + 5, 2.
    assert intervals.interval_score(actual, lower, upper, 0.8) == pytest.approx(4.5)
    # All inside: the score is just the width.
    assert intervals.interval_score(np.full(4, 2.0), lower, upper, 0.5) == pytest.approx(2.0)


def test_interval_metrics_on_a_hand_made_forecast():
    metrics = intervals.interval_metrics(ACTUAL, QUANTILES, LEVELS)
    assert metrics.levels == LEVELS
    np.testing.assert_allclose(metrics.pinball, [0.375, 0.875, 0.825])
    # 80% interval: 10 in [9, 11], 12 on the bound of [12, 14], 8 below [9, 11] by 1,
    # 20 above [15, 17] by 3. Widths all 2; scores 2, 2, 2 + 10, 2 + 30.
    assert metrics.coverage == {0.8: 0.5}
    assert metrics.width == {0.8: pytest.approx(2.0)}
    assert metrics.score == {0.8: pytest.approx(12.0)}


def test_rolling_coverage_finds_the_quarter_a_band_fails():
    # 200 anchors, two steps each: covered everywhere but anchors 100-129, where both steps miss.
    actual = np.full((200, 2), 2.0)
    actual[100:130] = 5.0
    lower, upper = np.ones((200, 2)), np.full((200, 2), 3.0)
    windows = intervals.rolling_coverage(actual, lower, upper, window=60)
    assert len(windows) == 141
    assert windows.min() == pytest.approx(0.5)  # a window holding all 30 misses
    assert windows.max() == 1.0 and windows[0] == 1.0
    assert intervals.coverage(actual, lower, upper) == pytest.approx(0.85)
    # Fewer anchors than a window: one window, the overall coverage.
    assert intervals.rolling_coverage(actual[:10], lower[:10], upper[:10], window=60).tolist() == [1.0]
    with pytest.raises(InputError, match="rolling window"):
        intervals.rolling_coverage(actual, lower, upper, window=0)


def test_interval_metrics_report_the_worst_window_and_the_windows_kept():
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(300, 1))
    # A band of the right width for the first 150 anchors and half of it after.
    half_width = np.where(np.arange(300) < 150, 1.2816, 0.6408)[:, None]
    quantiles = np.stack([-half_width, np.zeros_like(half_width), half_width], axis=-1)
    metrics = intervals.interval_metrics(actual, quantiles, LEVELS)
    windows = intervals.rolling_coverage(actual, quantiles[..., 0], quantiles[..., 2])
    assert metrics.worst_window[0.8] == pytest.approx(windows.min())
    assert metrics.worst_window[0.8] < 0.6 < metrics.coverage[0.8]
    assert 0 < metrics.windows_kept[0.8] < 0.6
    assert metrics.windows_kept[0.8] == pytest.approx(np.mean(np.abs(windows - 0.8) <= 0.05 + 1e-12))


def test_interval_table_has_one_row_per_forecaster_in_order():
    model = intervals.interval_metrics(ACTUAL, QUANTILES, LEVELS)
    wide = intervals.interval_metrics(ACTUAL, QUANTILES * [0.5, 1.0, 1.5], LEVELS)
    table = intervals.interval_table({"gru": model, "normal band (20)": wide}, "test intervals")
    lines = table.splitlines()
    assert lines[0] == "test intervals: quantiles 0.1, 0.5, 0.9"
    assert "80% cover" in lines[1] and "80% width" in lines[1] and "pinball" in lines[1]
    assert "worst 60d" in lines[1] and "kept" in lines[1]
    assert lines[2].startswith("  gru ") and lines[3].startswith("  normal band (20) ")
    assert "50.0%" in lines[2] and "12.000" in lines[2] and f"{np.mean([0.375, 0.875, 0.825]):.4f}" in lines[2]
    assert all(len(line) == len(lines[1]) for line in lines[2:])


# --------------------------------------------------------------------------
# Normal band
# --------------------------------------------------------------------------


def test_normal_band_by_hand():
    close = np.array([100.0, 110.0, 99.0])
    band = intervals.normal_band(close, np.array([2]), 2, LEVELS, lookback=2)
    sigma = abs(np.log(110 / 100) - np.log(99 / 110)) / np.sqrt(2)  # std (ddof 1) of 2 returns
    z = norm.ppf(0.9)
    np.testing.assert_allclose(band[0, :, 1], [99.0, 99.0])
    np.testing.assert_allclose(band[0, :, 2], 99.0 * np.exp(z * sigma * np.sqrt([1, 2])))
    np.testing.assert_allclose(band[0, :, 0], 99.0 * np.exp(-z * sigma * np.sqrt([1, 2])))
    # One return known: its size is the volatility; none: zero width.
    early = intervals.normal_band(close, np.array([0, 1]), 1, LEVELS)
    np.testing.assert_allclose(early[0, 0], [100.0] * 3)
    np.testing.assert_allclose(early[1, 0, 2], 110.0 * np.exp(z * np.log(1.1)))


def test_normal_band_uses_data_up_to_the_anchor_only():
    close = random_walk(300, 0.01, seed=1)
    anchors = np.array([50, 150])
    band = intervals.normal_band(close, anchors, 5, LEVELS)
    changed = close.copy()
    changed[151:] *= np.random.default_rng(2).uniform(0.5, 2.0, len(close) - 151)
    np.testing.assert_array_equal(intervals.normal_band(changed, anchors, 5, LEVELS), band)
    changed[150] *= 1.05
    assert not np.allclose(intervals.normal_band(changed, anchors, 5, LEVELS)[1], band[1])


def test_normal_band_of_a_constant_series_is_finite_with_zero_width():
    band = intervals.normal_band(np.full(50, 42.0), np.arange(0, 40), 3, LEVELS)
    assert np.all(np.isfinite(band))
    np.testing.assert_allclose(band, 42.0)


def test_normal_band_quantiles_ascend_and_widen():
    close = random_walk(200, 0.02, seed=3)
    band = intervals.normal_band(close, np.arange(25, 190), 5, (0.05, 0.1, 0.5, 0.9, 0.95))
    assert np.all(np.diff(band, axis=-1) > 0)
    assert np.all(np.diff(band[..., -1] - band[..., 0], axis=1) > 0)


def test_normal_band_covers_about_its_nominal_share_of_iid_returns():
    close = random_walk(6000, 0.01, seed=4)
    anchors = np.arange(20, len(close) - 5)
    band = intervals.normal_band(close, anchors, 5, LEVELS)
    assert band_coverage(close, anchors, band) == pytest.approx(0.8, abs=0.03)


# --------------------------------------------------------------------------
# GARCH(1,1)
# --------------------------------------------------------------------------


def test_garch_recursion_by_hand():
    # Percent returns +1 and -2; start variance 1:
    #   sigma^2_2 = 0.1 + 0.2 * 1 + 0.7 * 1   = 1.0
    #   sigma^2_3 = 0.1 + 0.2 * 4 + 0.7 * 1.0 = 1.6   (one step after anchor 2)
    #   two steps: 0.1 + 0.9 * 1.6 = 1.54, so the 2-step variance is 3.14.
    close = 100 * np.exp(np.cumsum([0.0, 0.01, -0.02]))
    model = intervals.Garch11(mu=0.0, omega=0.1, alpha=0.2, beta=0.7, start_variance=1.0)
    np.testing.assert_allclose(model.filtered_variance(close), [1.0, 1.0, 1.0, 1.6])
    band = model.band(close, np.array([2]), 2, LEVELS)
    z = norm.ppf(0.9)
    np.testing.assert_allclose(band[0, :, 1], close[2])
    np.testing.assert_allclose(band[0, :, 2], close[2] * np.exp(z * np.sqrt([1.6, 3.14]) / 100))
    # The mean drifts by mu percent per step.
    drifting = intervals.Garch11(mu=0.5, omega=0.1, alpha=0.2, beta=0.7, start_variance=1.0)
    np.testing.assert_allclose(drifting.band(close, np.array([2]), 2, LEVELS)[0, :, 1],
                               close[2] * np.exp([0.005, 0.01]))


def test_garch_fit_recovers_simulated_parameters(garch_model):
    assert garch_model.note == ""
    assert garch_model.alpha == pytest.approx(TRUE_ALPHA, abs=0.05)
    assert garch_model.beta == pytest.approx(TRUE_BETA, abs=0.08)
    assert garch_model.persistence == pytest.approx(TRUE_ALPHA + TRUE_BETA, abs=0.04)
    assert 0.01 < garch_model.omega < 0.15
    assert garch_model.mu == pytest.approx(TRUE_MU, abs=0.06)


def test_garch_band_covers_about_its_nominal_share_out_of_sample(garch_close, garch_model):
    anchors = np.arange(GARCH_TRAIN_END - 1, len(garch_close) - 5)
    band = garch_model.band(garch_close, anchors, 5, LEVELS)
    assert np.all(np.diff(band, axis=-1) > 0)
    assert band_coverage(garch_close, anchors, band) == pytest.approx(0.8, abs=0.03)
    # Volatility clustering: the GARCH band scores better than the same-coverage normal band.
    actual = actual_prices(garch_close, anchors, 5)
    garch = intervals.interval_metrics(actual, band, LEVELS)
    normal = intervals.interval_metrics(actual, intervals.normal_band(garch_close, anchors, 5, LEVELS), LEVELS)
    assert garch.score[0.8] < normal.score[0.8]


def test_garch_band_does_not_look_ahead(garch_close, garch_model):
    t = 2500
    anchors = np.array([t])
    band = garch_model.band(garch_close, anchors, 5, LEVELS)
    changed = garch_close.copy()
    changed[t + 1:] *= np.random.default_rng(5).uniform(0.5, 2.0, len(changed) - t - 1)
    np.testing.assert_array_equal(garch_model.band(changed, anchors, 5, LEVELS), band)
    changed[t] *= 1.05  # the return ending at t is known at t, and moves sigma^2_{t+1}
    moved = garch_model.band(changed, anchors, 5, LEVELS)
    assert not np.allclose(moved / changed[t], band / garch_close[t])


def test_garch_on_a_constant_series_gives_a_finite_zero_width_band():
    close = np.full(100, 20.0)
    model = intervals.Garch11.fit(close, 60)
    assert model.note and (model.omega, model.alpha, model.beta) == (0.0, 0.0, 0.0)
    band = model.band(close, np.arange(59, 95), 5, LEVELS)
    assert np.all(np.isfinite(band))
    np.testing.assert_allclose(band, 20.0)


def test_integrated_and_explosive_garch_stay_finite(garch_close):
    anchors = np.arange(100, 2900, 100)
    for beta in (0.7, 0.8):  # alpha + beta = 1.0 and 1.1
        model = intervals.Garch11(mu=0.0, omega=0.05, alpha=0.3, beta=beta, start_variance=1.0)
        band = model.band(garch_close, anchors, 30, LEVELS)
        assert np.all(np.isfinite(band)) and np.all(np.diff(band, axis=-1) > 0)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_bad_levels_are_refused():
    with pytest.raises(InputError, match="strictly increasing"):
        intervals.pinball_loss(ACTUAL, QUANTILES, (0.5, 0.1, 0.9))
    with pytest.raises(InputError, match="between 0 and 1"):
        intervals.central_intervals((0.0, 0.5, 1.0))
    with pytest.raises(InputError, match="strictly increasing"):
        intervals.normal_band(np.full(10, 1.0), np.array([5]), 1, (0.1, 0.1))


def test_mismatched_shapes_are_refused():
    with pytest.raises(InputError, match=r"\(2, 2, 3\).*\(2, 3\)"):
        intervals.pinball_loss(ACTUAL[:, :1].repeat(3, axis=1), QUANTILES, LEVELS)
    with pytest.raises(InputError, match="2 level"):
        intervals.interval_metrics(ACTUAL, QUANTILES, (0.1, 0.9))
    with pytest.raises(InputError, match=r"lower \(3,\)"):
        intervals.coverage(np.zeros(4), np.zeros(3), np.ones(4))
    with pytest.raises(InputError, match="anchors must index the 10 prices"):
        intervals.normal_band(np.full(10, 1.0), np.array([10]), 1, LEVELS)


def test_a_short_training_part_is_refused(garch_close):
    with pytest.raises(InputError, match="at least 30"):
        intervals.Garch11.fit(garch_close, 20)
    with pytest.raises(InputError, match="at least 30"):
        intervals.Garch11.fit(garch_close[:25], 25)


def test_diverging_garch_parameters_are_refused():
    with pytest.raises(InputError, match="beta must be at most 1"):
        intervals.Garch11(mu=0.0, omega=0.1, alpha=0.0, beta=1.2, start_variance=1.0)
    with pytest.raises(InputError, match="omega"):
        intervals.Garch11(mu=0.0, omega=-0.1, alpha=0.1, beta=0.8, start_variance=1.0)
