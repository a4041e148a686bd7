"""CLI of the translation app: train, evaluate, predict, explain, and `gru-suite translate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.common.errors import InputError
from apps.common.export import load_exported
from apps.common.seq2seq.training import (
    add_seq2seq_arguments,
    check_seq2seq_arguments,
    train_seq2seq,
)
from apps.common.training import (
    TrainReport,
    add_training_arguments,
    publish_report,
    set_seed,
)
from apps.registry import Command, register
from apps.translation.data import evaluation_pairs, load_splits
from apps.translation.grammar import generate_pairs
from apps.translation.model import (
    APP,
    corpus_scores,
    export_translator,
    make_signatures,
    translate_batches,
)

DATA_HELP = (
    "sample (default; synthetic English->Spanish), anki:LANG (Tatoeba English->LANG), "
    "multi30k (German->English), a tab-separated pairs file, or SOURCE,TARGET line-aligned files"
)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="sample", help=DATA_HELP)
    parser.add_argument("--reverse", action="store_true",
                        help="translate the data set's target language into its source language")


def configure_train(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser)
    add_training_arguments(parser, epochs=8, batch_size=64, units=128)
    add_seq2seq_arguments(parser, max_length=30, vocabulary_size=8000, decoding="beam")


def run_train(args: argparse.Namespace) -> TrainReport:
    check_seq2seq_arguments(args)
    set_seed(args.seed)
    train, validation = load_splits(args.data, args.reverse)
    run = train_seq2seq(train.head(args.limit), validation, args, app=APP)
    export_path = None
    if args.no_export:
        signatures = make_signatures(run.server)
    else:
        export_path, signatures = export_translator(run.server, args.export_dir)
    hypotheses = translate_batches(signatures["serving_default"], validation.sources)
    scores = corpus_scores(hypotheses, validation.targets)
    report = TrainReport(
        app=APP,
        data=args.data + (" (reversed)" if args.reverse else ""),
        cell=args.cell,
        metric="held-out BLEU",
        value=scores["bleu"],
        train_seconds=run.train_seconds,
        epochs=run.epochs_run,
        export_path=str(export_path) if export_path else None,
        extra={
            "held-out chrF": round(scores["chrf"], 2),
            "held-out perplexity": round(run.held_out_perplexity, 3),
            "training / held-out pairs": f"{len(train.head(args.limit))} / {len(validation)}",
            "decoding": args.decoding,
            "example": f"{validation.sources[0]!r} -> {hypotheses[0]!r}",
            **({"stopped by --minutes": True} if run.stopped_early else {}),
        },
    )
    return publish_report(report, args, run.model)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path,
                        help="an export folder, or saved_models/translation for the newest version")


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    _add_data_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="score at most this many pairs")


def run_evaluate(args: argparse.Namespace) -> dict[str, float]:
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    loaded = load_exported(args.model)
    pairs = evaluation_pairs(args.data, args.reverse).head(args.limit)
    hypotheses = translate_batches(loaded.signatures["serving_default"], pairs.sources)
    scores = {**corpus_scores(hypotheses, pairs.targets), "pairs": len(pairs)}
    print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  on {len(pairs)} pairs of {args.data}")
    return scores


def configure_translate(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument("text", nargs="+", help="sentences to translate")


def run_translate(args: argparse.Namespace) -> list[str]:
    loaded = load_exported(args.model)
    translations = translate_batches(loaded.signatures["serving_default"], args.text)
    for translation in translations:
        print(translation)
    return translations


def configure_explain(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument("text", help="one sentence to translate")
    parser.add_argument("--output", type=Path, default=Path("attention.png"),
                        help="PNG to write, default attention.png")


def run_explain(args: argparse.Namespace) -> Path:
    from apps.translation.explain import plot_alignment

    loaded = load_exported(args.model)
    if "attention" not in loaded.signatures:
        raise InputError(f"{args.model}: this export has no 'attention' signature.")
    path = plot_alignment(loaded.signatures["attention"], args.text, args.output)
    print(f"attention alignment written to {path}")
    return path


def demo(export_path: str) -> str:
    """Translates a few grammar sentences with an export (for `gru-suite reproduce`)."""
    sources = [source for source, _ in generate_pairs(2, seed=2026)]
    translations = translate_batches(load_exported(export_path).signatures["serving_default"], sources)
    return "; ".join(f"{source!r} -> {target!r}" for source, target in zip(sources, translations))


register(Command("train", APP, "train a GRU encoder-decoder with attention and export it",
                 configure_train, run_train, quick_args=("--epochs", "3", "--limit", "6000"), demo=demo))
register(Command("evaluate", APP, "corpus BLEU and chrF of an exported translator",
                 configure_evaluate, run_evaluate))
register(Command("predict", APP, "translate sentences with an exported model",
                 configure_translate, run_translate))
register(Command("translate", None, "translate sentences with an exported translation model",
                 configure_translate, run_translate))
register(Command("explain", APP, "plot the attention alignment of one translation as a PNG",
                 configure_explain, run_explain))
