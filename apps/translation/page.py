"""The translation app's tab of the demo page: a sentence, its translation and the attention alignment."""

from __future__ import annotations

from apps.translation.explain import plot_alignment
from apps.translation.model import translate_batches


def translation_tab(page, example: str) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`), `example` in the box."""
    import gradio as gr

    text = gr.Textbox(label="A sentence", value=example)
    button = gr.Button("Translate", variant="primary")
    translation = gr.Textbox(label="Translation", interactive=False)
    alignment = gr.Image(label="Attention alignment", type="filepath")

    def translate(sentence: str):
        export = page.export()
        translated = translate_batches(export.signature(), [sentence])[0]
        if not sentence.strip():
            return translated, None
        return translated, str(plot_alignment(export.signature("attention"), sentence,
                                              page.figure_path("attention.png")))

    button.click(page.handler(translate), text, [translation, alignment])
    text.submit(page.handler(translate), text, [translation, alignment])
