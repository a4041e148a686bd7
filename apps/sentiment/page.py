"""The sentiment app's tab of the demo page: a review, its label, and the update gates over its tokens."""

from __future__ import annotations

from apps.common.errors import InputError
from apps.sentiment.explain import update_gate_heatmap
from apps.sentiment.model import LABELS, predict_texts

DEMO_TEXTS = ["not bad at all", "slow at first but worth it", "not good, and not even funny"]


def sentiment_tab(page) -> None:
    """Builds the tab inside `page`'s Gradio context (`apps.serve.page`)."""
    import gradio as gr

    text = gr.Textbox(label="A movie review", value=DEMO_TEXTS[1], lines=2)
    button = gr.Button("Classify", variant="primary")
    label = gr.Label(label="Sentiment")
    heatmap = gr.Image(label="GRU update gate z per unit and token", type="filepath")

    def classify(review: str):
        export = page.export()
        positive = float(predict_texts(export.signature(), [review])[0])
        try:
            heatmap_path = update_gate_heatmap(export, review, page.figure_path("update_gates.png"))["path"]
        except InputError as why_not:  # no tokens, or not a GRU: the probability still stands
            gr.Warning(str(why_not))
            heatmap_path = None
        return {LABELS[1]: positive, LABELS[0]: 1.0 - positive}, heatmap_path

    button.click(page.handler(classify), text, [label, heatmap])
    text.submit(page.handler(classify), text, [label, heatmap])
