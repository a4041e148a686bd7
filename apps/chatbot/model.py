"""The chatbot export: an utterance (and optionally the turn before it) in, a reply out.

A version under `saved_models/chatbot/` has three signatures:

- `serving_default`: `text` (tf.string `[None]`) -> `reply` (tf.string `[None]`),
  decoded as chosen at training (top-p sampling at temperature 0.8 by default).
- `converse`: `text`, `context` (tf.string `[None]`, "" for no previous
  turn), `temperature` (float32 scalar), `top_k` (int32 scalar, 0 = off),
  `top_p` (float32 scalar) -> `reply`. The sampling arguments apply when the
  export samples; greedy and beam-search exports ignore them.
- `score`: `text`, `context`, `reply` -> `nll` (float32 `[None]`, nats) and
  `tokens` (float32 `[None]`): the teacher-forced likelihood of a given
  reply, for perplexity.

Everything, tokenization and decoding included, runs inside the graph.
"""

from __future__ import annotations

import tensorflow as tf

from apps.chatbot.data import CONTEXT_SEPARATOR
from apps.common.seq2seq.serving import TextSeq2Seq, run_on_texts
from apps.common.text import tokenize

APP = "chatbot"
_STRINGS = tf.TensorSpec([None], tf.string)


def sources_with_context(text: tf.Tensor, context: tf.Tensor) -> tf.Tensor:
    """The in-graph `apps.chatbot.data.with_context`: "text ␞ context", or text alone."""
    joined = tf.strings.join([text, context], separator=f" {CONTEXT_SEPARATOR} ")
    return tf.where(tf.strings.length(tf.strings.strip(context)) > 0, joined, text)


def make_signatures(server: TextSeq2Seq) -> dict:
    """The `tf.function`s of the export, keyed by signature name.

    The decoders write their loops with `tf.while_loop` themselves, so
    AutoGraph (which re-reads the Python source when tracing) stays off.
    """

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False
    )
    def reply(text):
        target_ids, _ = server.generate(text)
        return {"reply": server.reply_texts(text, target_ids)}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="text"),
        tf.TensorSpec([None], tf.string, name="context"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"),
    ], autograph=False)
    def converse(text, context, temperature, top_k, top_p):
        target_ids, _ = server.generate(
            sources_with_context(text, context),
            temperature=temperature, top_k=top_k, top_p=top_p,
        )
        return {"reply": server.reply_texts(text, target_ids)}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="text"),
        tf.TensorSpec([None], tf.string, name="context"),
        tf.TensorSpec([None], tf.string, name="reply"),
    ], autograph=False)
    def score(text, context, reply):
        nll, tokens = server.target_log_likelihood(sources_with_context(text, context), reply)
        return {"nll": nll, "tokens": tokens}

    return {"serving_default": reply, "converse": converse, "score": score}


def generate_replies(reply_function, texts: list[str], batch_size: int = 64) -> list[str]:
    """Runs a `text -> reply` function (serving_default) over `texts` in batches."""
    return run_on_texts(reply_function, texts, "reply", batch_size)


def perplexity(score_function, sources: list[str], replies: list[str], batch_size: int = 64) -> float:
    """Per-token perplexity of `replies` given `sources` (with any context already joined in)."""
    total_nll, total_tokens = 0.0, 0.0
    for start in range(0, len(sources), batch_size):
        batch = slice(start, start + batch_size)
        texts = tf.constant(sources[batch])
        result = score_function(
            text=texts, context=tf.fill(tf.shape(texts), ""), reply=tf.constant(replies[batch])
        )
        total_nll += float(tf.reduce_sum(result["nll"]))
        total_tokens += float(tf.reduce_sum(result["tokens"]))
    return float(tf.exp(total_nll / max(total_tokens, 1.0)))


def distinct_n(replies: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the tokens of `replies` (0 if none).

    Tokens are the model's own (`apps.common.text.tokenize`), so generated
    and human replies are counted alike.
    """
    if not replies:
        return 0.0
    token_rows = [[t.decode("utf-8") for t in row] for row in tokenize(tf.constant(replies)).to_list()]
    ngrams = [
        tuple(tokens[i : i + n]) for tokens in token_rows for i in range(len(tokens) - n + 1)
    ]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0
