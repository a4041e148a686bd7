"""One GRU sequence-to-sequence implementation shared by translation and chatbot.

- `layers`: the bidirectional encoder, additive/multiplicative attention and the
  attentional decoder (teacher forcing in training, one step at a time when
  decoding), with padding masks throughout.
- `model`: `Seq2Seq`, its losses, and `build_seq2seq` from the settings.
- `settings`: the `train`/`evaluate` settings both apps share, and
  `DecodingOptions`.
- `decoding`: greedy, beam search (length-normalized) and top-k / nucleus
  sampling, written in TensorFlow ops (`tf.while_loop`) so that they run
  inside an exported SavedModel.
- `pairs`: reading and checking parallel text (tab-separated or line-aligned
  files), held-out splits and `tf.data` pipelines of token ids.
- `serving`: a `tf.Module` that holds the model and both vocabularies and maps
  strings to strings; `seq2seq_serving` makes its export.
- `training`: vocabularies, fitting (with a time budget) and held-out
  perplexity that both apps share.
"""

from apps.common.seq2seq.decoding import beam_search_decode, greedy_decode, sample_decode
from apps.common.seq2seq.layers import Attention, Decoder, Encoder, copy_distribution
from apps.common.seq2seq.model import (
    Seq2Seq,
    build_seq2seq,
    masked_accuracy,
    masked_cross_entropy,
    set_copy_targets,
    set_output_prior,
    target_token_counts,
    token_log_likelihood,
)
from apps.common.seq2seq.pairs import (
    TextPairs,
    make_dataset,
    read_aligned_files,
    read_tab_separated,
    split_pairs,
)
from apps.common.seq2seq.serving import TextSeq2Seq, run_on_texts, seq2seq_serving
from apps.common.seq2seq.settings import DecodingOptions

__all__ = [
    "Attention",
    "DecodingOptions",
    "Decoder",
    "Encoder",
    "Seq2Seq",
    "TextPairs",
    "TextSeq2Seq",
    "beam_search_decode",
    "build_seq2seq",
    "copy_distribution",
    "greedy_decode",
    "make_dataset",
    "masked_accuracy",
    "masked_cross_entropy",
    "read_aligned_files",
    "read_tab_separated",
    "run_on_texts",
    "sample_decode",
    "seq2seq_serving",
    "set_copy_targets",
    "set_output_prior",
    "split_pairs",
    "target_token_counts",
    "token_log_likelihood",
]
