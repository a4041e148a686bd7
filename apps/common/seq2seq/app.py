"""The base of the text-to-text apps (translation, chatbot): what their App classes share."""

from __future__ import annotations

from typing import Any, ClassVar

from apps.common.app import App, Export
from apps.common.config import setting
from apps.common.seq2seq.serving import run_on_texts
from apps.common.seq2seq.training import Seq2SeqRun
from apps.common.settings import ExportConfig


def texts_setting(help: str) -> Any:
    """The positional TEXT... of a `predict` that maps texts to texts."""
    return setting((), help, positional=True, nargs="+", metavar="TEXT")


class Seq2SeqApp(App):
    """An app whose export maps `text` to a text: `serving_default`'s `output_name`.

    `predict` prints one output per input text; `generate` is the batched
    call that `predict`, `demo` and the page use.
    """

    serving_inputs = ("text",)
    generates_text = True
    output_name: ClassVar[str]

    def generate(self, export: Export, texts: list[str]) -> list[str]:
        """`serving_default`'s output for each of `texts`, in batches."""
        return run_on_texts(export.signature(), texts, self.output_name)

    def predict(self, export: Export, config: ExportConfig) -> list[str]:
        outputs = self.generate(export, list(config.texts))
        for output in outputs:
            print(output)
        return outputs


def run_facts(run: Seq2SeqRun, **facts: Any) -> dict[str, Any]:
    """`facts` for the training report, and whether `--minutes` stopped the run."""
    return {**facts, **({"stopped by --minutes": True} if run.stopped_early else {})}
