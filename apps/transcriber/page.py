"""The transcriber's tab of the demo page: upload or record speech, read its transcript; with a
streaming export, also transcribe the microphone live, while you speak."""

from __future__ import annotations

import numpy as np

from apps.common.audio import SAMPLE_RATE, load_audio
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
    heard = gr.Audio(label="What the model heard (16 kHz), after Stop", type="numpy", interactive=False)
    # This browser session's stream: a `StreamClient` while a recording runs, None between recordings.
    session = gr.State(None)

    def text(client: StreamClient) -> str:
        return client.outputs["transcript"][0].decode("utf-8") if client.outputs else ""

    def listen(chunk: tuple[int, np.ndarray] | None, client: StreamClient | None):
        if chunk is None:
            return gr.skip(), client
        rate, samples = chunk
        if client is None or client.rate != rate:  # a new recording
            client = StreamClient(page.export(), STREAM_STEP, rate)
        client.feed(mono_float(samples))
        return text(client), client

    def finish(client: StreamClient | None):
        if client is None:
            return gr.skip(), gr.skip(), None
        client.finish()
        # As 16-bit samples: Gradio would rescale float ones to their peak.
        pcm = np.round(np.clip(client.heard(), -1.0, 1.0) * 32767).astype(np.int16)
        return text(client), (SAMPLE_RATE, pcm), None

    # One queue for both events, so that a recording's flush runs after its last chunk. (Gradio's
    # browser side drops what the microphone hears before the stream's first event is answered.)
    in_order = {"concurrency_id": f"live-{page.model}", "concurrency_limit": 1}
    microphone.stream(page.handler(listen), [microphone, session], [live, session],
                      stream_every=STREAM_CHUNK_SECONDS, show_progress="hidden", **in_order)
    microphone.stop_recording(page.handler(finish), session, [live, heard, session], **in_order)
