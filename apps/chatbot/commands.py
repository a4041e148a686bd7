"""CLI of the chatbot app: train, evaluate, predict, and the interactive `gru-suite chat`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tensorflow as tf

from apps.chatbot.data import evaluation_pairs, load_splits
from apps.chatbot.model import (
    APP,
    distinct_n,
    export_chatbot,
    generate_replies,
    make_signatures,
    perplexity,
)
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

DATA_HELP = (
    "sample (default; the chatterbot-corpus English conversations), cornell (Cornell "
    "Movie-Dialogs), a tab-separated pairs file, PATH.enc (with PATH.dec), or "
    "UTTERANCES,REPLIES line-aligned files"
)
# Generated replies scored for distinct-1/2 (generation is the slow part).
DISTINCT_SAMPLE = 500


def configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="sample", help=DATA_HELP)
    add_training_arguments(parser, epochs=15, batch_size=32, units=128)
    add_seq2seq_arguments(parser, max_length=24, vocabulary_size=8000, decoding="sample")


def run_train(args: argparse.Namespace) -> TrainReport:
    check_seq2seq_arguments(args)
    set_seed(args.seed)
    train, held_out = load_splits(args.data)
    train = train.head(args.limit)
    # Room for the utterance, the separator and the turn before it.
    run = train_seq2seq(train, held_out, args, app=APP, max_source_length=2 * args.max_length)
    export_path = None
    if args.no_export:
        signatures = make_signatures(run.server)
    else:
        export_path, signatures = export_chatbot(run.server, args.export_dir)
    sources = held_out.sources[:DISTINCT_SAMPLE]
    replies = generate_replies(signatures["serving_default"], sources)
    report = TrainReport(
        app=APP,
        data=args.data,
        cell=args.cell,
        metric="held-out perplexity",
        value=run.held_out_perplexity,
        train_seconds=run.train_seconds,
        epochs=run.epochs_run,
        export_path=str(export_path) if export_path else None,
        extra={
            "distinct-1 / distinct-2": f"{distinct_n(replies, 1):.3f} / {distinct_n(replies, 2):.3f}",
            "training / held-out pairs": f"{len(train)} / {len(held_out)}",
            "decoding": args.decoding,
            "example": f"{sources[0]!r} -> {replies[0]!r}",
            **({"stopped by --minutes": True} if run.stopped_early else {}),
        },
    )
    return publish_report(report, args, run.model)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path,
                        help="an export folder, or saved_models/chatbot for the newest version")


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument("--data", default="sample", help=DATA_HELP)
    parser.add_argument("--limit", type=int, default=None, help="score at most this many pairs")


def run_evaluate(args: argparse.Namespace) -> dict[str, float]:
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    loaded = load_exported(args.model)
    if "score" not in loaded.signatures:
        raise InputError(f"{args.model}: not a chatbot export (no 'score' signature).")
    pairs = evaluation_pairs(args.data).head(args.limit)
    replies = generate_replies(
        loaded.signatures["serving_default"], pairs.sources[:DISTINCT_SAMPLE]
    )
    scores = {
        "perplexity": perplexity(loaded.signatures["score"], pairs.sources, pairs.targets),
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
        "pairs": len(pairs),
    }
    print(
        f"perplexity {scores['perplexity']:.2f} on {len(pairs)} pairs of {args.data}; "
        f"distinct-1 {scores['distinct_1']:.3f}, distinct-2 {scores['distinct_2']:.3f} "
        f"over {len(replies)} generated replies"
    )
    return scores


def configure_predict(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument("text", nargs="+", help="utterances to reply to")


def run_predict(args: argparse.Namespace) -> list[str]:
    loaded = load_exported(args.model)
    replies = generate_replies(loaded.signatures["serving_default"], args.text)
    for reply in replies:
        print(reply)
    return replies


def configure_chat(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser)
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="sampling temperature, default 0.8")
    parser.add_argument("--top-k", type=int, default=0, help="top-k sampling, 0 = off (default)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass, default 0.9")
    parser.add_argument("--no-context", action="store_true",
                        help="do not give the bot's previous reply as context")


class Conversation:
    """Replies turn by turn, with the bot's previous reply as the next turn's context."""

    def __init__(self, converse, temperature: float, top_k: int, top_p: float, use_context: bool):
        self.converse = converse
        self.sampling = {
            "temperature": tf.constant(temperature, tf.float32),
            "top_k": tf.constant(top_k, tf.int32),
            "top_p": tf.constant(top_p, tf.float32),
        }
        self.use_context = use_context
        self.context = ""

    def reset(self) -> None:
        self.context = ""

    def reply(self, text: str) -> str:
        result = self.converse(
            text=tf.constant([text]), context=tf.constant([self.context]), **self.sampling
        )
        answer = result["reply"].numpy()[0].decode("utf-8")
        if self.use_context:
            self.context = answer
        return answer


def run_chat(args: argparse.Namespace) -> list[str]:
    if args.temperature <= 0 or args.top_k < 0 or not 0 < args.top_p <= 1:
        raise InputError("--temperature must be > 0, --top-k ≥ 0 and --top-p in (0, 1].")
    loaded = load_exported(args.model)
    if "converse" not in loaded.signatures:
        raise InputError(f"{args.model}: not a chatbot export (no 'converse' signature).")
    conversation = Conversation(
        loaded.signatures["converse"], args.temperature, args.top_k, args.top_p,
        use_context=not args.no_context,
    )
    interactive = sys.stdin.isatty()
    replies: list[str] = []
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        print("Type a message; /reset forgets the conversation, /quit (or Ctrl-D) leaves.")
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            break
        if text == "/reset":
            conversation.reset()
            if interactive:
                print("(conversation reset)")
            continue
        answer = conversation.reply(text)
        replies.append(answer)
        print(f"bot> {answer}" if interactive else answer, flush=True)
    return replies


DEMO_UTTERANCES = ["hello", "what is your name", "do you like music"]


def demo(export_path: str) -> str:
    """Replies to a few utterances with an export (for `gru-suite reproduce`)."""
    replies = generate_replies(load_exported(export_path).signatures["serving_default"], DEMO_UTTERANCES)
    return "; ".join(f"{text!r} -> {reply!r}" for text, reply in zip(DEMO_UTTERANCES, replies))


register(Command("train", APP, "train a GRU encoder-decoder chatbot and export it",
                 configure_train, run_train, quick_args=("--epochs", "4"), demo=demo))
register(Command("evaluate", APP, "held-out perplexity and distinct-1/2 of an exported chatbot",
                 configure_evaluate, run_evaluate))
register(Command("predict", APP, "reply to utterances with an exported chatbot",
                 configure_predict, run_predict))
register(Command("chat", None, "talk with an exported chatbot in the terminal",
                 configure_chat, run_chat))
