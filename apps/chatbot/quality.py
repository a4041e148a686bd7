"""How well a chatbot listens: the figures `evaluate chatbot` reports and `train` decodes by.

- `perplexity`: per-token perplexity of the true replies (teacher-forced).
- `hits_at_1`: does the model prefer the true reply to replies of other
  prompts? Each prompt's true reply is ranked among `candidates - 1` replies
  of other pairs by the export's `score` signature; chance is 1 / candidates.
- `distinct_n`: lexical variety of generated replies.
- `unigram_f1`: token overlap of a generated reply with the true reply.
- `answer_share`: the share of a corpus's prompts answered with one of the
  corpus's own replies to that prompt.
- `choose_decoding`: the decoding that `train` exports, picked by these
  figures on the validation split.

Replies are compared as the model tokenizes them (`apps.common.text.tokenize`:
case-folded, punctuation split off), so "Hi!" and "hi !" are the same reply.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from apps.chatbot.data import utterance
from apps.chatbot.model import generate_replies, make_signatures
from apps.common.errors import InputError
from apps.common.seq2seq.pairs import TextPairs
from apps.common.seq2seq.serving import TextSeq2Seq
from apps.common.seq2seq.settings import DecodingOptions
from apps.common.text import tokenize

# `hits_at_1` and `evaluate` rank with this one (see `hits_at_1`).
RANKING = "relative likelihood"
HITS_CANDIDATES = 20
HITS_SEED = 0
ANSWER_PROMPTS = 100
ANSWER_SEED = 0
# What `train --decoding auto` tries: each strategy, with and without the
# things that fight dull, looping replies (blocking, length normalization, heat).
DECODING_CANDIDATES = (
    DecodingOptions("greedy"),
    DecodingOptions("greedy", no_repeat_ngram=3),
    DecodingOptions("beam", beam_width=4, length_penalty=0.6, no_repeat_ngram=3),
    DecodingOptions("beam", beam_width=4, length_penalty=1.0, no_repeat_ngram=3),
    DecodingOptions("sample", temperature=0.5, top_p=0.9, no_repeat_ngram=3),
    DecodingOptions("sample", temperature=0.8, top_p=0.9, no_repeat_ngram=3),
    DecodingOptions("sample", temperature=1.0, top_k=40, top_p=1.0, no_repeat_ngram=3),
)
# Replies below this distinct-2 (over `REPLY_SAMPLE` of them) say the same
# few things to everyone; Li et al. (2016) measure generic replies this way.
DISTINCT_FLOOR = 0.4
# Replies generated per measurement (generation is the slow part); distinct-n
# falls as replies are added, so every distinct-n here is over this many at most.
REPLY_SAMPLE = 500


def _token_rows(texts: list[str]) -> list[list[str]]:
    if not texts:
        return []
    rows = tokenize(tf.constant(texts)).to_list()
    return [[token.decode("utf-8") for token in row] for row in rows]


def _scores(score_function: Callable, sources: list[str], replies: list[str],
            batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(nll `[n]`, tokens `[n]`) of each reply given its source (context already joined in)."""
    nll, tokens = [], []
    for start in range(0, len(sources), batch_size):
        texts = tf.constant(sources[start : start + batch_size])
        result = score_function(text=texts, context=tf.fill(tf.shape(texts), ""),
                                reply=tf.constant(replies[start : start + batch_size]))
        nll.append(result["nll"].numpy())
        tokens.append(result["tokens"].numpy())
    if not nll:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(nll).astype(np.float64), np.concatenate(tokens).astype(np.float64)


def perplexity(score_function: Callable, sources: list[str], replies: list[str],
               batch_size: int = 64) -> float:
    """Per-token perplexity of `replies` given `sources` (with any context already joined in)."""
    nll, tokens = _scores(score_function, sources, replies, batch_size)
    return float(np.exp(nll.sum() / max(tokens.sum(), 1.0)))


def distinct_n(replies: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the tokens of `replies` (0 if none)."""
    ngrams = [
        tuple(tokens[i : i + n]) for tokens in _token_rows(replies) for i in range(len(tokens) - n + 1)
    ]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0


def unigram_f1(replies: list[str], references: list[str]) -> float:
    """Mean token-overlap F1 of each reply with its reference (ParlAI's F1, on our tokens)."""
    if len(replies) != len(references):
        raise ValueError(f"{len(replies)} replies but {len(references)} references.")
    scores = []
    for reply, reference in zip(_token_rows(replies), _token_rows(references)):
        common = sum((Counter(reply) & Counter(reference)).values())
        scores.append(0.0 if common == 0 else 2 * common / (len(reply) + len(reference)))
    return float(np.mean(scores)) if scores else 0.0


def candidate_sets(replies: list[str], candidates: int = HITS_CANDIDATES,
                   seed: int = HITS_SEED) -> list[list[int]]:
    """For each pair i, `[i]` then `candidates - 1` seeded indices of other pairs' replies.

    Distractors are drawn from the replies that read differently from reply i
    (as tokens), so a distractor is never the true reply in other words.
    """
    if candidates < 2:
        raise ValueError(f"candidates must be at least 2, got {candidates}.")
    keys = [" ".join(row) for row in _token_rows(replies)]
    if len(set(keys)) < candidates:
        raise InputError(
            f"hits@1 of {candidates} needs at least {candidates} different replies; "
            f"these pairs have {len(set(keys))}."
        )
    rng = random.Random(seed)
    sets = []
    for index, key in enumerate(keys):
        chosen: list[int] = []
        while len(chosen) < candidates - 1:
            other = rng.randrange(len(keys))
            if keys[other] != key and other not in chosen:
                chosen.append(other)
        sets.append([index] + chosen)
    return sets


def candidate_pairs(pairs: TextPairs, candidates: int,
                    seed: int) -> tuple[list[list[int]], list[str], list[str]]:
    """`candidate_sets` of `pairs`, and flat (prompt, candidate reply) lists of every set, row by row."""
    sets = candidate_sets(pairs.targets, candidates, seed)
    sources = [pairs.sources[row[0]] for row in sets for _ in row]
    replies = [pairs.targets[index] for row in sets for index in row]
    return sets, sources, replies


@dataclass(frozen=True)
class Hits:
    """hits@1 of `candidates` over `prompts` prompts, under both rankings."""

    per_token: float
    relative: float
    candidates: int
    prompts: int

    @property
    def chance(self) -> float:
        return 1.0 / self.candidates

    @property
    def value(self) -> float:
        """The one the project reports as hits@1 (`RANKING`)."""
        return self.relative if RANKING == "relative likelihood" else self.per_token


def hit_share(scores: np.ndarray) -> float:
    """Mean over rows of `scores` `[prompts, candidates]` (true reply first, higher is better)
    of the hit: 1 when the true reply scores highest, and 1/k when it ties with k - 1 others
    for the highest, so a scorer that cannot tell replies apart gets chance, 1 / candidates."""
    best = scores.max(axis=1, keepdims=True)
    at_best = scores >= best
    hits = np.where(at_best[:, 0], 1.0 / at_best.sum(axis=1), 0.0)
    return float(hits.mean()) if len(hits) else 0.0


def hits_at_1(score_function: Callable, pairs: TextPairs, candidates: int = HITS_CANDIDATES,
              seed: int = HITS_SEED, batch_size: int = 256) -> Hits:
    """hits@1 of `candidates` by `score_function` (the `score` signature) over `pairs`.

    Two rankings of the candidates y for prompt x:

    - per-token likelihood, log P(y | x) / |y|: favours short, common replies
      whatever the prompt;
    - relative likelihood, log P(y | x) - log P(y | ""): how much the prompt
      raises the reply's likelihood over the reply alone (the prompt left
      empty), which cancels out how common a reply is. The project reports
      this one (`RANKING`).
    """
    sets, sources, replies = candidate_pairs(pairs, candidates, seed)
    nll, tokens = _scores(score_function, sources, replies, batch_size)
    nll, tokens = nll.reshape(len(sets), candidates), tokens.reshape(len(sets), candidates)
    alone, _ = _scores(score_function, [""] * len(pairs), pairs.targets, batch_size)
    unconditioned = alone[np.array(sets)]
    return Hits(
        per_token=hit_share(-nll / np.maximum(tokens, 1.0)),
        relative=hit_share(unconditioned - nll),
        candidates=candidates,
        prompts=len(sets),
    )


def rank_hits_at_1(rank_function: Callable, pairs: TextPairs, candidates: int = HITS_CANDIDATES,
                   seed: int = HITS_SEED, batch_size: int = 1024) -> float:
    """hits@1 of `candidates` by a `rank` signature (`text`, `reply` -> `score`) on the
    `candidate_sets` that `hits_at_1` uses."""
    sets, sources, replies = candidate_pairs(pairs, candidates, seed)
    scores = [rank_function(text=tf.constant(sources[i:i + batch_size]),
                            reply=tf.constant(replies[i:i + batch_size]))["score"].numpy()
              for i in range(0, len(sources), batch_size)]
    return hit_share(np.concatenate(scores).reshape(len(sets), candidates))


def tfidf_hits_at_1(pairs: TextPairs, candidates: int = HITS_CANDIDATES, seed: int = HITS_SEED) -> float:
    """hits@1 of `candidates` by the TF-IDF cosine of prompt and reply, on the `candidate_sets`
    that `hits_at_1` uses: the floor a model that learns nothing reaches (Lowe et al. 2015).

    Document frequencies come from the scored pairs' prompts and replies themselves
    (smoothed idf, log((1 + n) / (1 + df)) + 1, as scikit-learn's default).
    """
    sets = candidate_sets(pairs.targets, candidates, seed)
    prompts, replies = _token_rows(pairs.sources), _token_rows(pairs.targets)
    documents = prompts + replies
    frequency = Counter(token for row in documents for token in set(row))
    idf = {token: math.log((1 + len(documents)) / (1 + count)) + 1 for token, count in frequency.items()}

    def vector(tokens: list[str]) -> dict[str, float]:
        weights = {token: count * idf[token] for token, count in Counter(tokens).items()}
        norm = math.sqrt(sum(value * value for value in weights.values())) or 1.0
        return {token: value / norm for token, value in weights.items()}

    prompt_vectors, reply_vectors = [vector(row) for row in prompts], [vector(row) for row in replies]
    scores = np.array([[sum(weight * reply_vectors[index].get(token, 0.0)
                            for token, weight in prompt_vectors[row[0]].items()) for index in row]
                       for row in sets])
    return hit_share(scores)


def corpus_prompts(pairs: TextPairs, prompts: int = ANSWER_PROMPTS,
                   seed: int = ANSWER_SEED) -> tuple[list[str], list[set[str]]]:
    """`prompts` seeded distinct utterances of `pairs`, each with every reply the corpus gives it
    (as tokens joined by spaces)."""
    answers: dict[str, set[str]] = defaultdict(set)
    for source, row in zip(pairs.sources, _token_rows(pairs.targets)):
        answers[utterance(source)].add(" ".join(row))
    chosen = random.Random(seed).sample(sorted(answers), min(prompts, len(answers)))
    return chosen, [answers[text] for text in chosen]


def answer_share(reply_function: Callable, pairs: TextPairs, prompts: int = ANSWER_PROMPTS,
                 seed: int = ANSWER_SEED) -> tuple[float, int]:
    """(share, prompts): how many of `prompts` seeded corpus utterances `reply_function`
    (the `serving_default` signature) answers with one of the corpus's replies to it."""
    texts, answers = corpus_prompts(pairs, prompts, seed)
    generated = [" ".join(row) for row in _token_rows(generate_replies(reply_function, texts))]
    matches = sum(reply in accepted for reply, accepted in zip(generated, answers))
    return matches / max(len(texts), 1), len(texts)


@dataclass(frozen=True)
class DecodingResult:
    """How one decoding replied to the validation prompts."""

    options: DecodingOptions
    f1: float
    distinct_1: float
    distinct_2: float
    mean_tokens: float

    def record(self) -> dict[str, str | float]:
        """JSON-ready figures, as the export's metadata keeps them."""
        return {"decoding": self.options.label, "f1": self.f1, "distinct_1": self.distinct_1,
                "distinct_2": self.distinct_2, "mean_tokens": self.mean_tokens}


def measure_decoding(server: TextSeq2Seq, options: DecodingOptions, pairs: TextPairs) -> DecodingResult:
    """Replies of `server` decoding with `options` to `pairs`' sources, against their replies."""
    reply = make_signatures(server.with_decoding(options))["serving_default"]
    replies = generate_replies(reply, pairs.sources)
    return DecodingResult(
        options, unigram_f1(replies, pairs.targets), distinct_n(replies, 1), distinct_n(replies, 2),
        float(np.mean([len(row) for row in _token_rows(replies)])) if replies else 0.0,
    )


def measure_decodings(server: TextSeq2Seq, pairs: TextPairs,
                      candidates: tuple[DecodingOptions, ...] = DECODING_CANDIDATES) -> list[DecodingResult]:
    """`measure_decoding` of each of `candidates`."""
    logger = tf.get_logger()
    level = logger.level
    # Every candidate is a new trace by design; TensorFlow would warn of retracing.
    logger.setLevel("ERROR")
    try:
        return [measure_decoding(server, options, pairs) for options in candidates]
    finally:
        logger.setLevel(level)


def choose_decoding(results: list[DecodingResult]) -> DecodingResult:
    """The best F1 with the true reply among the results with distinct-2 ≥ `DISTINCT_FLOOR`;
    the most varied one when none is varied enough. Earlier results win ties."""
    if not results:
        raise ValueError("No decoding results to choose from.")
    varied = [result for result in results if result.distinct_2 >= DISTINCT_FLOOR]
    if varied:
        return max(varied, key=lambda result: result.f1)
    return max(results, key=lambda result: result.distinct_2)
