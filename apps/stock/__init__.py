"""Stock price forecasting: windows of log returns -> the next `horizon` prices.

Data comes from yfinance (cached on disk), a CSV (Yahoo Finance export or any
dated numeric table) or a synthetic `sample` series. Models are judged against
the persistence (last value) and moving-average forecasts, and exported as a
SavedModel that takes raw closing prices.
"""
