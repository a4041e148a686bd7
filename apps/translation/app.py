"""The translation app: `gru-suite train|evaluate|predict|explain translation`, and `translate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.common.app import Evaluation, Export, Fitting, Trained
from apps.common.config import arguments_configurer, from_arguments
from apps.common.running import load_export, register_app
from apps.common.seq2seq.app import Seq2SeqApp
from apps.common.seq2seq.pairs import NamedPairs, TrainingPairs
from apps.common.seq2seq.serving import seq2seq_serving
from apps.common.seq2seq.training import train_seq2seq
from apps.registry import Command, register
from apps.translation.data import evaluation_pairs, load_splits
from apps.translation.explain import plot_alignment
from apps.translation.grammar import generate_pairs
from apps.translation.model import APP, corpus_scores, make_signatures, translate_batches
from apps.translation.page import translation_tab
from apps.translation.settings import (
    DataSettings,
    TranslationEvaluate,
    TranslationExplain,
    TranslationPredict,
    TranslationTrain,
)


class TranslationApp(Seq2SeqApp[TrainingPairs]):
    """A GRU encoder-decoder with attention, strings in and strings out."""

    name = APP
    help = {
        "train": "train a translator (GRU encoder-decoder, attention) on sentence pairs and export it",
        "evaluate": "score a translation export: corpus BLEU and chrF",
        "predict": "run a translation export on sentences: one translation each",
        "explain": "plot a translation export's attention over one translation, as a PNG",
    }
    Train = TranslationTrain
    Evaluate = TranslationEvaluate
    Predict = TranslationPredict
    Explain = TranslationExplain
    signatures = staticmethod(make_signatures)
    run_texts = staticmethod(translate_batches)
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8",
                  "--beam-width", "2")
    example_inputs = ("the tall cat sleeps.", "")
    quick_args = ("--epochs", "3", "--limit", "6000")

    def load_data(self, config: DataSettings) -> TrainingPairs:
        return TrainingPairs(self._name(config), *load_splits(config.data, config.reverse))

    def held_out(self, data: TrainingPairs) -> NamedPairs:
        """The validation split: the data sets have no test split apart from it."""
        return NamedPairs(data.name, data.validation)

    def evaluation_data(self, config: DataSettings) -> NamedPairs:
        return NamedPairs(self._name(config), evaluation_pairs(config.data, config.reverse))

    @staticmethod
    def _name(config: DataSettings) -> str:
        return config.data + (" (reversed)" if config.reverse else "")

    def train(self, config: TranslationTrain, data: TrainingPairs, fitting: Fitting) -> Trained:
        train = data.train.head(config.limit)
        run = train_seq2seq(train, data.validation, config, fitting)
        serving = seq2seq_serving(run.server, make_signatures(run.server))
        return Trained(run.model, serving, run.epochs_run, {
            "held-out perplexity": round(run.held_out_perplexity, 3),
            "training / held-out pairs": f"{len(train)} / {len(data.validation)}",
            "decoding": config.decoding})

    def evaluate(self, export: Export, data: NamedPairs, config: TranslationEvaluate,
                 output_dir: Path | None) -> Evaluation:
        pairs = data.pairs.head(config.score_limit)
        hypotheses = self.generate(export, pairs.sources)
        scores = corpus_scores(hypotheses, pairs.targets)
        return Evaluation(
            "held-out BLEU", scores["bleu"],
            {"held-out chrF": scores["chrf"], "pairs": len(pairs),
             "example": f"{pairs.sources[0]!r} -> {hypotheses[0]!r}" if len(pairs) else ""},
            summary=f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  on {len(pairs)} pairs "
            f"of {data.name}",
        )

    def explain(self, export: Export, config: TranslationExplain) -> Path:
        path = plot_alignment(export.signature("attention"), config.text, config.output)
        print(f"attention alignment written to {path}")
        return path

    def page(self, page) -> None:
        translation_tab(page, self.example_inputs[0])

    def demo(self, export: Export) -> str:
        sources = [source for source, _ in generate_pairs(2, seed=2026)]
        translations = self.generate(export, sources)
        return "; ".join(f"{source!r} -> {target!r}" for source, target in zip(sources, translations))


TRANSLATION = register_app(TranslationApp())


def run_translate(args: argparse.Namespace) -> list[str]:
    """`gru-suite translate`: the same as `gru-suite predict translation`."""
    config = from_arguments(TranslationPredict, args)
    return TRANSLATION.predict(load_export(TRANSLATION, config.model), config)


register(Command("translate", None, "translate sentences with an exported translation model",
                 arguments_configurer(TranslationPredict), run_translate))
