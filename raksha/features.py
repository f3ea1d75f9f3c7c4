"""Behavioural feature matrix and autoencoder outputs, as the autoencoder notebook computes them.

Pure numpy/pandas: no Spark, no Keras. Nulls are missing values and become 0 (the notebook's
``fillna(0)``), the scaler applies to the 18 continuous features, binaries pass unscaled,
continuous then binary. Everything stays float64 as in the notebook, where the scaled input
is float64 and only the network runs in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from raksha import contract


@dataclass(frozen=True)
class Scaler:
    """A fitted StandardScaler, as JSON-able numbers: ``(x - mean) / scale``."""

    mean: np.ndarray
    scale: np.ndarray

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(contract.CONTINUOUS_FEATURES),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
        }

    @classmethod
    def from_json(cls, payload: dict[str, object]) -> Scaler:
        if list(payload.get("features", [])) != list(contract.CONTINUOUS_FEATURES):
            raise ValueError("scaler features differ from the contract's continuous features")
        mean = np.asarray(payload["mean"], dtype=np.float64)
        scale = np.asarray(payload["scale"], dtype=np.float64)
        n = len(contract.CONTINUOUS_FEATURES)
        if mean.shape != (n,) or scale.shape != (n,) or not np.all(np.isfinite(mean)) or not np.all(scale > 0):
            raise ValueError("scaler must have finite means and positive scales for the 18 continuous features")
        return cls(mean, scale)

    @classmethod
    def fit(cls, continuous: np.ndarray) -> Scaler:
        """As sklearn's StandardScaler: population std, zero scales replaced by 1."""
        from sklearn.preprocessing import StandardScaler

        fitted = StandardScaler().fit(continuous)
        return cls(fitted.mean_.astype(np.float64), fitted.scale_.astype(np.float64))

    def transform(self, continuous: np.ndarray) -> np.ndarray:
        return (continuous - self.mean) / self.scale


def behavior_matrix(features: pd.DataFrame, scaler: Scaler) -> np.ndarray:
    """The autoencoder's (n, 30) float64 input from a frame holding the 30 feature columns."""
    continuous = features[list(contract.CONTINUOUS_FEATURES)].astype("float64").fillna(0.0).to_numpy()
    binary = features[list(contract.BINARY_FEATURES)].astype("float64").fillna(0.0).to_numpy()
    return np.hstack([scaler.transform(continuous), binary])


def reconstruction_error(x: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """Mean squared error over the 30 values of each row (float64 input, float32 output)."""
    return np.mean(np.square(x - reconstructed), axis=1)


def ae_outputs(ae_error: np.ndarray, threshold: float) -> pd.DataFrame:
    """The notebook's ``is_anomaly`` and ``risk_score_percent`` from errors and the threshold."""
    return pd.DataFrame(
        {
            "ae_error": ae_error,
            "ae_threshold": np.full(len(ae_error), float(threshold)),
            "ae_is_anomaly": (ae_error > threshold).astype("int32"),
            "ae_risk_percent": np.minimum(100.0, ae_error / threshold * 100.0),
        }
    )
