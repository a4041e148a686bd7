"""Chatbot quality on Cornell Movie-Dialogs pairs: held-out perplexity and distinct-1/2.

    python benchmarks/chatbot_quality.py --data-dir ../shared/datasets --minutes 20

Trains `gru-suite train chatbot` on cornell/pairs.enc + pairs.dec (the app
holds out a seeded 10%), exports, loads the export afresh and reports on the
held-out pairs: per-token perplexity (teacher-forced, [END] included) beside
a unigram baseline (add-one smoothed target-token frequencies of the training
replies, same vocabulary and truncation), and distinct-1/2 of generated replies.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import tensorflow as tf

from apps import cli
from apps.chatbot.data import load_splits
from apps.chatbot.model import distinct_n, generate_replies, perplexity
from apps.common.export import load_exported
from apps.common.text import END, PAD, START, UNK, build_vocabulary, tokenize
from apps.registry import load_app_packages


def unigram_perplexity(train_replies, held_out_replies, vocabulary_size, max_length) -> float:
    """Perplexity of an add-one unigram model of reply tokens (with [END]), as the model sees them."""
    vocabulary = build_vocabulary(train_replies, vocabulary_size)
    known = set(vocabulary)

    def tokens(texts):
        for row in tokenize(tf.constant(texts)).to_list():
            words = [w.decode("utf-8") for w in row[: max_length - 1]]
            yield [w if w in known else UNK for w in words] + [END]

    counts = Counter(token for row in tokens(train_replies) for token in row)
    outcomes = [token for token in vocabulary if token not in (PAD, START)]
    total = sum(counts.values()) + len(outcomes)
    nll, count = 0.0, 0
    for row in tokens(held_out_replies):
        for token in row:
            nll -= math.log((counts[token] + 1) / total)
            count += 1
    return math.exp(nll / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding cornell/pairs.enc and cornell/pairs.dec")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget, default 20")
    parser.add_argument("--epochs", type=int, default=30, help="upper bound on epochs, default 30")
    parser.add_argument("--units", type=int, default=256, help="default 256")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--vocabulary-size", type=int, default=8000, help="default 8000")
    parser.add_argument("--max-length", type=int, default=20, help="default 20")
    parser.add_argument("--generate", type=int, default=500,
                        help="held-out utterances to reply to for distinct-n, default 500")
    args = parser.parse_args()

    spec = str(args.data_dir / "cornell" / "pairs.enc")
    export_dir = Path(tempfile.mkdtemp(prefix="chatbot_quality_"))
    load_app_packages()
    start = time.perf_counter()
    report = cli.run([
        "train", "chatbot", "--data", spec, "--minutes", str(args.minutes),
        "--epochs", str(args.epochs), "--units", str(args.units),
        "--batch-size", str(args.batch_size), "--vocabulary-size", str(args.vocabulary_size),
        "--max-length", str(args.max_length), "--export-dir", str(export_dir), "--verbose", "2",
        # Never resume a backup left by an earlier (killed) run of the same command.
        "--fresh",
    ])
    train, held_out = load_splits(spec)
    loaded = load_exported(report.export_path)
    model_perplexity = perplexity(loaded.signatures["score"], held_out.sources, held_out.targets)
    baseline = unigram_perplexity(
        train.targets, held_out.targets, args.vocabulary_size, args.max_length
    )
    replies = generate_replies(
        loaded.signatures["serving_default"], held_out.sources[: args.generate]
    )
    reference = held_out.targets[: args.generate]
    print(f"\nCornell ({len(train)} training / {len(held_out)} held-out pairs), "
          f"{report.epochs} epoch(s), {report.train_seconds / 60:.1f} min of training")
    print(f"held-out perplexity: GRU seq2seq {model_perplexity:.1f}, unigram baseline {baseline:.1f}")
    print(f"distinct-1 / distinct-2 of {len(replies)} sampled replies: "
          f"{distinct_n(replies, 1):.3f} / {distinct_n(replies, 2):.3f} "
          f"(human replies: {distinct_n(reference, 1):.3f} / {distinct_n(reference, 2):.3f})")
    for source, reply in list(zip(held_out.sources, replies))[:5]:
        print(f"  {source!r} -> {reply!r}")
    print(f"{time.perf_counter() - start:.0f} s wall in all")


if __name__ == "__main__":
    main()
