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


def _reason_code(feature: str, value: float, expected: float) -> str:
    name = feature.upper()
    if feature in contract.BINARY_FEATURES:
        return name if value >= 0.5 else f"NOT_{name}"
    return f"{name}_{'HIGH' if value > expected else 'LOW'}"


def ae_reasons(
    features: pd.DataFrame, x: np.ndarray, reconstructed: np.ndarray, scaler: Scaler, top: int = 3
) -> list[list[dict[str, object]]]:
    """The ``top`` features with the largest share of each row's reconstruction error.

    ``value`` is what the session sent and ``expected`` what the model reconstructed, both in
    the input's units (continuous features un-scaled); ``contribution`` is the feature's share
    of the row's squared error (0-1). A missing value is reported as null (it was filled with 0).
    """
    squared = np.square(x - reconstructed)
    total = squared.sum(axis=1, keepdims=True)
    share = np.divide(squared, total, out=np.zeros_like(squared), where=total > 0)
    n_cont = len(contract.CONTINUOUS_FEATURES)
    expected = np.asarray(reconstructed, dtype=np.float64).copy()
    expected[:, :n_cont] = expected[:, :n_cont] * scaler.scale + scaler.mean
    observed = features[list(contract.FEATURES)].astype("float64").to_numpy()
    # stable order: largest share first, ties by feature position
    order = np.argsort(-share, axis=1, kind="stable")[:, :top]
    out: list[list[dict[str, object]]] = []
    for row, columns in enumerate(order):
        reasons = []
        for col in columns:
            if share[row, col] <= 0:
                continue
            name = contract.FEATURES[col]
            value = observed[row, col]
            value_or_fill = 0.0 if np.isnan(value) else value
            reasons.append(
                {
                    "code": _reason_code(name, value_or_fill, expected[row, col]),
                    "feature": name,
                    "value": None if np.isnan(value) else float(value),
                    "expected": float(expected[row, col]),
                    "contribution": float(share[row, col]),
                }
            )
        out.append(reasons)
    return out
