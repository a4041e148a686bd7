"""Price series for the stock app: yfinance downloads, CSV files and a synthetic sample.

Every loader returns a `PriceSeries` cleaned the same way (`clean_prices`):

* dates parsed, rows whose date does not parse dropped, sorted, and duplicate
  dates collapsed to their last row (a later row is taken as a correction);
* the target column made numeric; leading missing prices dropped and later
  ones (NaN, inf, unparseable) filled with the last known price, which never
  looks ahead;
* calendar gaps (holidays, halted days) are kept as they are: the series is a
  sequence of trading observations and a step is one observation;
* a non-positive price is an `InputError` (forecasts work on log returns).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from apps.common.errors import InputError
from apps.common.files import write_atomically

DEFAULT_CACHE_DIR = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "gru_suite" / "stock"
DEFAULT_START = "2015-01-01"
SAMPLE_DAYS = 1500
# Columns besides the target that the extra input features use.
FEATURE_COLUMNS = ("Volume", "High", "Low")

# download(ticker, start=, end=, interval=) -> a DataFrame shaped like `yfinance.download`.
DownloadFn = Callable[..., pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class PriceSeries:
    """A cleaned price series, oldest first.

    Attributes:
        name: Where it came from, for reports (`AAPL (yfinance, 1d)`, ...).
        dates: One timestamp per observation, increasing.
        close: The forecast target (float64, all > 0).
        volume, high, low: Optional extra columns (float64) for the extra
            input features, None where the source has no such column.
        note: Anything the user should know about how it was obtained (for
            example that a cached download was used after a network failure).
    """

    name: str
    dates: pd.DatetimeIndex
    close: np.ndarray
    volume: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    note: str = ""

    def __len__(self) -> int:
        return len(self.close)


def clean_prices(frame: pd.DataFrame, *, target: str, source: str) -> PriceSeries:
    """Cleans a date-indexed frame (see the module docstring) into a `PriceSeries`.

    Args:
        frame: Indexed by date (anything `pd.to_datetime` parses), with the
            `target` column and optionally Volume / High / Low.
        target: The column to forecast.
        source: Names the data in error messages (a file, a ticker).
    """
    if target not in frame.columns:
        columns = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(f"{source}: no column named {target!r} (columns: {columns})")
    frame = frame.copy()
    if not isinstance(frame.index, pd.DatetimeIndex):
        dates = pd.to_datetime(pd.Series(frame.index, dtype=object), errors="coerce", format="mixed")
        frame.index = pd.DatetimeIndex(dates)
    frame = frame[frame.index.notna()]
    frame = frame.sort_index(kind="stable")
    frame = frame[~frame.index.duplicated(keep="last")]
    if frame.index.tz is not None:
        frame.index = frame.index.tz_localize(None)

    close = _numeric(frame[target])
    known = np.flatnonzero(close.notna().to_numpy())
    if len(known) == 0:
        raise InputError(f"{source}: column {target!r} has no numeric prices")
    frame, close = frame.iloc[known[0]:], close.iloc[known[0]:].ffill()
    if (close <= 0).any():
        first = close.index[np.argmax((close <= 0).to_numpy())]
        raise InputError(
            f"{source}: column {target!r} has {(close <= 0).sum()} non-positive price(s), "
            f"the first on {first.date()}; prices must be > 0"
        )

    def optional(column: str, fill: pd.Series | float) -> np.ndarray | None:
        if column not in frame.columns or column == target:
            return None
        values = _numeric(frame[column]).ffill()
        return values.fillna(fill).to_numpy(np.float64)

    return PriceSeries(
        name=source,
        dates=pd.DatetimeIndex(frame.index),
        close=close.to_numpy(np.float64),
        volume=optional("Volume", 0.0),
        high=optional("High", close),
        low=optional("Low", close),
    )


def _numeric(column: pd.Series) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce").astype(np.float64)
    return values.where(np.isfinite(values))


# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------


def load_csv(path: Path | str, *, target: str = "Close", date_column: str | None = None) -> PriceSeries:
    """Loads a CSV with a date column and numeric columns.

    A Yahoo Finance export (`Date,Open,High,Low,Close,Adj Close,Volume`)
    works as is; for other files `target` names the column to forecast and
    `date_column` the dates (default: a column named date/Date/timestamp, else
    the first column).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable CSV ({error})") from None
    if frame.empty:
        raise InputError(f"{path}: no rows")
    if date_column is None:
        by_name = {str(c).strip().lower(): c for c in frame.columns}
        date_column = next(
            (by_name[n] for n in ("date", "datetime", "timestamp", "time") if n in by_name),
            frame.columns[0],
        )
    elif date_column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise InputError(f"{path}: no date column named {date_column!r} (columns: {columns})")
    frame = frame.set_index(date_column)
    series = clean_prices(frame, target=target, source=f"{path.name}:{target}")
    return series


# --------------------------------------------------------------------------
# yfinance
# --------------------------------------------------------------------------


class _Records(logging.Handler):
    """Collects the error messages yfinance logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        # Skip headings such as "1 Failed download:" that carry no reason.
        if message and not message.endswith(":"):
            self.messages.append(message)


def yfinance_download(ticker: str, *, start: str | None, end: str | None, interval: str) -> pd.DataFrame:
    """`yfinance.download` for one ticker, with its logged errors raised.

    yfinance catches per-ticker failures (unknown ticker, network errors) and
    returns an empty frame, logging the reason; the reason is collected here
    and raised as a `RuntimeError` so the caller can report it.
    """
    import yfinance

    logger = logging.getLogger("yfinance")
    records, propagate = _Records(), logger.propagate
    logger.addHandler(records)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            # yfinance 1.7 calls pandas APIs that pandas 3 deprecates.
            warnings.simplefilter("ignore")
            frame = yfinance.download(
                ticker, start=start, end=end, interval=interval,
                auto_adjust=True, progress=False, threads=False, multi_level_index=True,
            )
    finally:
        logger.removeHandler(records)
        logger.propagate = propagate
    if frame is None or frame.dropna(how="all").empty:
        reasons = "; ".join(dict.fromkeys(records.messages)) or "no rows"
        raise RuntimeError(reasons)
    return frame


def select_ticker(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """The single-ticker, flat-column frame for `ticker` from a yfinance result.

    Handles the shapes `yfinance.download` returns: MultiIndex columns
    (Price, Ticker) (the default, `group_by="column"`), (Ticker, Price)
    (`group_by="ticker"`), several tickers side by side, and flat columns
    (`multi_level_index=False`). Rows where the ticker has no prices at all
    (other tickers' trading days in a multi-ticker frame) are dropped.
    """
    wanted = ticker.upper()
    if isinstance(frame.columns, pd.MultiIndex):
        names = list(frame.columns.names)
        if "Ticker" in names:
            level = names.index("Ticker")
        else:
            level = next(
                (i for i in range(frame.columns.nlevels)
                 if wanted in {str(v).upper() for v in frame.columns.get_level_values(i)}),
                frame.columns.nlevels - 1,
            )
        tickers = {str(v).upper(): v for v in frame.columns.get_level_values(level)}
        if wanted not in tickers:
            raise InputError(
                f"ticker {ticker!r}: the download holds {sorted(tickers)} but not {wanted}"
            )
        frame = frame.xs(tickers[wanted], axis=1, level=level)
    frame = frame.rename(columns=lambda c: str(c))
    frame.columns.name = None
    return frame.dropna(how="all")


def _cache_path(cache_dir: Path, ticker: str, interval: str, start: str | None, end: str) -> Path:
    return cache_dir / f"{ticker.upper()}_{interval}_{start or 'first'}_{end}.csv"


def _covering_cache(cache_dir: Path, ticker: str, interval: str, start: str | None, end: str | None) -> Path | None:
    """A cached download of the same ticker and interval whose range covers the request.

    For an open-ended request (no `end`) the newest cached download of the
    ticker that starts early enough is used, as the latest prices available offline.
    """
    best: tuple[str, Path] | None = None
    for path in cache_dir.glob(f"{ticker.upper()}_{interval}_*.csv"):
        parts = path.stem.rsplit("_", 3)
        if len(parts) != 4 or parts[0] != ticker.upper():
            continue
        cached_start, cached_end = parts[2], parts[3].removeprefix("to-")
        starts_early = cached_start == "first" or (start is not None and cached_start <= start)
        if not starts_early:
            continue
        if end is not None and cached_end < end:
            continue
        if best is None or cached_end > best[0]:
            best = (cached_end, path)
    return None if best is None else best[1]


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda partial: frame.to_csv(partial, index_label="Date"), ".csv")


def load_yfinance(
    ticker: str,
    *,
    start: str | None = DEFAULT_START,
    end: str | None = None,
    interval: str = "1d",
    target: str = "Close",
    cache_dir: Path | str = DEFAULT_CACHE_DIR,
    refresh: bool = False,
    download: DownloadFn = yfinance_download,
    today: pd.Timestamp | None = None,
) -> PriceSeries:
    """Downloads (or reads from the cache) the price history of one ticker.

    Prices come from `yfinance.download(..., auto_adjust=True)`, so `Close`
    is adjusted for splits and dividends (yfinance's default; there is no
    `Adj Close` column then). Downloads are cached as CSV files under
    `cache_dir`, keyed by ticker, interval and range; an open-ended range (no
    `end`) is keyed by the day of the download, so it is fetched again the
    next day. If the download fails (network down, unknown ticker) a cached
    download covering the range is used instead, and said so in `note`.

    Args:
        download: `download(ticker, start=, end=, interval=)` returning a
            frame shaped like `yfinance.download`'s (injectable for tests).
        today: The date an open-ended range is keyed by (default: today).
    """
    if not ticker or not ticker.strip():
        raise InputError("the ticker symbol is empty")
    ticker = ticker.strip()
    start, end = _iso_date(start, "start"), _iso_date(end, "end")
    cache_dir = Path(cache_dir)
    key_end = end if end is not None else "to-" + (today or pd.Timestamp.today()).strftime("%Y-%m-%d")
    cache = _cache_path(cache_dir, ticker, interval, start, key_end)
    source = f"{ticker.upper()} (yfinance, {interval})"
    if cache.is_file() and not refresh:
        return _from_cache(cache, target, source)

    try:
        frame = select_ticker(download(ticker, start=start, end=end, interval=interval), ticker)
        if frame.empty:
            raise RuntimeError("the download returned no rows")
    except Exception as error:  # yfinance surfaces network and lookup failures in many types.
        fallback = _covering_cache(cache_dir, ticker, interval, start, end)
        if fallback is not None:
            series = _from_cache(fallback, target, source, start=start, end=end)
            return dataclasses.replace(
                series,
                note=f"download failed ({error}); using the cached {fallback.name} "
                f"(prices up to {series.dates[-1].date()})",
            )
        span = f"{start or 'first'} to {end or 'now'}"
        raise InputError(
            f"ticker {ticker.upper()!r}: no prices downloaded for {span} at interval {interval} "
            f"({error}). Check the symbol, that the range holds trading days, and the network; "
            f"no cached download under {cache_dir} covers this range."
        ) from error
    series = clean_prices(frame, target=target, source=source)
    _write_atomically(frame, cache)
    return series


def _iso_date(value: str | None, which: str) -> str | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    except (ValueError, TypeError):
        raise InputError(f"the {which} date {value!r} is not a date (expected YYYY-MM-DD)") from None


def _from_cache(path: Path, target: str, source: str, *, start: str | None = None,
                end: str | None = None) -> PriceSeries:
    """Reads a cached download, keeping the dates in [start, end) when given."""
    frame = pd.read_csv(path, index_col=0, parse_dates=True)
    if start is not None:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame.index < pd.Timestamp(end)]
    return clean_prices(frame, target=target, source=source)


# --------------------------------------------------------------------------
# Synthetic sample
# --------------------------------------------------------------------------


def sample_prices(days: int = SAMPLE_DAYS, seed: int = 7) -> PriceSeries:
    """A SYNTHETIC daily price series, generated deterministically (no download).

    Business days from 2015-01-02. Log returns follow a regime-switching
    process: a calm regime (about 0.8% daily volatility) and a turbulent one
    (about 2.4%), switching at random with persistent regimes, a slow
    drifting trend, and some momentum (AR(1) coefficient 0.15) so there is
    a weak pattern to learn. Open/High/Low/Volume are derived from the closes,
    volume rising with volatility.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=days)
    turbulent = np.zeros(days, dtype=bool)
    for t in range(1, days):
        stay = 0.985 if not turbulent[t - 1] else 0.95
        turbulent[t] = turbulent[t - 1] if rng.random() < stay else not turbulent[t - 1]
    volatility = np.where(turbulent, 0.024, 0.008)
    trend = 0.0004 + 0.0006 * np.sin(np.arange(days) * 2 * np.pi / 700)
    returns = np.zeros(days)
    for t in range(1, days):
        returns[t] = trend[t] + 0.15 * (returns[t - 1] - trend[t - 1]) + volatility[t] * rng.standard_normal()
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(0.3 * volatility * rng.standard_normal(days))
    spread = np.exp(np.abs(0.5 * volatility * rng.standard_normal(days)))
    high = np.maximum(open_, close) * spread
    low = np.minimum(open_, close) / spread
    volume = np.round(2e6 * (1 + 3 * np.abs(returns) / 0.01) * rng.lognormal(0, 0.2, days))
    return PriceSeries(
        name="sample (synthetic)", dates=dates, close=close, volume=volume, high=high, low=low
    )
