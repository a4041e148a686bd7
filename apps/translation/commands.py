"""The translation app: `gru-suite train|evaluate|predict|explain translation`, and `translate`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from apps.common.app import (
    App,
    Evaluation,
    Export,
    ExportConfig,
    Fitting,
    Splits,
    Trained,
    batch_size_setting,
    epochs_setting,
    load_export,
    register_app,
    units_setting,
)
from apps.common.config import Config, DataSource, Text, arguments_configurer, from_arguments, setting
from apps.common.seq2seq.serving import seq2seq_serving
from apps.common.seq2seq.training import (
    Seq2SeqEvaluate,
    Seq2SeqTrain,
    decoding_setting,
    max_length_setting,
    train_seq2seq,
    vocabulary_size_setting,
)
from apps.registry import Command, register
from apps.translation.data import evaluation_pairs, load_splits
from apps.translation.grammar import generate_pairs
from apps.translation.model import APP, corpus_scores, make_signatures, translate_batches


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", "sample (synthetic English->Spanish), anki:LANG (Tatoeba English->LANG), "
        "multi30k (German->English), a tab-separated pairs file, or SOURCE,TARGET line-aligned files",
        check=DataSource(("sample", "multi30k"), ("anki",), pairs=True), group="data")
    reverse: bool = setting(False, "translate the data set's target language into its source language",
                            group="data")


@dataclasses.dataclass(frozen=True)
class TranslationTrain(Seq2SeqTrain, DataSettings):
    epochs: int = epochs_setting(8)
    batch_size: int = batch_size_setting(64)
    units: int = units_setting(128)
    max_length: int = max_length_setting(30)
    vocabulary_size: int = vocabulary_size_setting(8000)
    decoding: str = decoding_setting("beam")


@dataclasses.dataclass(frozen=True)
class TranslationEvaluate(Seq2SeqEvaluate, DataSettings):
    pass


@dataclasses.dataclass(frozen=True)
class TranslationPredict(ExportConfig):
    texts: tuple[str, ...] = setting((), "sentences to translate", positional=True, nargs="+",
                                     metavar="TEXT")


@dataclasses.dataclass(frozen=True)
class TranslationExplain(ExportConfig):
    text: str = setting("", "one sentence to translate", positional=True, check=Text(True),
                        metavar="TEXT")
    output: Path = setting(Path("attention.png"), "PNG to write")


class TranslationApp(App):
    """A GRU encoder-decoder with attention, strings in and strings out."""

    name = APP
    help = {
        "train": "train a GRU encoder-decoder with attention and export it",
        "evaluate": "corpus BLEU and chrF of an exported translator",
        "predict": "translate sentences with an exported model",
        "explain": "plot the attention alignment of one translation as a PNG",
    }
    Train = TranslationTrain
    Evaluate = TranslationEvaluate
    Predict = TranslationPredict
    Explain = TranslationExplain
    serving_inputs = ("text",)
    generates_text = True
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8",
                  "--beam-width", "2")
    example_inputs = ("the tall cat sleeps.", "")
    quick_args = ("--epochs", "3", "--limit", "6000")

    def load_data(self, config: DataSettings) -> Splits:
        train, validation = load_splits(config.data, config.reverse)
        return Splits(self._name(config), train, validation, validation)

    def evaluation_data(self, config: DataSettings) -> Splits:
        return Splits(self._name(config), None, None, evaluation_pairs(config.data, config.reverse))

    @staticmethod
    def _name(config: DataSettings) -> str:
        return config.data + (" (reversed)" if config.reverse else "")

    def train(self, config: TranslationTrain, data: Splits, fitting: Fitting) -> Trained:
        train = data.train.head(config.limit)
        run = train_seq2seq(train, data.validation, config, fitting)
        serving = seq2seq_serving(run.server, make_signatures(run.server))
        return Trained(run.model, serving, run.epochs_run, {
            "held-out perplexity": round(run.held_out_perplexity, 3),
            "training / held-out pairs": f"{len(train)} / {len(data.validation)}",
            "decoding": config.decoding,
            **({"stopped by --minutes": True} if run.stopped_early else {}),
        })

    def evaluate(self, export: Export, data: Splits, config: TranslationEvaluate,
                 output_dir: Path | None) -> Evaluation:
        pairs = data.test.head(config.score_limit)
        hypotheses = translate_batches(export.signature(), pairs.sources)
        scores = corpus_scores(hypotheses, pairs.targets)
        return Evaluation(
            "held-out BLEU", scores["bleu"],
            {"held-out chrF": scores["chrf"], "pairs": len(pairs),
             "example": f"{pairs.sources[0]!r} -> {hypotheses[0]!r}" if len(pairs) else ""},
            summary=f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  on {len(pairs)} pairs "
            f"of {data.name}",
        )

    def predict(self, export: Export, config: TranslationPredict) -> list[str]:
        translations = translate_batches(export.signature(), list(config.texts))
        for translation in translations:
            print(translation)
        return translations

    def explain(self, export: Export, config: TranslationExplain) -> Path:
        from apps.translation.explain import plot_alignment

        path = plot_alignment(export.signature("attention"), config.text, config.output)
        print(f"attention alignment written to {path}")
        return path

    def page(self, page) -> None:
        import gradio as gr
        from apps.translation.explain import plot_alignment

        text = gr.Textbox(label="A sentence", value=self.example_inputs[0])
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

    def demo(self, export: Export) -> str:
        sources = [source for source, _ in generate_pairs(2, seed=2026)]
        translations = translate_batches(export.signature(), sources)
        return "; ".join(f"{source!r} -> {target!r}" for source, target in zip(sources, translations))


TRANSLATION = register_app(TranslationApp())


def run_translate(args: argparse.Namespace) -> list[str]:
    """`gru-suite translate`: the same as `gru-suite predict translation`."""
    config = from_arguments(TranslationPredict, args)
    return TRANSLATION.predict(load_export(TRANSLATION, config.model), config)


register(Command("translate", None, "translate sentences with an exported translation model",
                 arguments_configurer(TranslationPredict), run_translate))
