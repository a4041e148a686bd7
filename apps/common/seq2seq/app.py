"""The base of the text-to-text apps (translation, chatbot): what their App classes share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, TypeVar

from apps.common.app import App, Export, Serving
from apps.common.export import load_extra_model
from apps.common.seq2seq.files import DECODE_STEP, ENCODE, FileSeq2Seq, step_functions
from apps.common.seq2seq.pairs import NamedPairs, TrainingPairs
from apps.common.seq2seq.serving import TextSeq2Seq, exported_server
from apps.common.settings import ExportConfig


P = TypeVar("P", bound=TrainingPairs)


class Seq2SeqApp(App[P, NamedPairs]):
    """An app whose export maps `text` to a text.

    `run_texts` is the app's batched client of a `serving_default`
    (`translate_batches`, `generate_replies`), set as a staticmethod;
    `predict` prints one output per input text. `signatures` makes the
    export's `tf.function`s from a `TextSeq2Seq` (`make_signatures`), so a
    LiteRT or ONNX file of its encoder and decoder step serves them too.
    """

    serving_inputs = ("text",)
    generates_text = True
    run_texts: ClassVar[Callable[[Callable, list[str]], list[str]]]
    signatures: ClassVar[Callable[[TextSeq2Seq], dict[str, Callable]]]

    def portable_serving(self, export: Export) -> Serving:
        """The encoder and one decoder step of the export's Keras model (`apps.common.seq2seq.files`):
        the decoding loop, tokenization and detokenization stay with the client (`from_file`)."""
        model = load_extra_model(export.path)
        return Serving(step_functions(model), [model], export.metadata)

    def from_file(self, export: Export) -> Export:
        """The export's own signatures, decoding in this process with a file computing each step."""
        model = FileSeq2Seq(export.signature(ENCODE), export.signature(DECODE_STEP))
        server = exported_server(export.path, export.metadata, model)
        return dataclasses.replace(export, signatures=self.signatures(server))

    def generate(self, export: Export, texts: list[str]) -> list[str]:
        """`export`'s `serving_default` output for each of `texts`, in batches."""
        return self.run_texts(export.signature(), texts)

    def predict(self, export: Export, config: ExportConfig) -> list[str]:
        outputs = self.generate(export, list(config.texts))
        for output in outputs:
            print(output)
        return outputs
