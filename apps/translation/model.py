"""The translation export: strings in, strings out, with attention for `explain`.

A version under `saved_models/translation/` has two signatures:

- `serving_default`: `text` (tf.string `[None]`) -> `translation` (tf.string `[None]`).
- `attention`: `text` -> `source_tokens` (`[None, S]`), `target_tokens`
  (`[None, T]`) and `weights` (float32 `[None, T, S]`: row t is the attention
  of output token t over the source tokens; "" pads the token lists).

Both tokenize, translate (decoding in a `tf.while_loop`) and detokenize
inside the graph, so `tf.saved_model.load` plus `import tensorflow_text` is
all a client needs. Output text is case-folded with punctuation re-attached.
"""

from __future__ import annotations

import sacrebleu
import tensorflow as tf

from apps.common.seq2seq.serving import TextSeq2Seq, run_on_texts
from apps.common.text import standardize

APP = "translation"
TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


def make_signatures(server: TextSeq2Seq) -> dict:
    """The `tf.function`s of the export, keyed by signature name.

    The decoders write their loops with `tf.while_loop` themselves, so
    AutoGraph (which re-reads the Python source when tracing) stays off.
    """

    @tf.function(input_signature=[TEXT_SPEC], autograph=False)
    def translate(text):
        target_ids, _ = server.generate(text)
        return {"translation": server.reply_texts(text, target_ids)}

    @tf.function(input_signature=[TEXT_SPEC], autograph=False)
    def attention(text):
        target_ids, weights = server.generate(text)
        return {
            "source_tokens": server.source_tokens(text),
            "target_tokens": server.target_tokens(target_ids),
            "weights": weights,
        }

    return {"serving_default": translate, "attention": attention}


def translate_batches(translate, texts: list[str], batch_size: int = 64) -> list[str]:
    """Runs a `text -> translation` function over `texts` in batches."""
    return run_on_texts(translate, texts, "translation", batch_size)


def normalized(texts: list[str]) -> list[str]:
    """Texts as the model sees them (case-folded, punctuation split off), for scoring."""
    if not texts:
        return []
    standardized = standardize(tf.constant(texts)).numpy()
    return [" ".join(text.decode("utf-8").split()) for text in standardized]


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu) of hypotheses against one reference each.

    Both sides are normalized first, so the scores are case-insensitive.
    """
    hypotheses, references = normalized(hypotheses), normalized(references)
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }
