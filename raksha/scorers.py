"""Deserialized, ready-to-run models: verified bytes in, numpy batches through.

A scorer is built from a verified ``ModelVersion`` (see ``artifacts``) and runs whole
batches; it never loops over rows. Built once per Python worker by ``model_cache``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from raksha import contract
from raksha.artifacts import ModelVersion
from raksha.features import Scaler, ae_outputs, ae_reasons, behavior_matrix, reconstruction_error
from raksha.sequences import pad_tokens

log = logging.getLogger(__name__)

AE_FILES = ("model.keras", "scaler.json")
SEQ_FILES = ("model.keras",)


def pin_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools to the task's cores (call before the first op)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process: keep what it has
        log.debug("TensorFlow threads already initialized")


def _predict(model, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0,) + tuple(model.output_shape[1:]), dtype=np.float32)
    return np.asarray(model.predict_on_batch(x))


class BehaviorScorer:
    """The autoencoder, its scaler and its threshold."""

    def __init__(self, version: ModelVersion) -> None:
        from raksha.architectures import model_from_bytes

        what = f"{version.name}/{version.version}"
        self.version = version.version
        self.scaler = Scaler.from_json(json.loads(version.files["scaler.json"]))
        self.threshold = float(version.manifest["threshold"])
        self.model = model_from_bytes(version.files["model.keras"], what)
        if tuple(self.model.input_shape) != (None, len(contract.FEATURES)):
            raise ValueError(f"{what}: input shape {self.model.input_shape}, expected (None, 30)")

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return _predict(self.model, x.astype(np.float32))

    def score(self, features: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        """ae_error, ae_threshold, ae_is_anomaly, ae_risk_percent (and ae_reasons) per row."""
        x = behavior_matrix(features, self.scaler)
        reconstructed = self.reconstruct(x)
        out = ae_outputs(reconstruction_error(x, reconstructed), self.threshold)
        if with_reasons:
            out["ae_reasons"] = ae_reasons(features, x, reconstructed, self.scaler)
        return out


class SequenceScorer:
    """The LSTM sequence classifier."""

    def __init__(self, version: ModelVersion, block_threshold: float = contract.SEQ_BLOCK_THRESHOLD) -> None:
        from raksha.architectures import model_from_bytes

        what = f"{version.name}/{version.version}"
        self.version = version.version
        self.block_threshold = block_threshold
        self.model = model_from_bytes(version.files["model.keras"], what)
        if tuple(self.model.input_shape) != (None, contract.MAX_SEQ_LENGTH):
            raise ValueError(f"{what}: input shape {self.model.input_shape}, expected (None, 10)")

    def risk(self, padded: np.ndarray) -> np.ndarray:
        """Sigmoid output (float32, as Keras returns it) for padded (n, 10) token rows."""
        return _predict(self.model, padded.astype(np.int32)).reshape(-1)

    def score(self, token_sequences) -> pd.DataFrame:
        """seq_risk and seq_is_block for each sequence of action tokens."""
        seq_risk = self.risk(pad_tokens(list(token_sequences))).astype(np.float64)
        return pd.DataFrame({"seq_risk": seq_risk, "seq_is_block": (seq_risk > self.block_threshold).astype("int32")})
