"""The chatbot's figures on hand-made scorers and repliers: hits@1, F1, answer share, the decoding rule."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps.chatbot.data import with_unconditioned
from apps.chatbot.quality import (
    DISTINCT_FLOOR,
    DecodingResult,
    answer_share,
    candidate_sets,
    choose_decoding,
    corpus_prompts,
    hit_share,
    hits_at_1,
    unigram_f1,
)
from apps.common.errors import InputError
from apps.common.seq2seq.pairs import TextPairs
from apps.common.seq2seq.settings import DecodingOptions

PAIRS = TextPairs([f"question {i}" for i in range(30)], [f"answer number {i}" for i in range(30)])


def _scorer(nll_of):
    """A function with the `score` signature's call and outputs, scoring by `nll_of(text, reply)`."""

    def score(text, context, reply):
        assert all(value == b"" for value in context.numpy())
        rows = [nll_of(t.decode(), r.decode()) for t, r in zip(text.numpy(), reply.numpy())]
        tokens = [float(len(r.split()) + 1) for r in reply.numpy()]
        return {"nll": tf.constant(rows, tf.float32), "tokens": tf.constant(tokens, tf.float32)}

    return score


def test_hits_at_1_of_a_scorer_that_knows_the_true_reply_is_one():
    truth = dict(zip(PAIRS.sources, PAIRS.targets))
    hits = hits_at_1(_scorer(lambda text, reply: 1.0 if truth.get(text) == reply else 6.0), PAIRS)
    assert (hits.per_token, hits.relative, hits.prompts, hits.candidates) == (1.0, 1.0, 30, 20)


def test_a_scorer_that_cannot_tell_replies_apart_gets_chance():
    hits = hits_at_1(_scorer(lambda text, reply: 3.0), PAIRS)
    assert hits.per_token == pytest.approx(0.05) and hits.relative == pytest.approx(0.05)
    assert hits.chance == 0.05


def test_the_two_rankings_differ_where_a_reply_is_common_whatever_the_prompt():
    # Reply 0 is likely after every prompt, and just as likely alone: the
    # per-token ranking picks it everywhere; the relative one sees the prompt add nothing.
    truth = dict(zip(PAIRS.sources, PAIRS.targets))

    def nll(text, reply):
        base = 1.0 if reply == PAIRS.targets[0] else 8.0
        return base - (2.0 if truth.get(text) == reply else 0.0)

    hits = hits_at_1(_scorer(nll), PAIRS)
    sets = candidate_sets(PAIRS.targets)
    with_zero = sum(0 in row[1:] for row in sets)
    assert hits.relative == 1.0
    assert hits.per_token == pytest.approx((30 - with_zero) / 30)
    assert hits.value == hits.relative


def test_hit_share_splits_a_tie_for_the_top():
    scores = np.array([[2.0, 2.0, 1.0, 0.0], [3.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    assert hit_share(scores) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_candidate_sets_are_seeded_and_never_hold_the_true_reply_twice():
    targets = ["Yes.", "yes .", "no"] + [f"reply {i}" for i in range(25)]
    sets = candidate_sets(targets, 20, seed=3)
    assert sets == candidate_sets(targets, 20, seed=3) and sets != candidate_sets(targets, 20, seed=4)
    for index, row in enumerate(sets):
        assert row[0] == index and len(set(row)) == 20
    # "Yes." and "yes ." are one reply to the tokenizer: neither is the other's distractor.
    assert 1 not in sets[0] and 0 not in sets[1]
    with pytest.raises(InputError, match="needs at least 20 different replies; these pairs have 3"):
        candidate_sets(["a", "b", "c"] * 10)


def test_unigram_f1():
    assert unigram_f1(["the cat sat", "no"], ["The cat!", "yes"]) == pytest.approx(
        (2 * 2 / (3 + 3) + 0.0) / 2)
    with pytest.raises(ValueError, match="2 replies but 1 references"):
        unigram_f1(["a", "b"], ["a"])


def _replier(answer):
    def reply(text):
        return {"reply": tf.constant([answer(t.decode()) for t in text.numpy()])}

    return reply


def test_answer_share_counts_any_corpus_reply_to_the_prompt():
    corpus = TextPairs(
        ["Hello", "Hello", "How are you? \u241e Hello", "Bye"],
        ["Hi!", "Greetings.", "Fine.", "See you."],
    )
    prompts, answers = corpus_prompts(corpus, prompts=100)
    assert sorted(prompts) == ["Bye", "Hello", "How are you?"]
    assert answers[prompts.index("Hello")] == {"hi !", "greetings ."}
    known = {"Hello": "GREETINGS .", "How are you?": "fine.", "Bye": "Hi!"}
    assert answer_share(_replier(known.get), corpus) == (pytest.approx(2 / 3), 3)
    assert answer_share(_replier(lambda text: "whatever"), corpus) == (0.0, 3)


def _result(temperature, f1, distinct_2):
    return DecodingResult(DecodingOptions("sample", temperature=temperature), f1, 0.1, distinct_2, 5.0)


def test_the_decoding_rule_takes_the_best_f1_among_the_varied_ones():
    dull, varied, more_varied = (_result(0.1, 0.30, DISTINCT_FLOOR - 0.3), _result(0.5, 0.20, DISTINCT_FLOOR),
                                 _result(1.0, 0.10, 0.90))
    assert choose_decoding([dull, varied, more_varied]) is varied
    # None varied enough: the most varied.
    assert choose_decoding([dull, _result(0.2, 0.25, 0.2)]).distinct_2 == 0.2
    with pytest.raises(ValueError):
        choose_decoding([])


def test_unconditioned_copies_add_seeded_replies_after_an_empty_prompt():
    more = with_unconditioned(PAIRS, 0.1, seed=0)
    assert more.sources[:30] == PAIRS.sources and more.sources[30:] == ["", "", ""]
    assert set(more.targets[30:]) <= set(PAIRS.targets) and len(set(more.targets[30:])) == 3
    assert with_unconditioned(PAIRS, 0.1, seed=0) == more and with_unconditioned(PAIRS, 0.0, 0) == PAIRS
