"""The chatbot export: an utterance (and optionally the turn before it) in, a reply out.

A version under `saved_models/chatbot/` has three signatures:

- `serving_default`: `text` (tf.string `[None]`) -> `reply` (tf.string `[None]`),
  decoded as chosen at training (by default the decoding that did best on
  the validation split, see `apps.chatbot.quality.choose_decoding`; the
  export's metadata says which).
- `converse`: `text`, `context` (tf.string `[None]`, "" for no previous
  turn), `decoding` (tf.string scalar: "greedy", "beam", "sample", or "" for
  the export's own), `temperature` (float32 scalar), `top_k` (int32 scalar,
  0 = off), `top_p` (float32 scalar) -> `reply`. The sampling arguments apply
  when the decoding samples.
- `score`: `text`, `context`, `reply` -> `nll` (float32 `[None]`, nats) and
  `tokens` (float32 `[None]`): the teacher-forced likelihood of a given
  reply, for perplexity.

A retrieval or hybrid export (`--mode`) answers from an index of replies as
well; `make_retrieval_signatures` says what its signatures add.

Everything, tokenization and decoding included, runs inside the graph.
"""

from __future__ import annotations

import tensorflow as tf

from apps.chatbot.data import CONTEXT_SEPARATOR
from apps.chatbot.retrieval import GENERATED, RETRIEVED, RetrievalServer
from apps.common.seq2seq.serving import TextSeq2Seq, run_on_texts

APP = "chatbot"
_STRINGS = tf.TensorSpec([None], tf.string)
# `converse`'s inputs, in every mode.
CONVERSE_INPUTS = [
    tf.TensorSpec([None], tf.string, name="text"),
    tf.TensorSpec([None], tf.string, name="context"),
    tf.TensorSpec([], tf.string, name="decoding"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
]


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

    @tf.function(input_signature=CONVERSE_INPUTS, autograph=False)
    def converse(text, context, decoding, temperature, top_k, top_p):
        target_ids, _ = server.generate(
            sources_with_context(text, context), strategy=decoding,
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


def make_retrieval_signatures(retrieval: RetrievalServer, server: TextSeq2Seq | None = None,
                              threshold: float | None = None) -> dict:
    """The signatures of a retrieval export (`server` None) or a hybrid one.

    `serving_default` and `converse` (the same inputs as above) also return
    `source` ("retrieved" or "generated", tf.string [None]) and `score` (the
    best candidate's, float32 [None]); a hybrid answers with the retrieved
    reply where `score >= threshold`. `rank`: `text`, `reply` (tf.string [N]
    each) -> `score` (float32 [N], higher fits better). A hybrid export keeps
    the generator's `score` signature.
    """

    def answer(sources, texts, generate):
        retrieved, score = retrieval.best(sources)
        if server is None:
            return {"reply": retrieved, "source": tf.fill(tf.shape(texts), RETRIEVED), "score": score}
        generated = server.reply_texts(texts, generate(sources))
        use = score >= threshold
        return {"reply": tf.where(use, retrieved, generated),
                "source": tf.where(use, RETRIEVED, GENERATED), "score": score}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def reply(text):
        return answer(text, text, lambda sources: server.generate(sources)[0])

    @tf.function(input_signature=CONVERSE_INPUTS, autograph=False)
    def converse(text, context, decoding, temperature, top_k, top_p):
        return answer(sources_with_context(text, context), text, lambda sources: server.generate(
            sources, strategy=decoding, temperature=temperature, top_k=top_k, top_p=top_p)[0])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None], tf.string, name="reply")], autograph=False)
    def rank(text, reply):
        return {"score": retrieval.rank(text, reply)}

    signatures = {"serving_default": reply, "converse": converse, "rank": rank}
    if server is not None:
        signatures["score"] = make_signatures(server)["score"]
    return signatures


def generate_replies(reply_function, texts: list[str], batch_size: int = 64) -> list[str]:
    """Runs a `text -> reply` function (serving_default) over `texts` in batches."""
    return run_on_texts(reply_function, texts, "reply", batch_size)


def replies_with_sources(reply_function, texts: list[str], batch_size: int = 64) -> tuple[list[str], list[str]]:
    """serving_default's reply to each of `texts`, and where each came from ("retrieved" or
    "generated"; a generative export's replies are all generated)."""
    replies: list[str] = []
    sources: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = reply_function(text=tf.constant(texts[start:start + batch_size]))
        replies += [value.decode("utf-8") for value in batch["reply"].numpy()]
        sources += ([value.decode("utf-8") for value in batch["source"].numpy()] if "source" in batch
                    else [GENERATED] * int(batch["reply"].shape[0]))
    return replies, sources
