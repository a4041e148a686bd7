"""The base of the text-to-text apps (translation, chatbot): what their App classes share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from apps.common.app import App, Export
from apps.common.seq2seq.pairs import NamedPairs, TrainingPairs
from apps.common.seq2seq.training import Seq2SeqRun
from apps.common.settings import ExportConfig


P = TypeVar("P", bound=TrainingPairs)


class Seq2SeqApp(App[P, NamedPairs]):
    """An app whose export maps `text` to a text.

    `run_texts` is the app's batched client of a `serving_default`
    (`translate_batches`, `generate_replies`), set as a staticmethod;
    `predict` prints one output per input text.
    """

    serving_inputs = ("text",)
    generates_text = True
    run_texts: ClassVar[Callable[[Callable, list[str]], list[str]]]

    def generate(self, export: Export, texts: list[str]) -> list[str]:
        """`export`'s `serving_default` output for each of `texts`, in batches."""
        return self.run_texts(export.signature(), texts)

    def predict(self, export: Export, config: ExportConfig) -> list[str]:
        outputs = self.generate(export, list(config.texts))
        for output in outputs:
            print(output)
        return outputs


def run_facts(run: Seq2SeqRun, **facts: Any) -> dict[str, Any]:
    """`facts` for the training report, and whether `--minutes` stopped the run."""
    return {**facts, **({"stopped by --minutes": True} if run.stopped_early else {})}
