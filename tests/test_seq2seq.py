"""The shared seq2seq machinery: masking, step-wise decoding, decoders, pair files."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps.common.errors import InputError
from apps.common.seq2seq import (
    Attention,
    beam_search_decode,
    build_seq2seq,
    greedy_decode,
    read_aligned_files,
    read_tab_separated,
    sample_decode,
    split_pairs,
)
from apps.common.seq2seq.decoding import END_ID, block_repeated_ngrams
from apps.common.seq2seq.settings import Seq2SeqTrain

SOURCE = tf.constant([[2, 5, 6, 7, 3, 0, 0], [2, 9, 3, 0, 0, 0, 0], [2, 4, 4, 4, 4, 4, 3]], tf.int64)


def settings(**values) -> Seq2SeqTrain:
    """`build_seq2seq`'s settings for a small model: the app defaults, at Adam's own rate unless given."""
    return Seq2SeqTrain(**{"learning_rate": 1e-3, **values})


def _model(cell="gru", attention="luong", seed=1, copy=False, learning_rate=1e-3):
    tf.keras.utils.set_random_seed(seed)
    model = build_seq2seq(30, 25, settings(embedding_dim=8, units=12, cell=cell, attention=attention,
                                           dropout=0.0, learning_rate=learning_rate, copy=copy))
    if copy:
        # Source id i in [6, 27) copies as target id i - 2; the others copy nothing.
        ids = np.arange(30)
        model.decoder.copy_targets.assign(np.where((ids >= 6) & (ids < 27), ids - 2, 0))
    return model


@pytest.mark.parametrize("kind", ["luong", "bahdanau"])
def test_padding_never_receives_attention(kind):
    attention = Attention(6, kind)
    keys = tf.random.normal([3, 7, 10]) * 50.0
    query = tf.random.normal([3, 4, 6]) * 50.0
    mask = tf.constant(
        [[True] * 5 + [False] * 2, [True] * 2 + [False] * 5, [True] * 7]
    )
    context, weights = attention(query, keys, mask)
    weights = weights.numpy()
    assert weights.shape == (3, 4, 7)
    assert np.all(weights[~np.broadcast_to(mask.numpy()[:, None, :], weights.shape)] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    expected = np.einsum("bqk,bkd->bqd", weights, keys.numpy())
    np.testing.assert_allclose(context.numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("cell,attention,copy", [
    ("gru", "luong", False), ("lstm", "bahdanau", False), ("rnn", "luong", False), ("gru", "bahdanau", True),
])
def test_step_decoder_matches_teacher_forcing(cell, attention, copy):
    model = _model(cell, attention, copy=copy)
    target = tf.constant([[2, 5, 6, 7, 8], [2, 4, 4, 0, 0], [2, 9, 9, 9, 9]], tf.int64)
    teacher_forced = model((SOURCE, target)).numpy()
    encoder_outputs, states = model.encoder(SOURCE)
    mask = SOURCE != 0
    for step in range(3):
        logits, states, weights = model.decoder.step(target[:, step], encoder_outputs, SOURCE, states)
        np.testing.assert_allclose(logits.numpy(), teacher_forced[:, step], atol=1e-4)
        assert np.all(weights.numpy()[~mask.numpy()] == 0.0)


def _until_end(ids):
    rows = []
    for row in ids.numpy().tolist():
        rows.append(row[: row.index(END_ID) + 1] if END_ID in row else row)
    return rows


@pytest.mark.parametrize("cell,copy", [("gru", False), ("lstm", False), ("gru", True)])
def test_beam_search_of_width_one_is_greedy(cell, copy):
    model = _model(cell, seed=3, copy=copy)
    greedy_ids, greedy_weights = tf.function(lambda s: greedy_decode(model, s, 9))(SOURCE)
    beam_ids, beam_weights = tf.function(
        lambda s: beam_search_decode(model, s, 9, beam_width=1)
    )(SOURCE)
    assert _until_end(greedy_ids) == _until_end(beam_ids)
    steps = min(greedy_ids.shape[1], beam_ids.shape[1])
    np.testing.assert_allclose(greedy_weights[:, :steps], beam_weights[:, :steps], atol=1e-6)


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy():
    model = _model(seed=4)

    def log_likelihood(ids):
        ids = tf.constant(_pad(_until_end(ids)), tf.int64)
        inputs = tf.concat([tf.fill([ids.shape[0], 1], tf.constant(2, tf.int64)), ids[:, :-1]], 1)
        log_probs = tf.nn.log_softmax(model((SOURCE, inputs)))
        picked = tf.gather(log_probs, ids, batch_dims=2)
        return tf.reduce_sum(tf.where(ids != 0, picked, 0.0), axis=1).numpy()

    greedy_ids, _ = greedy_decode(model, SOURCE, 6)
    beam_ids, _ = beam_search_decode(model, SOURCE, 6, beam_width=5, length_penalty=0.0)
    assert np.all(log_likelihood(beam_ids) >= log_likelihood(greedy_ids) - 1e-4)


def _pad(rows):
    width = max(len(row) for row in rows)
    return [row + [0] * (width - len(row)) for row in rows]


def test_sampling_with_top_k_one_or_tiny_top_p_is_greedy():
    model = _model(seed=5)
    greedy_ids, _ = greedy_decode(model, SOURCE, 8)
    top_k_ids, _ = sample_decode(model, SOURCE, 8, temperature=1.5, top_k=1, top_p=1.0, seed=1)
    top_p_ids, _ = sample_decode(model, SOURCE, 8, temperature=1.0, top_k=0, top_p=1e-6, seed=1)
    # Greedy may pick [UNK]; sampling never does, so compare where greedy did not.
    greedy = _until_end(greedy_ids)
    if not any(1 in row for row in greedy):
        assert _until_end(top_k_ids) == greedy
        assert _until_end(top_p_ids) == greedy
    assert top_k_ids.shape[1] <= 8


def test_decoders_stop_at_max_length():
    model = _model(seed=6)
    for ids, weights in (
        greedy_decode(model, SOURCE, 4),
        beam_search_decode(model, SOURCE, 4, beam_width=3),
        sample_decode(model, SOURCE, 4, seed=2),
    ):
        assert ids.shape[0] == 3 and ids.shape[1] <= 4
        assert weights.shape[:2] == ids.shape and weights.shape[2] == SOURCE.shape[1]


def test_repeated_ngram_blocking_on_hand_made_histories():
    logits = tf.zeros([2, 8])
    history = tf.constant([[5, 6, 5], [4, 4, 7]], tf.int64)

    def banned(n):
        return [np.flatnonzero(row < -1e8).tolist() for row in block_repeated_ngrams(logits, history, n).numpy()]

    assert banned(0) == [[], []]
    assert banned(1) == [[5, 6], [4, 7]]
    # Row 0 ends in 5, and "5 6" occurred: 6 is banned. Row 1 ends in 7, never followed.
    assert banned(2) == [[6], []]
    # Row 0 ends in "6 5", never followed; row 1's "4 7" likewise.
    assert banned(3) == [[], []]
    assert banned(4) == [[], []]  # longer than the history: nothing to repeat yet
    assert np.all(block_repeated_ngrams(logits, tf.zeros([2, 0], tf.int64), 2).numpy() == 0.0)


def _ngrams(row, n):
    return [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]


@pytest.mark.parametrize("decode", [
    lambda model, n: greedy_decode(model, SOURCE, 12, no_repeat_ngram=n),
    lambda model, n: beam_search_decode(model, SOURCE, 12, beam_width=3, no_repeat_ngram=n),
    lambda model, n: sample_decode(model, SOURCE, 12, top_k=1, seed=4, no_repeat_ngram=n),
], ids=["greedy", "beam", "sample"])
def test_decoders_never_repeat_a_blocked_ngram(decode):
    # An untrained model loops (greedy says one token again and again), so
    # without blocking the outputs repeat bigrams; with it they never do.
    model = _model(seed=7)
    looping = [row[: row.index(END_ID)] if END_ID in row else row
               for row in decode(model, 0)[0].numpy().tolist()]
    assert any(len(set(_ngrams(row, 2))) < len(_ngrams(row, 2)) for row in looping)
    for row in decode(model, 2)[0].numpy().tolist():
        row = row[: row.index(END_ID)] if END_ID in row else row
        assert len(set(_ngrams(row, 2))) == len(_ngrams(row, 2)), row


def test_tab_separated_pairs_and_their_errors(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hi.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org\nRun!\t¡Corre!\n\n")
    pairs = read_tab_separated(path)
    assert pairs.sources == ["Hi.", "Run!"] and pairs.targets == ["Hola.", "¡Corre!"]
    path.write_text("Hi.\tHola.\nno tab here\n")
    with pytest.raises(InputError, match=r"pairs.tsv, line 2: .*no tab"):
        read_tab_separated(path)
    path.write_text("Hi.\tHola.\n\t¡Corre!\n")
    with pytest.raises(InputError, match=r"line 2: the source \(column 1\) is empty"):
        read_tab_separated(path)


def test_line_aligned_files_and_their_errors(tmp_path):
    source, target = tmp_path / "train.de", tmp_path / "train.en"
    source.write_text("Ein Hund.\nZwei Katzen.\n")
    target.write_text("A dog.\nTwo cats.\n")
    pairs = read_aligned_files(source, target)
    assert pairs.targets == ["A dog.", "Two cats."]
    target.write_text("A dog.\nTwo cats.\nThree birds.\n")
    with pytest.raises(InputError, match=r"train.de has 2 lines but .*train.en has 3"):
        read_aligned_files(source, target)
    target.write_text("A dog.\n\n")
    source.write_text("Ein Hund.\n \nx\n")
    target.write_text("A dog.\nb\nc\n")
    with pytest.raises(InputError, match=r"train.de, line 2: empty line"):
        read_aligned_files(source, target)
    with pytest.raises(InputError, match="no such file"):
        read_aligned_files(tmp_path / "missing.de", target)


def test_split_is_seeded_and_disjoint():
    from apps.common.seq2seq import TextPairs

    pairs = TextPairs([f"s{i}" for i in range(50)], [f"t{i}" for i in range(50)])
    train, held = split_pairs(pairs, 0.1, seed=0)
    again, _ = split_pairs(pairs, 0.1, seed=0)
    assert len(held) == 5 and len(train) == 45 and train.sources == again.sources
    assert not set(train.sources) & set(held.sources)
    assert all(s[1:] == t[1:] for s, t in zip(held.sources, held.targets))


def _skewed_pairs():
    from apps.common.seq2seq import TextPairs

    # A skewed target side, like real text: "a" is most of the tokens.
    targets = ["a a a b", "a a c", "a b", "a a a a d", "a e"]
    sources = ["x y", "y z", "z", "x x", "w"]
    return TextPairs(sources, targets)


def test_target_token_counts_count_outputs_with_end_and_without_padding():
    from apps.common.seq2seq import make_dataset
    from apps.common.seq2seq.model import target_token_counts
    from apps.common.text import END, START, TokenIds, build_vocabulary

    pairs = _skewed_pairs()
    source_vocabulary = TokenIds(build_vocabulary(pairs.sources))
    target_vocabulary = TokenIds(build_vocabulary(pairs.targets))
    data = make_dataset(pairs, source_vocabulary, target_vocabulary,
                        max_source_length=8, max_target_length=8, batch_size=2)
    counts = target_token_counts(data, target_vocabulary.size)
    words = target_vocabulary.vocabulary
    assert counts[0] == 0 and counts[words.index(START)] == 0
    assert counts[words.index(END)] == len(pairs)
    assert counts[words.index("a")] == 11 and counts[words.index("e")] == 1
    assert counts.sum() == sum(len(t.split()) + 1 for t in pairs.targets)


def test_output_prior_starts_the_model_at_the_unigram_distribution():
    # Regression: with a zero output bias, a skewed real-corpus vocabulary made
    # the decoder saturate its units to fit the unigram and training stalled
    # at the unigram loss. The model must start there instead.
    from apps.common.seq2seq import make_dataset, masked_cross_entropy
    from apps.common.seq2seq.model import set_output_prior, target_token_counts
    from apps.common.text import TokenIds, build_vocabulary

    pairs = _skewed_pairs()
    source_vocabulary = TokenIds(build_vocabulary(pairs.sources))
    target_vocabulary = TokenIds(build_vocabulary(pairs.targets))
    data = make_dataset(pairs, source_vocabulary, target_vocabulary,
                        max_source_length=8, max_target_length=8, batch_size=8)
    tf.keras.utils.set_random_seed(0)
    model = build_seq2seq(source_vocabulary.size, target_vocabulary.size,
                          settings(embedding_dim=8, units=12, dropout=0.0))
    counts = target_token_counts(data, target_vocabulary.size)
    bias = set_output_prior(model, counts)
    assert np.argmin(bias) == 0 and np.argmax(bias) == int(np.argmax(counts))
    smoothed = counts + 1.0
    smoothed[0] = 1.0
    prior = smoothed / smoothed.sum()
    (inputs, targets), = list(data)
    probabilities = tf.nn.softmax(model(inputs)).numpy()[targets.numpy() != 0]
    np.testing.assert_allclose(probabilities.mean(0), prior, atol=0.02)
    unigram_loss = -np.sum(counts * np.log(prior)) / counts.sum()
    loss = float(masked_cross_entropy(targets, model(inputs)))
    assert abs(loss - unigram_loss) < 0.05
    assert loss < np.log(target_vocabulary.size) - 0.3
    with pytest.raises(ValueError):
        set_output_prior(model, counts[:-1])


def _reply_log_likelihoods(logits, target_ids) -> np.ndarray:
    log_probabilities = tf.nn.log_softmax(logits).numpy()
    ids = target_ids.numpy()
    picked = np.take_along_axis(log_probabilities, ids[..., None], -1)[..., 0]
    return (picked * (ids != 0)).sum(-1)


def test_contrastive_term_ranks_each_reply_after_its_own_source_above_the_next_rows():
    from apps.common.seq2seq import Seq2Seq, masked_cross_entropy

    tf.keras.utils.set_random_seed(1)
    model = build_seq2seq(30, 25, settings(embedding_dim=8, units=12, dropout=0.0, contrastive_weight=0.5))
    target_inputs = tf.constant([[2, 5, 6, 7], [2, 4, 4, 0], [2, 9, 9, 9]], tf.int64)
    targets = tf.constant([[5, 6, 7, 3], [4, 4, 3, 0], [9, 9, 9, 3]], tf.int64)
    logits = model((SOURCE, target_inputs))
    mismatched = model((tf.roll(SOURCE, 1, axis=0), target_inputs))
    margin = _reply_log_likelihoods(logits, targets) - _reply_log_likelihoods(mismatched, targets)
    plain = float(masked_cross_entropy(targets, logits))
    expected = plain + 0.5 * np.mean(np.log1p(np.exp(-margin)))
    loss = model.compute_loss((SOURCE, target_inputs), targets, logits, training=True)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Validation loss is the plain cross-entropy, comparable with a model trained without the term.
    np.testing.assert_allclose(
        float(model.compute_loss((SOURCE, target_inputs), targets, logits, training=False)), plain, rtol=1e-6)
    # A row whose source equals the next row's is no negative: all-equal sources add nothing.
    same = tf.repeat(SOURCE[:1], 3, axis=0)
    same_logits = model((same, target_inputs))
    np.testing.assert_allclose(
        float(model.compute_loss((same, target_inputs), targets, same_logits, training=True)),
        float(masked_cross_entropy(targets, same_logits)), rtol=1e-6)
    history = model.fit(tf.data.Dataset.from_tensors(((SOURCE, target_inputs), targets)).repeat(3),
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert Seq2Seq.from_config(model.get_config()).contrastive_weight == 0.5
    with pytest.raises(ValueError, match="contrastive_weight"):
        Seq2Seq(30, 25, contrastive_weight=-1.0)


def test_copy_distribution_lays_attention_onto_target_ids():
    from apps.common.seq2seq import copy_distribution

    weights = tf.constant([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]],
                           [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]]])
    # Row 0: positions 1 and 3 both copy as id 4, position 0 copies nothing.
    # Row 1: nothing copies.
    copy_ids = tf.constant([[0, 4, 2, 4], [0, 0, 0, 0]])
    copied = copy_distribution(weights, copy_ids, 6).numpy()
    expected_first = np.zeros(6)
    expected_first[4], expected_first[2] = 0.6 / 0.9, 0.3 / 0.9
    np.testing.assert_allclose(copied[0, 0], expected_first, rtol=1e-6)
    expected_second = np.zeros(6)
    expected_second[4] = 1.0
    np.testing.assert_allclose(copied[0, 1], expected_second, rtol=1e-6)
    assert np.all(copied[1] == 0.0)


def test_set_copy_targets_maps_shared_words_and_never_reserved_ones():
    from apps.common.seq2seq import Seq2Seq, set_copy_targets
    from apps.common.text import RESERVED_TOKENS

    model = build_seq2seq(7, 6, settings(embedding_dim=4, units=4, dropout=0.0, copy=True))
    table = set_copy_targets(model, [*RESERVED_TOKENS, "paris", "hello", "zebra"],
                             [*RESERVED_TOKENS, "hello", "paris"])
    assert table.tolist() == [0, 0, 0, 0, 5, 4, 0]
    assert model.decoder.copy_targets.numpy().tolist() == table.tolist()
    assert Seq2Seq.from_config(model.get_config()).copy is True
    with pytest.raises(ValueError, match="source words"):
        set_copy_targets(model, list(RESERVED_TOKENS), list(RESERVED_TOKENS))
    with pytest.raises(ValueError, match="does not copy"):
        set_copy_targets(_model(), [*RESERVED_TOKENS] * 8, list(RESERVED_TOKENS))


def test_a_copying_decoder_gives_probabilities_and_copies_when_its_gate_is_open():
    model = _model(copy=True)
    target = tf.constant([[2, 5, 6], [2, 4, 4], [2, 9, 9]], tf.int64)
    log_probabilities = model((SOURCE, target)).numpy()
    # Its logits are log-probabilities: they already sum to 1.
    np.testing.assert_allclose(np.exp(log_probabilities).sum(-1), 1.0, rtol=1e-5)
    model.decoder.copy_gate.bias.assign([50.0])
    copied = np.exp(model((SOURCE, target)).numpy())
    # Row 0's source copies ids 6 - 2 and 7 - 2; row 1's (ids 2, 9, 3) only 9 - 2.
    assert copied[0][:, [4, 5]].sum(-1) == pytest.approx([1.0] * 3, abs=1e-4)
    assert copied[1][:, 7] == pytest.approx([1.0] * 3, abs=1e-4)
    # Row 2's source (ids 2, 4, 3) copies nothing: the output softmax alone speaks.
    np.testing.assert_allclose(copied[2].sum(-1), 1.0, rtol=1e-5)
    assert copied[2].max() < 0.9


def test_copying_learns_to_repeat_a_source_word_it_has_seen_once():
    # A reply that repeats a word of its prompt: copying makes that word likely
    # after that prompt whatever the word, which ranking replies by prompt needs.
    rng = np.random.default_rng(0)

    def pairs(count):
        words = rng.integers(6, 27, size=(count, 3))
        sources = np.concatenate([np.full((count, 1), 2), words, np.full((count, 1), 3)], axis=1)
        # Reply: "4 <the prompt's second word>" then [END].
        targets = np.stack([np.full(count, 4), words[:, 1] - 2, np.full(count, 3)], axis=1)
        return (sources, np.concatenate([np.full((count, 1), 2), targets[:, :-1]], axis=1)), targets

    train, (held_out, held_out_targets) = pairs(256), pairs(64)
    data = tf.data.Dataset.from_tensor_slices(train).batch(32)
    repeated_word_loss = {}
    for copy in (False, True):
        model = _model(copy=copy, seed=0, learning_rate=1e-2)
        model.fit(data, epochs=10, verbose=0)
        log_probabilities = tf.nn.log_softmax(model(held_out)).numpy()[:, 1]
        repeated_word_loss[copy] = -np.mean(
            np.take_along_axis(log_probabilities, held_out_targets[:, 1:2], -1))
    assert repeated_word_loss[True] < 0.1 * repeated_word_loss[False]
