"""`--mixed-precision` and `--jit-compile`: 16-bit training behind float32 exports, and
batches padded to a few fixed lengths where XLA compiles the training step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.common.app import Export, Fitting
from apps.common.buckets import length_boundaries, pad_to_boundary
from apps.common.monitoring import first_gru
from apps.common.running import registered_app, settings_from
from apps.common.seq2seq import make_dataset
from apps.common.seq2seq.pairs import TextPairs
from apps.common.settings import TrainConfig
from apps.common.text import TokenIds, build_vocabulary
from apps.registry import load_app_packages
from apps.sentiment.model import Preprocessor, training_dataset
from apps.transcriber.labels import DIGIT_LABELS
from apps.transcriber.data import TranscribedSplit
from apps.transcriber.training import utterance_dataset


@pytest.mark.parametrize("app_name, policy, compute_dtype", [
    ("speech", "mixed_bfloat16", "bfloat16"),  # features stay float32 before the 16-bit layers
    ("translation", "mixed_float16", "float16"),  # attention, copy gate and loss scaling
])
def test_mixed_precision_trains_in_16_bits_behind_a_float32_export(app_name, policy, compute_dtype, tmp_path):
    load_app_packages()
    app = registered_app(app_name)
    config = settings_from(app.Train, [*app.smoke_args, "--mixed-precision", policy, "--verbose", "0",
                                       "--no-log", "--no-export"])
    trained = app.train(config, app.load_data(config), Fitting(config))
    assert keras.config.dtype_policy().name == "float32"  # the policy is the training's only
    gru = first_gru(trained.model)
    assert gru.compute_dtype == compute_dtype and gru.variable_dtype == "float32"
    assert all(np.isfinite(weights).all() for weights in trained.model.get_weights())
    export = Export.of(trained, app.name)
    floats = {
        (name, spec.name, spec.dtype)
        for name, signature in export.signatures.items()
        for spec in [*signature.structured_input_signature[1].values(), *signature.structured_outputs.values()]
        if spec.dtype.is_floating
    }
    assert floats and all(dtype == tf.float32 for _, _, dtype in floats), floats
    outputs = export.signature()(**{name: tf.constant([value]) for name, value in app.serving_example(export).items()})
    for value in outputs.values():
        assert value.dtype != tf.float32 or np.isfinite(value.numpy()).all()


def test_jit_compile_sets_the_models_step_and_says_whether_xla_compiles_it():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert Fitting(TrainConfig(jit_compile="on")).compiles_with_xla(model) and model.jit_compile is True
    assert not Fitting(TrainConfig(jit_compile="off")).compiles_with_xla(model) and model.jit_compile is False
    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fresh.compile(optimizer="sgd", loss="mse")
    assert Fitting(TrainConfig()).compiles_with_xla(fresh) == bool(fresh.jit_compile)


def test_length_boundaries_double_up_to_the_longest():
    assert length_boundaries(30) == [8, 16, 30]
    assert length_boundaries(64) == [8, 16, 32, 64]
    assert length_boundaries(5) == [5]
    padded = pad_to_boundary(tf.ones([2, 11, 3]), 1, [8, 16, 30])
    assert padded.shape == (2, 16, 3) and float(tf.reduce_sum(padded)) == 2 * 11 * 3
    assert pad_to_boundary(tf.ones([1, 40]), 1, [8, 16, 30]).shape == (1, 40)


def _lengths(batches, pick) -> set[int]:
    return {int(pick(batch).shape[1]) for batch in batches}


def test_sentiment_batches_take_their_buckets_lengths_under_xla():
    texts = [" ".join(["word"] * (1 + index % 40)) for index in range(300)]
    preprocessor = Preprocessor(TokenIds(build_vocabulary(texts)), 32, subword_buckets=16)
    labels = np.zeros(len(texts))
    natural = list(training_dataset(preprocessor, texts, labels, batch_size=16))
    fixed = list(training_dataset(preprocessor, texts, labels, batch_size=16, fixed_lengths=True))
    boundaries = {8, 16, 24, 32}
    assert not _lengths(natural, lambda batch: batch[0]["token_ids"]) <= boundaries
    assert _lengths(fixed, lambda batch: batch[0]["token_ids"]) <= boundaries
    assert _lengths(fixed, lambda batch: batch[0]["subword_ids"]) <= boundaries
    # Padding adds only zeros: the same tokens in the same batches.
    token_count = sum(int(tf.math.count_nonzero(inputs["token_ids"])) for inputs, _ in natural)
    assert token_count == sum(int(tf.math.count_nonzero(inputs["token_ids"])) for inputs, _ in fixed)


def test_seq2seq_batches_take_a_few_lengths_under_xla():
    sources = [" ".join(f"w{i % 7}" for i in range(1 + n % 25)) for n in range(200)]
    targets = [" ".join(f"t{i % 5}" for i in range(1 + (n * 7) % 19)) for n in range(200)]
    pairs = TextPairs(sources, targets)
    vocabularies = TokenIds(build_vocabulary(sources)), TokenIds(build_vocabulary(targets))

    def batches(fixed: bool):
        return list(make_dataset(pairs, *vocabularies, max_source_length=30, max_target_length=20,
                                 batch_size=8, fixed_lengths=fixed))

    natural, fixed = batches(False), batches(True)
    assert len(_lengths(natural, lambda batch: batch[0][0])) > 3
    assert _lengths(fixed, lambda batch: batch[0][0]) <= {8, 16, 30}
    assert _lengths(fixed, lambda batch: batch[0][1]) <= {8, 16, 20}
    for (inputs, outputs), (fixed_inputs, fixed_outputs) in zip(natural, fixed):
        assert fixed_inputs[1].shape == fixed_outputs.shape
        np.testing.assert_array_equal(fixed_outputs[:, : outputs.shape[1]], outputs)
        assert not fixed_outputs[:, outputs.shape[1]:].numpy().any()


def test_transcriber_batches_take_their_buckets_lengths_under_xla():
    lengths = list(range(800, 2400, 50))
    split = TranscribedSplit([np.full(n, 0.5, np.float32) for n in lengths], ["one two"] * len(lengths), [])
    noise = np.random.default_rng(0).normal(size=4000).astype(np.float32)
    natural = list(utterance_dataset(split, DIGIT_LABELS, batch_size=4, noise=noise))
    fixed = list(utterance_dataset(split, DIGIT_LABELS, batch_size=4, noise=noise, fixed_lengths=True))
    assert len(_lengths(natural, lambda batch: batch[0]["waveform"])) > 4
    assert len(_lengths(fixed, lambda batch: batch[0]["waveform"])) <= 4
    assert sum(len(labels) for _, labels in fixed) == len(lengths)


def test_a_streaming_transcriber_hears_some_utterances_after_silence():
    """Half of them start after up to `max_lead_in` samples of silence; the fixed lengths still hold them."""
    lengths = [1600] * 64
    split = TranscribedSplit([np.full(n, 0.5, np.float32) for n in lengths], ["one two"] * len(lengths), [])
    noise = np.zeros(4000, np.float32)  # silence stays silent
    batches = list(utterance_dataset(split, DIGIT_LABELS, batch_size=8, noise=noise, fixed_lengths=True,
                                     max_lead_in=800))
    waveforms = [row for inputs, _ in batches for row in inputs["waveform"].numpy()]
    assert len(waveforms) == len(lengths)
    leads = np.array([np.argmax(row != 0) for row in waveforms])
    assert 0.25 < np.mean(leads > 0) < 0.75 and leads.max() <= 800
    samples = [int(n) for inputs, _ in batches for n in inputs["samples"].numpy()]
    assert all(n - lead >= int(1600 / 1.1) for n, lead in zip(samples, leads))  # the speech is all there
