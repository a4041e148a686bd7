"""The transcriber's tab of the demo page: upload or record speech, read its transcript."""

from __future__ import annotations

from apps.common.audio import load_audio
from apps.common.errors import InputError
from apps.transcriber.serving import transcribe_batches
from apps.transcriber.settings import MAX_SECONDS


def transcriber_tab(page) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`)."""
    import gradio as gr

    audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                     label=f"Speech (up to {MAX_SECONDS:g} s)")
    button = gr.Button("Transcribe", variant="primary")
    transcript = gr.Textbox(label="Transcript", interactive=False)

    def transcribe(path: str | None) -> str:
        if not path:
            raise InputError("Upload an audio file or record one first.")
        return transcribe_batches(page.export().signature(), [load_audio(path)])[0]

    button.click(page.handler(transcribe), audio, transcript)
