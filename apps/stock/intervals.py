"""Prediction intervals for price forecasts: metrics and two baselines.

A probabilistic forecast from anchor `t` (the last price seen, `close[t]`)
gives, for each step h = 1..horizon, the prices at `levels` quantiles (for
example 0.1, 0.5, 0.9), as an array [N, horizon, Q] sorted along the last
axis. It is judged against the actual prices [N, horizon] by:

* the pinball (quantile) loss of each level q,
  `max(q * (y - f), (q - 1) * (y - f))`, the proper score a quantile forecast
  minimizes in expectation;
* for each central interval (a pair of levels q < 0.5 and 1 - q, nominal
  coverage 1 - 2q): the empirical coverage (share of actual prices inside,
  bounds included), the mean width, and the Gneiting & Raftery (2007)
  interval score `(u - l) + (2/alpha)(l - y)1{y < l} + (2/alpha)(y - u)1{y > u}`
  with alpha = 1 - nominal, which rewards narrow bands but charges for misses.

All metrics are means over all (anchor, step) pairs, in prices; lower is
better except coverage, which should be near its nominal value. Coverage is
also judged over time, in every run of `ROLLING_ANCHORS` consecutive anchors
(about three months of trading days): the worst such window, and the share of
windows within `ROLLING_TOLERANCE` of nominal. A band that covers 80% overall
can still cover 50% through one volatile quarter and 100% through a calm one.

The baselines, both on daily log returns and using data up to `t` only:

* `normal_band`: the log price h steps ahead is Normal(log close[t],
  h * sigma_t^2), sigma_t the standard deviation of the last `lookback`
  returns (a random walk with recent volatility);
* `Garch11`: GARCH(1,1) volatility with a constant mean, fitted once on the
  training returns and then run forward with fixed parameters.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from apps.common.errors import InputError

# Rolling coverage: windows of this many consecutive anchors, and how near nominal
# a window's coverage must be to count as kept.
ROLLING_ANCHORS = 60
ROLLING_TOLERANCE = 0.05
# Two levels pair up into a central interval when q + q' is 1 within this.
PAIR_TOLERANCE = 1e-9
# The fewest training returns a GARCH(1,1) fit (4 parameters) is trusted on.
MIN_GARCH_RETURNS = 30
# Training returns (in percent) with a smaller variance are taken as constant:
# nothing to fit, and arch's optimizer fails on them.
MIN_VARIANCE = 1e-18


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def check_levels(levels: Sequence[float]) -> np.ndarray:
    """`levels` as an array, which must be non-empty, inside (0, 1) and strictly increasing."""
    values = np.asarray(levels, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise InputError(f"quantile levels must be a non-empty sequence of numbers (got {list(levels)!r})")
    if not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(values >= 1):
        raise InputError(f"quantile levels must lie strictly between 0 and 1 (got {values.tolist()})")
    if np.any(np.diff(values) <= 0):
        raise InputError(f"quantile levels must be strictly increasing (got {values.tolist()})")
    return values


def _check_quantiles(actual: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> None:
    if actual.ndim != 2:
        raise InputError(f"actual prices must be [N, horizon] (got shape {actual.shape})")
    if quantiles.shape != (*actual.shape, len(levels)):
        raise InputError(
            f"quantiles of shape {quantiles.shape} do not match actual prices of shape {actual.shape} "
            f"and {len(levels)} level(s); expected {(*actual.shape, len(levels))}"
        )


def _check_bounds(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    if not actual.shape == lower.shape == upper.shape:
        raise InputError(
            f"actual {actual.shape}, lower {lower.shape} and upper {upper.shape} bounds differ in shape"
        )
    if actual.size == 0:
        raise InputError("no values to score (empty arrays)")


def _prices(close: np.ndarray) -> np.ndarray:
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise InputError(f"close must be a 1-D price array (got shape {close.shape})")
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise InputError("close prices must be finite and > 0 (the baselines work on log returns)")
    return close


def _anchors(anchors: np.ndarray, length: int, horizon: int) -> np.ndarray:
    if horizon < 1:
        raise InputError(f"the horizon must be at least 1 step (got {horizon})")
    anchors = np.asarray(anchors)
    if anchors.ndim != 1 or not np.issubdtype(anchors.dtype, np.integer):
        raise InputError(f"anchors must be a 1-D integer index array (got {anchors.dtype} of shape {anchors.shape})")
    if len(anchors) and (anchors.min() < 0 or anchors.max() >= length):
        raise InputError(
            f"anchors must index the {length} prices (got {anchors.min()}..{anchors.max()})"
        )
    return anchors


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def pinball_loss(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Mean pinball (quantile) loss per level: actual [N, H], quantiles [N, H, Q] -> [Q].

    `loss_q(y, f) = max(q * (y - f), (q - 1) * (y - f))`, averaged over all
    (anchor, step) pairs.
    """
    q = check_levels(levels)
    actual, quantiles = np.asarray(actual, np.float64), np.asarray(quantiles, np.float64)
    _check_quantiles(actual, quantiles, q)
    error = actual[..., None] - quantiles
    return np.mean(np.maximum(q * error, (q - 1) * error), axis=(0, 1))


def central_intervals(levels: Sequence[float]) -> list[tuple[int, int, float]]:
    """(lower index, upper index, nominal coverage) of each central interval, outermost first.

    A level q < 0.5 pairs with a level 1 - q (within `PAIR_TOLERANCE`); the
    nominal coverage is 1 - 2q, rounded so that it is a clean dict key.
    (0.1, 0.5, 0.9) -> [(0, 2, 0.8)].
    """
    values = check_levels(levels)
    pairs = []
    for lower, q in enumerate(values):
        if q >= 0.5:
            break
        match = np.flatnonzero(np.abs(values - (1 - q)) <= PAIR_TOLERANCE)
        if len(match):
            pairs.append((lower, int(match[0]), round(1 - 2 * float(q), 12)))
    return pairs


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual values inside [lower, upper] (bounds included)."""
    actual, lower, upper = (np.asarray(a, np.float64) for a in (actual, lower, upper))
    _check_bounds(actual, lower, upper)
    return float(np.mean((actual >= lower) & (actual <= upper)))


def rolling_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     window: int = ROLLING_ANCHORS) -> np.ndarray:
    """Coverage of every run of `window` consecutive anchors (rows, in time order) over all
    their steps: `[N - window + 1]` shares, or the one share of all rows when N < window."""
    if window < 1:
        raise InputError(f"the rolling window must hold at least 1 anchor (got {window})")
    actual, lower, upper = (np.asarray(a, np.float64) for a in (actual, lower, upper))
    _check_bounds(actual, lower, upper)
    inside = ((actual >= lower) & (actual <= upper)).reshape(len(actual), -1).mean(axis=1)
    window = min(window, len(inside))
    totals = np.concatenate([[0.0], np.cumsum(inside)])
    return (totals[window:] - totals[:-window]) / window


def interval_score(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, nominal: float) -> float:
    """Gneiting & Raftery (2007) interval score, mean over all values; lower is better.

    With alpha = 1 - nominal: `(u - l) + (2/alpha)(l - y)1{y < l} + (2/alpha)(y - u)1{y > u}`.
    """
    if not 0 < nominal < 1:
        raise InputError(f"nominal coverage must lie strictly between 0 and 1 (got {nominal})")
    actual, lower, upper = (np.asarray(a, np.float64) for a in (actual, lower, upper))
    _check_bounds(actual, lower, upper)
    alpha = 1 - nominal
    below = np.maximum(lower - actual, 0.0)
    above = np.maximum(actual - upper, 0.0)
    return float(np.mean((upper - lower) + (2 / alpha) * (below + above)))


@dataclasses.dataclass(frozen=True)
class IntervalMetrics:
    """Interval metrics of one forecaster; the dicts are keyed by nominal coverage (0.8, ...)."""

    levels: tuple[float, ...]
    pinball: tuple[float, ...]  # per level, in prices
    coverage: dict[float, float]  # nominal -> empirical coverage
    width: dict[float, float]  # nominal -> mean width (upper - lower), in prices
    score: dict[float, float]  # nominal -> mean interval score, in prices
    worst_window: dict[float, float]  # nominal -> lowest coverage of a ROLLING_ANCHORS window
    windows_kept: dict[float, float]  # nominal -> share of windows within ROLLING_TOLERANCE

    @property
    def mean_pinball(self) -> float:
        return float(np.mean(self.pinball))


def interval_metrics(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> IntervalMetrics:
    """All of the above for price quantiles [N, H, Q] against actual prices [N, H]."""
    q = check_levels(levels)
    actual, quantiles = np.asarray(actual, np.float64), np.asarray(quantiles, np.float64)
    _check_quantiles(actual, quantiles, q)
    cover, width, score, worst, kept = {}, {}, {}, {}, {}
    for lower_index, upper_index, nominal in central_intervals(q):
        lower, upper = quantiles[..., lower_index], quantiles[..., upper_index]
        cover[nominal] = coverage(actual, lower, upper)
        width[nominal] = float(np.mean(upper - lower))
        score[nominal] = interval_score(actual, lower, upper, nominal)
        windows = rolling_coverage(actual, lower, upper)
        worst[nominal] = float(windows.min())
        # The tolerance is widened by a hair so that a window exactly 5 points off counts.
        kept[nominal] = float(np.mean(np.abs(windows - nominal) <= ROLLING_TOLERANCE + 1e-12))
    return IntervalMetrics(
        levels=tuple(float(v) for v in q),
        pinball=tuple(float(v) for v in pinball_loss(actual, quantiles, q)),
        coverage=cover,
        width=width,
        score=score,
        worst_window=worst,
        windows_kept=kept,
    )


def interval_table(metrics: dict[str, IntervalMetrics], title: str) -> str:
    """A plain-text table, one row per forecaster (the dict's keys, in order).

    For each central interval (those of the first forecaster; "n/a" where
    another lacks one): coverage %, mean width, interval score, the worst
    rolling window's coverage % and the share of windows kept near nominal;
    then the mean pinball loss over levels.
    """
    if not metrics:
        raise InputError("no forecasters to tabulate")
    first = next(iter(metrics.values()))
    nominals = list(first.coverage)
    levels = ", ".join(f"{v:g}" for v in first.levels)
    header = f"  {'forecast':<22}"
    for nominal in nominals:
        label = f"{100 * nominal:g}%"
        header += (f"{label + ' cover':>12}{label + ' width':>12}{label + ' score':>12}"
                   f"{'worst ' + str(ROLLING_ANCHORS) + 'd':>10}{'kept':>7}")
    lines = [f"{title}: quantiles {levels}", header + f"{'pinball':>10}"]
    for name, values in metrics.items():
        row = f"  {name:<22}"
        for nominal in nominals:
            if nominal in values.coverage:
                row += (f"{100 * values.coverage[nominal]:>11.1f}%{values.width[nominal]:>12.3f}"
                        f"{values.score[nominal]:>12.3f}{100 * values.worst_window[nominal]:>9.1f}%"
                        f"{100 * values.windows_kept[nominal]:>6.0f}%")
            else:
                row += f"{'n/a':>12}" * 3 + f"{'n/a':>10}{'n/a':>7}"
        lines.append(row + f"{values.mean_pinball:>10.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------


def _normal_quantiles(
    close: np.ndarray, anchors: np.ndarray, mean: np.ndarray, sd: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """close[t] * exp(mean + z_q * sd) for log-return means/sds [N, H] -> [N, H, Q]."""
    z = norm.ppf(levels)
    log_price = np.log(close[anchors])[:, None, None] + mean[..., None] + sd[..., None] * z
    return np.exp(log_price)


def normal_band(
    close: np.ndarray,
    anchors: np.ndarray,
    horizon: int,
    levels: Sequence[float],
    lookback: int = 20,
) -> np.ndarray:
    """Random-walk baseline: price quantiles [N, horizon, Q] from recent volatility.

    The log price at t+h is Normal(log close[t], h * sigma_t^2), sigma_t the
    standard deviation (ddof 1) of the last `lookback` daily log returns
    ending at t (prices close[t-lookback..t], so data up to t only). Near the
    start of the series fewer returns are used: with one return, its absolute
    value (the only spread it gives); with none (t = 0), sigma = 0. A
    constant series gives sigma = 0: a finite band of zero width at close[t].
    """
    q = check_levels(levels)
    close = _prices(close)
    anchors = _anchors(anchors, len(close), horizon)
    if lookback < 1:
        raise InputError(f"the lookback must be at least 1 return (got {lookback})")
    returns = np.diff(np.log(close))  # returns[i - 1] ends at price i

    def sigma(t: int) -> float:
        recent = returns[max(0, t - lookback):t]
        if len(recent) >= 2:
            return float(np.std(recent, ddof=1))
        return float(abs(recent[0])) if len(recent) else 0.0

    sigmas = np.array([sigma(int(t)) for t in anchors], dtype=np.float64)
    sd = sigmas[:, None] * np.sqrt(np.arange(1, horizon + 1))[None, :]
    return _normal_quantiles(close, anchors, np.zeros_like(sd), sd, q)


@dataclasses.dataclass(frozen=True)
class Garch11:
    """GARCH(1,1) with a constant mean and normal innovations on daily log returns.

    Returns are in percent (as `arch` prefers) and so are the parameters:
    `r_t = mu + eps_t`, `sigma^2_t = omega + alpha * eps^2_{t-1} + beta * sigma^2_{t-1}`.
    `fit` estimates them once with `arch.arch_model(...).fit(disp="off")` on
    the training returns only; `band` then runs this recursion (written here,
    not arch's) forward with the parameters fixed, so no refit and no
    look-ahead: the variance for day t uses returns up to t-1 only. The
    filter starts at `start_variance` (the training sample variance) at the
    first return.

    Degenerate cases, recorded in `note`:

    * training returns without variance (a constant price, or steady
      growth) are not fitted: mu is their mean and omega = alpha = beta = 0,
      so every band is finite with zero width (on the drift);
    * a fit that does not converge or gives invalid parameters falls back to
      constant variance (omega = the training variance, alpha = beta = 0),
      the normal band with training volatility.

    alpha + beta >= 1 (integrated or explosive) is allowed: the multi-step
    variance then grows with the horizon instead of reverting, but stays
    finite; beta > 1 is refused, since the filter itself would diverge.
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    start_variance: float
    note: str = ""

    def __post_init__(self) -> None:
        values = {"mu": self.mu, "omega": self.omega, "alpha": self.alpha, "beta": self.beta,
                  "start_variance": self.start_variance}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        bad += [name for name in ("omega", "alpha", "beta", "start_variance") if values[name] < 0]
        if bad:
            raise InputError(f"GARCH(1,1) parameters must be finite and non-negative (bad: {', '.join(bad)})")
        if self.beta > 1:
            raise InputError(f"GARCH(1,1) beta must be at most 1 (got {self.beta}); the variance would diverge")

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @classmethod
    def fit(cls, close: np.ndarray, train_end: int) -> "Garch11":
        """Fits on the log returns of close[:train_end] (prices 0..train_end-1)."""
        close = _prices(close)
        if not MIN_GARCH_RETURNS < train_end <= len(close):
            raise InputError(
                f"train_end = {train_end} gives {max(train_end - 1, 0)} training return(s) of a "
                f"{len(close)}-price series; a GARCH(1,1) fit needs at least {MIN_GARCH_RETURNS} "
                f"(train_end in {MIN_GARCH_RETURNS + 1}..{len(close)})"
            )
        returns = 100 * np.diff(np.log(close[:train_end]))
        variance = float(np.var(returns))
        if variance < MIN_VARIANCE:
            return cls(float(np.mean(returns)), 0.0, 0.0, 0.0, 0.0,
                       note="training returns have no variance: zero-width bands")

        # Imported here: only the GARCH baseline needs arch.
        from arch import arch_model

        with warnings.catch_warnings():
            # Convergence is checked below; arch's warnings would only repeat it.
            warnings.simplefilter("ignore")
            result = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="normal",
                                rescale=False).fit(disp="off")
        params = result.params
        mu, omega = float(params["mu"]), float(params["omega"])
        alpha, beta = float(params["alpha[1]"]), float(params["beta[1]"])
        valid = all(math.isfinite(v) for v in (mu, omega, alpha, beta))
        valid = valid and min(omega, alpha, beta) >= 0 and beta <= 1
        if result.convergence_flag != 0 or not valid:
            return cls(float(np.mean(returns)), variance, 0.0, 0.0, variance,
                       note=f"GARCH fit failed (optimizer code {result.convergence_flag}): constant variance")
        return cls(mu, omega, alpha, beta, variance)

    def filtered_variance(self, close: np.ndarray) -> np.ndarray:
        """sigma^2 (percent^2) for returns 1..n, [n + 1]: entry i uses returns up to i-1 only.

        Entry 0 (no return ends at price 0) repeats the start; entry n is the
        one-step forecast after the last price. One pass, O(n).
        """
        close = _prices(close)
        eps2 = (100 * np.diff(np.log(close)) - self.mu) ** 2  # eps2[i - 1] is return i
        variance = np.empty(len(close) + 1)
        variance[0] = variance[1] = self.start_variance
        previous = self.start_variance
        omega, alpha, beta = self.omega, self.alpha, self.beta
        for i, shock in enumerate(eps2.tolist(), start=2):
            previous = omega + alpha * shock + beta * previous
            variance[i] = previous
        return variance

    def band(self, close: np.ndarray, anchors: np.ndarray, horizon: int, levels: Sequence[float]) -> np.ndarray:
        """Price quantiles [N, horizon, Q] from each anchor t.

        Returns up to the one ending at t are known, which gives
        sigma^2_{t+1}; later steps follow the GARCH multi-step forecast
        sigma^2_{t+k} = omega + (alpha + beta) sigma^2_{t+k-1}. The h-step log
        return is Normal(h * mu, sum_{k<=h} sigma^2_{t+k}), converted from
        percent; quantile = close[t] * exp(mean + z_q * sd).
        """
        q = check_levels(levels)
        close = _prices(close)
        anchors = _anchors(anchors, len(close), horizon)
        step = np.empty((len(anchors), horizon))
        step[:, 0] = self.filtered_variance(close)[anchors + 1]
        for k in range(1, horizon):
            step[:, k] = self.omega + self.persistence * step[:, k - 1]
        sd = np.sqrt(np.cumsum(step, axis=1)) / 100
        mean = np.broadcast_to(np.arange(1, horizon + 1) * self.mu / 100, sd.shape)
        return _normal_quantiles(close, anchors, mean, sd, q)
