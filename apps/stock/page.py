"""The stock app's tab of the demo page: the sample or an uploaded CSV, its forecast as a chart and a table."""

from __future__ import annotations

from pathlib import Path

from apps.stock.serving import ExportedForecaster, forecast_series, plot_forecast
from apps.stock.settings import StockPredict


def stock_tab(page) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`)."""
    import gradio as gr

    upload = gr.File(label="A price CSV (a date column and a Close column; empty: the synthetic sample)",
                     file_types=[".csv"], type="filepath")
    button = gr.Button("Forecast", variant="primary")
    chart = gr.Image(label="History and forecast", type="filepath")
    table = gr.Dataframe(label="Forecast (the median, and the other quantiles)", interactive=False)
    needs = gr.Markdown()

    def forecast(path: str | None):
        forecaster = ExportedForecaster(page.export())
        series = (StockPredict(csv=Path(path)) if path else StockPredict()).load_series()
        result = forecast_series(forecaster, series, "1d")
        picture = plot_forecast(series, result, forecaster.levels, page.figure_path("forecast.png"))
        rows = result.round(4).reset_index(names="date")
        rows["date"] = rows["date"].dt.strftime("%Y-%m-%d")
        calibrated = "calibrated on the model's recent errors" if forecaster.calibration else "not calibrated"
        return str(picture), rows, f"The model read the last {forecaster.needs()}; the interval is {calibrated}."

    button.click(page.handler(forecast), upload, [chart, table, needs])
