"""The synthetic `sample` data set: movie-review sentences where word order matters.

The sentences are generated from templates, deterministically for a given
seed, so `gru-suite train sentiment` works offline. They are SYNTHETIC: short,
clean and built so that a bag of words cannot label them; the label depends on

- negation and its scope: "the plot is not bad at all" (positive),
  "not good, and not even funny" (negative),
- intensifiers: "the acting is really dull" (negative),
- contrast, where the clause after "but" / the main clause after "although"
  decides: "slow at first but worth it" (positive),
- comparatives that contain "not" without negating: "the cast could not have
  been more charming" (positive).

Every adjective and every function word appears in both classes.
"""

from __future__ import annotations

import random

POSITIVE_WORDS = (
    "good", "great", "funny", "moving", "clever", "charming", "gripping",
    "beautiful", "smart", "touching", "delightful", "fresh",
)
NEGATIVE_WORDS = (
    "bad", "boring", "dull", "awful", "clumsy", "predictable", "tedious",
    "messy", "bland", "forgettable", "silly", "flat",
)
SUBJECTS = (
    "the film", "the movie", "the plot", "the acting", "the script",
    "the ending", "the cast", "the soundtrack", "the direction", "this sequel",
    "the dialogue", "the story", "the pacing", "the lead performance",
)
INTENSIFIERS = ("very", "really", "truly", "incredibly", "remarkably", "so", "quite")
VERDICTS = {
    1: ("worth it", "worth watching", "a real treat", "well worth the ticket"),
    -1: ("a waste of time", "a letdown", "not worth the ticket", "hard to sit through"),
}
OPENINGS = {
    1: ("great", "gripping", "charming", "funny"),
    -1: ("slow", "dull", "clumsy", "boring"),
}


def _adjective(rng: random.Random, polarity: int) -> str:
    return rng.choice(POSITIVE_WORDS if polarity > 0 else NEGATIVE_WORDS)


def _maybe_intensified(rng: random.Random, adjective: str) -> str:
    return f"{rng.choice(INTENSIFIERS)} {adjective}" if rng.random() < 0.4 else adjective


def _clause(rng: random.Random, polarity: int) -> str:
    """A clause whose sentiment is `polarity` (+1 positive, -1 negative)."""
    subject = rng.choice(SUBJECTS)
    verb = rng.choice(("is", "was"))
    kind = rng.randrange(6)
    if kind == 0:  # Plain, perhaps intensified.
        return f"{subject} {verb} {_maybe_intensified(rng, _adjective(rng, polarity))}"
    if kind == 1:  # Negated: the adjective has the opposite polarity.
        adjective = _maybe_intensified(rng, _adjective(rng, -polarity))
        negation = rng.choice(("not", "never", "hardly"))
        return f"{subject} {verb} {negation} {adjective}"
    if kind == 2:  # "not ... at all": negation of the opposite adjective.
        return f"{subject} {verb} not {_adjective(rng, -polarity)} at all"
    if kind == 3:  # Two negated adjectives of the opposite polarity.
        first, second = rng.sample(POSITIVE_WORDS if polarity < 0 else NEGATIVE_WORDS, 2)
        return f"{subject} {verb} not {first} , and not even {second}"
    if kind == 4:  # "could not have been more X": "not" without negation.
        return f"{subject} could not have been more {_adjective(rng, polarity)}"
    first, second = rng.sample(POSITIVE_WORDS if polarity > 0 else NEGATIVE_WORDS, 2)
    return f"{subject} {verb} {first} and {second}"


def _sentence(rng: random.Random, polarity: int) -> str:
    kind = rng.randrange(5)
    if kind <= 1:
        sentence = _clause(rng, polarity)
    elif kind == 2:  # The clause after "but" decides.
        sentence = f"{_clause(rng, -polarity)} , but {_clause(rng, polarity)}"
    elif kind == 3:  # The main clause after "although ..." decides.
        sentence = f"although {_clause(rng, -polarity)} , {_clause(rng, polarity)}"
    else:  # "slow at first but worth it".
        opening = rng.choice(OPENINGS[-polarity])
        sentence = f"{opening} at first but {rng.choice(VERDICTS[polarity])}"
    return sentence + rng.choice((" .", " .", " !", ""))


def generate_sample(size: int = 4000, seed: int = 0) -> tuple[list[str], list[int]]:
    """`size` distinct synthetic review sentences and their labels (half positive).

    Deterministic for a given `size` and `seed`. Labels are 1 (positive) and
    0 (negative), alternating.
    """
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}.")
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < size:
        attempts += 1
        if attempts > 50 * size:
            raise ValueError(f"Cannot generate {size} distinct sentences.")
        label = 1 - len(texts) % 2
        sentence = _sentence(rng, 1 if label else -1)
        if sentence not in seen:
            seen.add(sentence)
            texts.append(sentence)
            labels.append(label)
    return texts, labels
