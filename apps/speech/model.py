"""The spoken-word model: MFCC features, convolutions and recurrent layers to label probabilities."""

from __future__ import annotations

import keras

from apps.common.cells import recurrent_layer
from apps.common.speech_features import FEATURES, SpecAugment, SpeechFeatures
from apps.speech.settings import SpeechTrain


def build_model(
    num_labels: int,
    config: SpeechTrain,
    *,
    recurrent_layers: int = 2,
    bidirectional: bool = True,
    conv_filters: int = 64,
    dropout: float = 0.2,
) -> keras.Model:
    """Waveform `[batch, CLIP_SAMPLES]` -> label probabilities `[batch, num_labels]`.

    MFCC features (`speech_features`), batch normalization, SpecAugment
    (training only), an optional convolutional front end (two strided Conv1D blocks, 4x fewer
    time steps; `conv_filters=0` leaves it out), `recurrent_layers` stacked
    recurrent layers (bidirectional if asked; the last returns its final
    state), dropout and a softmax. From `config` (what `gru-suite train speech`
    fills): the cell, its units, the band of the mel filter bank
    (`min_frequency` to `max_frequency`, see `SpeechFeatures`) and the seed.
    """
    cell, units, seed = config.cell, config.units, config.seed
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}.")
    if units < 1 or recurrent_layers < 1 or conv_filters < 0:
        raise ValueError("units and recurrent_layers must be positive, conv_filters non-negative.")
    waveforms = keras.Input((FEATURES.clip_samples,), name="waveform")
    x = SpeechFeatures(config.min_frequency, config.max_frequency, name="features")(waveforms)
    x = keras.layers.BatchNormalization(name="feature_norm")(x)
    x = SpecAugment(seed=seed, name="spec_augment")(x)
    if conv_filters:
        for block in range(2):
            x = keras.layers.Conv1D(
                conv_filters, 5, strides=2, padding="same", use_bias=False, name=f"conv{block}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"conv{block}_norm")(x)
            x = keras.layers.ReLU(name=f"conv{block}_relu")(x)
    for layer in range(recurrent_layers):
        last = layer == recurrent_layers - 1
        recurrent = recurrent_layer(cell, units, return_sequences=not last, name=f"{cell}{layer}")
        if bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name=f"bidirectional_{cell}{layer}")
        x = recurrent(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    probabilities = keras.layers.Dense(
        num_labels, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(waveforms, probabilities, name=f"speech_{cell}")
