"""The word recogniser's tab of the demo page: upload or record a word, see its likeliest labels."""

from __future__ import annotations

import numpy as np

from apps.common.audio import load_audio
from apps.common.errors import InputError
from apps.speech.serving import served_probabilities


def speech_tab(page) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`)."""
    import gradio as gr

    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="A spoken word (about a second)")
    button = gr.Button("Recognize", variant="primary")
    words = gr.Label(label="Word", num_top_classes=5)

    def recognize(path: str | None):
        if not path:
            raise InputError("Upload an audio file or record one first.")
        export = page.export()
        waveform = load_audio(path)
        probabilities = served_probabilities(export.signature(), waveform[np.newaxis, :])[0]
        labels = export.metadata.get("labels") or [str(i) for i in range(len(probabilities))]
        return {label: float(p) for label, p in zip(labels, probabilities)}

    button.click(page.handler(recognize), audio, words)
