"""The two notebooks' networks, layer for layer, in Keras 3.

Used by training and by the legacy import (which rebuilds these and copies the Keras 2
weights in). Importing this module imports Keras; scoring workers import it only when a
model is first deserialized.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from raksha import contract  # noqa: E402
from raksha.models.keras_files import ALLOWED_LAYERS  # noqa: E402


def build_autoencoder(input_dim: int = len(contract.FEATURES)) -> keras.Model:
    """30 -> Dense(32, relu) -> Dense(16, relu) -> Dense(32, relu) -> Dense(30, linear)."""
    input_layer = keras.Input(shape=(input_dim,), name="input")
    encoded = layers.Dense(32, activation="relu", name="encoder_1")(input_layer)
    encoded = layers.Dense(16, activation="relu", name="encoder_2")(encoded)
    decoded = layers.Dense(32, activation="relu", name="decoder_1")(encoded)
    output_layer = layers.Dense(input_dim, activation="linear", name="output")(decoded)
    model = keras.Model(inputs=input_layer, outputs=output_layer, name="behavioral_autoencoder")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def build_sequence_model() -> keras.Model:
    """Embedding(9, 32) -> LSTM(64) -> Dropout(0.2) -> Dense(1, sigmoid) over 10 steps."""
    model = keras.Sequential(
        [
            keras.Input(shape=(contract.MAX_SEQ_LENGTH,), dtype="int32"),
            layers.Embedding(input_dim=contract.VOCABULARY_SIZE, output_dim=32),
            layers.LSTM(64, return_sequences=False),
            layers.Dropout(0.2),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="sequential",
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def check_layers(model: keras.Model, what: str) -> None:
    """Refuse models with layers outside ALLOWED_LAYERS (e.g. Lambda, custom code)."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ALLOWED_LAYERS:
            raise ValueError(f"{what}: layer '{layer.name}' of type {kind} is not allowed in a scoring model")


def model_to_bytes(model: keras.Model) -> bytes:
    """Serialize to the Keras 3 ``.keras`` format."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def model_from_bytes(data: bytes, what: str) -> keras.Model:
    """Deserialize verified ``.keras`` bytes with safe mode on, then check the layer kinds."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    check_layers(model, what)
    return model
