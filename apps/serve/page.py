"""The demo page at `/`: a Gradio tab per served model, built by its app's `App.page`.

Gradio is the convention for ML model demos: its components (an audio
recorder, a chat box, images, labels) are built and kept up by its
maintainers, it mounts into the same FastAPI app as the REST API, and its
front end is bundled in the Python package, so the page loads nothing from
the network.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from apps.common.app import Export
from apps.common.errors import InputError
from apps.common.running import registered_app
from apps.serve.repository import ModelRepository


class PageContext:
    """What an app's page needs: its served export, a folder for pictures, errors shown on the page."""

    def __init__(self, repository: ModelRepository, model: str, figures: Path):
        self._repository = repository
        self.model = model
        self.figures = figures

    def export(self) -> Export:
        """The version served now (a page built before a new version uses the new one)."""
        return self._repository.get(self.model).export()

    def figure_path(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(dir=self.figures)) / name

    def handler(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` for a Gradio event: one model-call slot, and bad input shown as a message."""
        import gradio as gr

        @functools.wraps(function)
        def run(*args: Any) -> Any:
            try:
                with self._repository.call():
                    return function(*args)
            except InputError as error:
                raise gr.Error(str(error)) from None

        return run


def build_page(repository: ModelRepository):
    """A `gradio.Blocks` with one tab per served model whose app has a page."""
    import gradio as gr

    figures = Path(tempfile.mkdtemp(prefix="gru-suite-page-"))
    with gr.Blocks(title="gru-suite") as page:
        gr.Markdown(
            "# gru-suite\nEach tab runs the newest served version of a model (the same one the REST "
            "API at `/v1/models/...` answers with)."
        )
        names = repository.names()
        if not names:
            gr.Markdown(f"No models are served: `{repository.root}` holds no exports yet.")
        for name in names:
            served = repository.get(name)
            with gr.Tab(name):
                gr.Markdown(f"`{served.path}` (made by the {served.app} app)")
                try:
                    registered_app(served.app).page(PageContext(repository, name, figures))
                except (KeyError, NotImplementedError):
                    gr.Markdown("No page for this model; the REST API serves it.")
    return page, figures


def mount_page(app: FastAPI, repository: ModelRepository, max_upload_bytes: int) -> None:
    """Mounts the page at `/` (after the REST routes, which keep precedence)."""
    import gradio as gr

    page, figures = build_page(repository)
    gr.mount_gradio_app(
        app, page, path="/", footer_links=[], run_history=False, ssr_mode=False, mcp_server=False,
        enable_monitoring=False, pwa=False, max_file_size=max_upload_bytes, allowed_paths=[str(figures)],
    )
