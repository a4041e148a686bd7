"""Chatbot quality on Cornell Movie-Dialogs pairs: hits@1 of 20 beside TF-IDF's, perplexity, distinct-1/2.

    python benchmarks/chatbot_quality.py --data-dir ../shared/datasets --minutes 10
        [--mode hybrid|retrieval|generative] [--splits blocks,random]

For each split, trains `gru-suite train chatbot --mode ...` on
cornell/pairs.enc + pairs.dec (the app holds out 10%, half validation and
half test: `blocks`, whole stretches of the file, so test movies are not
training movies, or `random` pairs; `--decoding auto` picks the generator's
decoding and hybrid its threshold on the validation half), exports, loads
the export afresh and reports on the test half:

- hits@1 of 20: each test prompt's true reply ranked among 19 replies of
  other test pairs: by the dual encoder's `rank` signature (retrieval,
  hybrid), by the generator's likelihood relative to the reply alone and per
  token (generative, hybrid), and by TF-IDF cosine, on the same candidates
  (chance 0.05);
- per-token perplexity of the generator (teacher-forced, [END] included)
  beside a unigram baseline (add-one smoothed target-token frequencies of
  the training replies, same vocabulary and truncation);
- distinct-1/2 of the export's replies and how many were retrieved;
- a few test prompts picked by `--seed`, with the export's replies and where
  each came from.

`--minutes` bounds each model's fit (a hybrid fits two).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import tensorflow as tf

from apps.chatbot.data import SPLITS, load_splits
from apps.chatbot.model import replies_with_sources
from apps.chatbot.quality import (HITS_CANDIDATES, REPLY_SAMPLE, distinct_n, hits_at_1, perplexity, rank_hits_at_1,
                                  tfidf_hits_at_1)
from apps.chatbot.settings import MODES
from apps.common.export import load_exported, read_metadata
from apps.common.running import train_app
from apps.common.text import END, PAD, START, UNK, build_vocabulary, tokenize
from apps.common.training import format_table


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
    parser.add_argument("--mode", choices=MODES, default="hybrid", help="default hybrid")
    parser.add_argument("--splits", default=",".join(SPLITS), help=f"comma-separated, from {','.join(SPLITS)}")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model, default 10")
    parser.add_argument("--epochs", type=int, default=30, help="upper bound on epochs, default 30")
    parser.add_argument("--units", type=int, default=256, help="default 256")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="default 2e-3")
    parser.add_argument("--dropout", type=float, default=0.3, help="default 0.3")
    parser.add_argument("--unconditioned", type=float, default=0.1, help="default 0.1")
    parser.add_argument("--contrastive-weight", type=float, default=0.0, help="default 0 (off)")
    parser.add_argument("--copy", action=argparse.BooleanOptionalAction, default=True,
                        help="let the decoder copy prompt tokens (default: on, as the app's)")
    parser.add_argument("--vocabulary-size", type=int, default=8000, help="default 8000")
    parser.add_argument("--max-length", type=int, default=20, help="default 20")
    parser.add_argument("--generate", type=int, default=REPLY_SAMPLE,
                        help=f"test utterances to reply to for distinct-n, default {REPLY_SAMPLE}")
    parser.add_argument("--examples", type=int, default=6, help="seeded examples, default 6")
    parser.add_argument("--seed", type=int, default=0, help="picks the examples, default 0")
    args = parser.parse_args()
    splits = [name for name in args.splits.split(",") if name]
    if not splits or set(splits) - set(SPLITS):
        parser.error(f"--splits: give names from {', '.join(SPLITS)}")
    for split in splits:
        measure(args, split)


def measure(args: argparse.Namespace, split: str) -> None:
    """Trains on one split and prints its figures."""
    spec = str(args.data_dir / "cornell" / "pairs.enc")
    export_dir = Path(tempfile.mkdtemp(prefix="chatbot_quality_"))
    start = time.perf_counter()
    report = train_app("chatbot", [
        "--data", spec, "--split", split, "--mode", args.mode, "--minutes", str(args.minutes),
        "--epochs", str(args.epochs), "--units", str(args.units),
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--dropout", str(args.dropout), "--unconditioned", str(args.unconditioned),
        "--contrastive-weight", str(args.contrastive_weight), "--keep-best",
        "--vocabulary-size", str(args.vocabulary_size), "--max-length", str(args.max_length),
        "--export-dir", str(export_dir), "--verbose", "2", "--copy" if args.copy else "--no-copy",
        # Never resume a backup left by an earlier (killed) run of the same command.
        "--fresh",
    ])
    train, validation, test = load_splits(spec, split)
    loaded = load_exported(report.export_path)
    metadata = read_metadata(report.export_path)
    reply = loaded.signatures["serving_default"]
    print(f"\nCornell, {split} split ({len(train)} training / {len(validation)} validation / {len(test)} "
          f"test pairs), --mode {args.mode}, {report.train_seconds / 60:.1f} min of training "
          "(the decoding choice included)")
    ranked = {"TF-IDF cosine": tfidf_hits_at_1(test)}
    if "rank" in loaded.signatures:
        ranked["GRU dual encoder"] = rank_hits_at_1(loaded.signatures["rank"], test)
    if "score" in loaded.signatures:
        hits = hits_at_1(loaded.signatures["score"], test)
        ranked["GRU seq2seq, relative likelihood"] = hits.relative
        ranked["GRU seq2seq, per-token likelihood"] = hits.per_token
    print(f"hits@1 of {HITS_CANDIDATES} on {len(test)} test prompts (chance {1 / HITS_CANDIDATES:.2f}): "
          + ", ".join(f"{name} {value:.3f}" for name, value in ranked.items()))
    if "GRU dual encoder" in ranked:
        print(f"dual encoder / TF-IDF: {ranked['GRU dual encoder'] / ranked['TF-IDF cosine']:.2f}x "
              "(target >= 2x on the block split)")
    if "score" in loaded.signatures:
        model_perplexity = perplexity(loaded.signatures["score"], test.sources, test.targets)
        baseline = unigram_perplexity(train.targets, test.targets, args.vocabulary_size, args.max_length)
        print(f"test perplexity: GRU seq2seq {model_perplexity:.1f}, unigram baseline {baseline:.1f} "
              f"({model_perplexity / baseline:.2f}x)")
    texts, reference = test.sources[: args.generate], test.targets[: args.generate]
    answers, sources = replies_with_sources(reply, texts)
    print(f"distinct-1 / distinct-2 of {len(answers)} replies: "
          f"{distinct_n(answers, 1):.3f} / {distinct_n(answers, 2):.3f} "
          f"(human replies: {distinct_n(reference, 1):.3f} / {distinct_n(reference, 2):.3f})")
    if "retrieval" in metadata:
        retrieval = metadata["retrieval"]
        print(f"{sources.count('retrieved')} of {len(sources)} replies retrieved from an index of "
              f"{retrieval['replies']} training replies (threshold {retrieval['threshold']})")
    if "decoding choice" in metadata:
        print(f"\nDecoding on {min(len(validation), REPLY_SAMPLE)} validation prompts; "
              f"the export uses: {report.extra['decoding']}")
        print(format_table([
            {"decoding": row["decoding"], "F1 with the true reply": f"{row['f1']:.3f}",
             "distinct-1": f"{row['distinct_1']:.3f}", "distinct-2": f"{row['distinct_2']:.3f}",
             "tokens per reply": f"{row['mean_tokens']:.1f}"}
            for row in metadata["decoding choice"]
        ], "markdown"))
    print(f"\nTest prompts picked with seed {args.seed}:")
    picked = [test.sources[index] for index in random.Random(args.seed).sample(range(len(test)),
                                                                              min(args.examples, len(test)))]
    for text, answer, source in zip(picked, *replies_with_sources(reply, picked)):
        print(f"  {text!r} -> {answer!r} ({source}; human: {test.targets[test.sources.index(text)]!r})")
    print(f"{time.perf_counter() - start:.0f} s wall in all")


if __name__ == "__main__":
    main()
