"""Tests for the stock loaders: yfinance frames, the download cache, messy CSVs, the sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.common.errors import InputError
from apps.stock import data as stock_data

TODAY = pd.Timestamp("2026-11-25")


def ticker_history(start: str, periods: int, first_close: float, adjusted: bool = True) -> pd.DataFrame:
    """One ticker's frame as `Ticker.history` returns it for daily bars (tz dropped by download)."""
    dates = pd.bdate_range(start, periods=periods, name="Date")
    close = first_close + np.arange(periods, dtype=np.float64)
    frame = pd.DataFrame(
        {"Open": close - 0.5, "High": close + 1.0, "Low": close - 1.0, "Close": close,
         "Volume": np.arange(periods, dtype=np.int64) * 1000 + 5000},
        index=dates,
    )
    if not adjusted:
        frame.insert(4, "Adj Close", close * 0.98)
    return frame


def download_result(histories: dict[str, pd.DataFrame], group_by: str = "column") -> pd.DataFrame:
    """Combines per-ticker histories exactly as `yfinance.download` (1.7) does."""
    index = None
    for frame in histories.values():
        index = frame.index if index is None else index.union(frame.index)
    frames = {ticker: frame.reindex(index) for ticker, frame in histories.items()}
    data = pd.concat(frames.values(), axis=1, sort=True, keys=frames.keys(), names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)
        data = data.sort_index(level=0, axis=1)
    return data


def empty_download(ticker: str) -> pd.DataFrame:
    """What `yfinance.download` returns for an unknown ticker: `utils.empty_df()` under the MultiIndex."""
    empty = pd.DataFrame(index=pd.DatetimeIndex([], name="Date"),
                         data={c: np.nan for c in ("Open", "High", "Low", "Close", "Adj Close", "Volume")})
    return download_result({ticker: empty})


class CountingDownload:
    """An injected download function returning a prepared frame and counting its calls."""

    def __init__(self, frame: pd.DataFrame | Exception):
        self.frame = frame
        self.calls: list[tuple] = []

    def __call__(self, ticker, *, start, end, interval):
        self.calls.append((ticker, start, end, interval))
        if isinstance(self.frame, Exception):
            raise self.frame
        return self.frame


def test_single_ticker_multiindex_frame(tmp_path):
    frame = download_result({"AAPL": ticker_history("2024-01-02", 30, 100.0)})
    assert list(frame.columns.names) == ["Price", "Ticker"]
    download = CountingDownload(frame)
    series = stock_data.load_yfinance("aapl", start="2024-01-01", end="2024-03-01",
                                      cache_dir=tmp_path, download=download)
    assert download.calls == [("aapl", "2024-01-01", "2024-03-01", "1d")]
    assert len(series) == 30
    np.testing.assert_allclose(series.close, 100.0 + np.arange(30))
    np.testing.assert_allclose(series.volume[:2], [5000, 6000])
    assert series.dates[0] == pd.Timestamp("2024-01-02")
    assert "AAPL" in series.name


def test_multi_ticker_frames_select_the_ticker_and_drop_its_missing_days(tmp_path):
    # MSFT's history starts later and includes a day AAPL lacks: the union index
    # gives AAPL rows of NaN there, which must not become prices.
    aapl = ticker_history("2024-01-02", 20, 100.0).drop(pd.Timestamp("2024-01-10"))
    msft = ticker_history("2024-01-05", 20, 300.0, adjusted=False)
    for group_by in ("column", "ticker"):
        frame = download_result({"AAPL": aapl, "MSFT": msft}, group_by=group_by)
        series = stock_data.load_yfinance(
            "MSFT", start="2024-01-01", end=f"2024-02-0{1 if group_by == 'column' else 2}",
            cache_dir=tmp_path, download=CountingDownload(frame))
        np.testing.assert_allclose(series.close, 300.0 + np.arange(20))
        aapl_only = stock_data.select_ticker(frame, "AAPL")
        assert len(aapl_only) == 19 and pd.Timestamp("2024-01-10") not in aapl_only.index


def test_flat_columns_and_adjusted_target():
    frame = ticker_history("2024-01-02", 5, 10.0, adjusted=False)
    flat = stock_data.select_ticker(frame, "XYZ")
    series = stock_data.clean_prices(flat, target="Adj Close", source="XYZ")
    np.testing.assert_allclose(series.close, (10.0 + np.arange(5)) * 0.98)


def test_missing_ticker_in_a_multi_ticker_frame_is_named():
    frame = download_result({"AAPL": ticker_history("2024-01-02", 5, 1.0)})
    with pytest.raises(InputError, match="MSFT"):
        stock_data.select_ticker(frame, "MSFT")


def test_empty_download_is_an_input_error_naming_the_ticker(tmp_path):
    with pytest.raises(InputError, match="'NOSUCH'"):
        stock_data.load_yfinance("NOSUCH", cache_dir=tmp_path, today=TODAY,
                                 download=CountingDownload(empty_download("NOSUCH")))
    assert not list(tmp_path.glob("*.csv")), "a failed download must not be cached"


def test_second_load_uses_the_cache_and_refresh_downloads_again(tmp_path):
    download = CountingDownload(download_result({"SPY": ticker_history("2024-01-02", 25, 400.0)}))
    first = stock_data.load_yfinance("SPY", start="2024-01-01", cache_dir=tmp_path, download=download, today=TODAY)
    second = stock_data.load_yfinance("SPY", start="2024-01-01", cache_dir=tmp_path, download=download, today=TODAY)
    assert len(download.calls) == 1
    np.testing.assert_allclose(second.close, first.close)
    np.testing.assert_allclose(second.volume, first.volume)
    assert (second.dates == first.dates).all()
    stock_data.load_yfinance("SPY", start="2024-01-01", cache_dir=tmp_path, download=download,
                             today=TODAY, refresh=True)
    assert len(download.calls) == 2
    # Another range is another cache entry.
    stock_data.load_yfinance("SPY", start="2024-01-03", cache_dir=tmp_path, download=download, today=TODAY)
    assert len(download.calls) == 3


def test_network_failure_uses_a_covering_cache_or_fails_clearly(tmp_path):
    frame = download_result({"SPY": ticker_history("2024-01-02", 60, 400.0)})
    stock_data.load_yfinance("SPY", start="2024-01-01", end="2024-04-01", cache_dir=tmp_path,
                             download=CountingDownload(frame))
    offline = CountingDownload(ConnectionError("Could not resolve host: query2.finance.yahoo.com"))
    covered = stock_data.load_yfinance("SPY", start="2024-02-01", end="2024-03-01", cache_dir=tmp_path,
                                       download=offline)
    assert len(offline.calls) == 1
    assert "Could not resolve host" in covered.note
    assert covered.dates[0] == pd.Timestamp("2024-02-01") and covered.dates[-1] == pd.Timestamp("2024-02-29")
    with pytest.raises(InputError, match="'SPY'.*Could not resolve host"):
        stock_data.load_yfinance("SPY", start="2023-01-01", end="2024-03-01", cache_dir=tmp_path,
                                 download=offline)


def write(path, text):
    path.write_text(text)
    return path


def test_csv_yahoo_export(tmp_path):
    path = write(tmp_path / "AAPL.csv",
                 "Date,Open,High,Low,Close,Adj Close,Volume\n"
                 "2022-01-03,177.83,182.88,177.71,182.01,180.43,104487900\n"
                 "2022-01-04,182.63,182.94,179.12,179.70,178.14,99310400\n")
    series = stock_data.load_csv(path)
    np.testing.assert_allclose(series.close, [182.01, 179.70])
    np.testing.assert_allclose(series.high, [182.88, 182.94])
    assert stock_data.load_csv(path, target="Adj Close").close[0] == pytest.approx(180.43)


def test_messy_csv_is_sorted_deduplicated_and_filled_without_look_ahead(tmp_path):
    path = write(tmp_path / "messy.csv",
                 "when,price,volume\n"
                 "2024-01-05,13,5\n"
                 "2024-01-02,,1\n"          # leading missing price: dropped
                 "2024-01-04,12,4\n"
                 "2024-01-03,11,3\n"
                 "2024-01-04,12.5,4\n"      # duplicate date: the later row wins
                 "not a date,99,9\n"        # unparseable date: dropped
                 "2024-01-08,NaN,\n"        # missing price: last known price carried
                 "2024-01-09,15,7\n")
    series = stock_data.load_csv(path, target="price")
    assert [d.strftime("%m-%d") for d in series.dates] == ["01-03", "01-04", "01-05", "01-08", "01-09"]
    np.testing.assert_allclose(series.close, [11, 12.5, 13, 13, 15])
    assert series.volume is None  # only an exact "Volume" column is a feature column


def test_csv_errors_name_the_problem(tmp_path):
    no_close = write(tmp_path / "no_close.csv", "Date,Open,Volume\n2024-01-02,1,2\n")
    with pytest.raises(InputError, match=r"no_close.csv.*'Close'.*Date|no_close.csv.*'Close'.*Open"):
        stock_data.load_csv(no_close)
    negative = write(tmp_path / "negative.csv", "Date,Close\n2024-01-02,5\n2024-01-03,-1\n")
    with pytest.raises(InputError, match="non-positive.*2024-01-03"):
        stock_data.load_csv(negative)
    text = write(tmp_path / "text.csv", "Date,Close\n2024-01-02,abc\n")
    with pytest.raises(InputError, match="no numeric prices"):
        stock_data.load_csv(text)
    with pytest.raises(InputError, match="no such file"):
        stock_data.load_csv(tmp_path / "absent.csv")


def test_sample_is_deterministic_synthetic_business_days():
    first, second = stock_data.sample_prices(), stock_data.sample_prices()
    np.testing.assert_array_equal(first.close, second.close)
    assert "synthetic" in first.name
    assert (first.dates.dayofweek < 5).all() and first.dates.is_monotonic_increasing
    assert (first.close > 0).all() and (first.high >= first.close).all() and (first.low <= first.close).all()
    returns = np.diff(np.log(first.close))
    # Volatility regimes: the rolling volatility spans a wide range.
    rolling = pd.Series(returns).rolling(40).std().dropna()
    assert rolling.max() > 2 * rolling.min()
