"""The transcriber's tab of the demo page: upload or record speech, read its transcript; with a
streaming export, also transcribe the microphone live, while you speak."""

from __future__ import annotations

import numpy as np

from apps.common.audio import load_audio
from apps.common.errors import InputError
from apps.common.stream_client import StreamClient, mono_float
from apps.transcriber.serving import STREAM_CHUNK_SECONDS, STREAM_STEP, transcribe_batches
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
    if "stream" in page.export().signatures:
        _live_microphone(page)


def _live_microphone(page) -> None:
    """The microphone, streamed to the export's `stream` signature every `STREAM_CHUNK_SECONDS`."""
    import gradio as gr

    gr.Markdown("**Live**: the transcript grows while you speak, from the export's `stream` signature.")
    microphone = gr.Audio(sources=["microphone"], type="numpy", streaming=True, label="Live microphone")
    live = gr.Textbox(label="Live transcript", interactive=False)
    # This browser session's stream: a `StreamClient`, None before a recording starts.
    session = gr.State(None)

    def text(client: StreamClient) -> str:
        return client.outputs["transcript"][0].decode("utf-8") if client.outputs else ""

    def listen(chunk: tuple[int, np.ndarray] | None, client: StreamClient | None):
        if chunk is None or (client is not None and client.finished):
            return gr.skip(), client  # a chunk that arrives after the recording stopped
        rate, samples = chunk
        if client is None or client.rate != rate:
            client = StreamClient(page.export(), STREAM_STEP, rate)
        client.feed(mono_float(samples))
        return text(client), client

    def finish(client: StreamClient | None):
        if client is None or client.finished:
            return gr.skip(), client
        client.finish()
        return text(client), client

    microphone.start_recording(lambda: ("", None), None, [live, session], queue=False)
    microphone.stream(page.handler(listen), [microphone, session], [live, session],
                      stream_every=STREAM_CHUNK_SECONDS, show_progress="hidden")
    microphone.stop_recording(page.handler(finish), session, [live, session])
