"""Behavioural feature matrix and autoencoder outputs, as the autoencoder notebook computes them.

Pure numpy/pandas: no Spark, no Keras. Nulls are missing values and become 0 (the notebook's
``fillna(0)``), the scaler applies to the 18 continuous features, binaries pass unscaled,
continuous then binary. Everything stays float64 as in the notebook, where the scaled input
is float64 and only the network runs in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    def to_sklearn(self) -> Any:
        """The notebook's fitted ``StandardScaler`` holding these means and scales (for comparisons
        with the notebooks' own code: tests and the bench)."""
        from sklearn.preprocessing import StandardScaler

        out = StandardScaler()
        out.mean_, out.scale_, out.var_ = self.mean, self.scale, np.square(self.scale)
        out.n_features_in_, out.n_samples_seen_ = len(self.mean), 1
        return out

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Scaler:
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


def feature_matrix(features: pd.DataFrame) -> np.ndarray:
    """The 30 features of a frame as (n, 30) float64 in contract order, a missing value NaN."""
    names = list(contract.FEATURES)
    frame = features if list(features.columns) == names else features[names]
    return frame.to_numpy(dtype="float64", na_value=np.nan)


def model_input(observed: np.ndarray, scaler: Scaler) -> np.ndarray:
    """The autoencoder's (n, 30) float64 input from ``feature_matrix``: missing values 0 (the notebook's
    ``fillna(0)``), continuous features scaled."""
    filled = np.where(np.isnan(observed), 0.0, observed)
    n_cont = len(contract.CONTINUOUS_FEATURES)
    return np.hstack([scaler.transform(filled[:, :n_cont]), filled[:, n_cont:]])


def behavior_matrix(features: pd.DataFrame, scaler: Scaler) -> np.ndarray:
    """The autoencoder's (n, 30) float64 input from a frame holding the 30 feature columns."""
    return model_input(feature_matrix(features), scaler)


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


# Reason codes per feature: binary features are named when on (NOT_ when off), continuous ones
# by direction against what the model expected.
_NAMES = np.array([f.upper() for f in contract.FEATURES], dtype=object)
_ON = _NAMES.copy()
_OFF = np.array([f"NOT_{n}" for n in _NAMES], dtype=object)
_HIGH = np.array([f"{n}_HIGH" for n in _NAMES], dtype=object)
_LOW = np.array([f"{n}_LOW" for n in _NAMES], dtype=object)
_FEATURES = np.array(contract.FEATURES, dtype=object)
_IS_BINARY = np.array([f in contract.BINARY_FEATURES for f in contract.FEATURES])
REASON_FIELDS = ("code", "feature", "value", "expected", "contribution")


def reason_columns(prefix: str, top: int) -> list[str]:
    """``{prefix}_{k}_{field}`` for k = 1..top: the flat columns that carry the top reasons."""
    return [f"{prefix}_{k}_{field}" for k in range(1, top + 1) for field in REASON_FIELDS]


def ae_reasons(
    observed: np.ndarray, x: np.ndarray, reconstructed: np.ndarray, scaler: Scaler, top: int = 3
) -> pd.DataFrame:
    """The ``top`` features with the largest share of each row's reconstruction error, as flat columns.

    Reason k of a row is ``ae_reason_{k}_code``, ``_feature``, ``_value`` (what the session sent),
    ``_expected`` (what the model reconstructed; both in the input's units, continuous features
    un-scaled) and ``_contribution`` (the feature's share of the row's squared error, 0-1); all null
    when the row has fewer than k features with a share above 0. ``observed`` is the
    ``feature_matrix`` the input ``x`` was made from: a missing value is reported as null (it was
    filled with 0). Vectorized: no Python per row (``reason_lists`` gives the nested form).
    """
    squared = np.square(x - reconstructed)
    total = squared.sum(axis=1, keepdims=True)
    share = np.divide(squared, total, out=np.zeros_like(squared), where=total > 0)
    n_cont = len(contract.CONTINUOUS_FEATURES)
    expected = np.asarray(reconstructed, dtype=np.float64).copy()
    expected[:, :n_cont] = expected[:, :n_cont] * scaler.scale + scaler.mean
    # stable order: largest share first, ties by feature position
    order = np.argsort(-share, axis=1, kind="stable")[:, :top]
    rows = np.arange(len(x))[:, None]
    picked_share = share[rows, order]
    picked_value = observed[rows, order]
    picked_expected = expected[rows, order]
    filled = np.nan_to_num(picked_value, nan=0.0)
    code = np.where(
        _IS_BINARY[order],
        np.where(filled >= 0.5, _ON[order], _OFF[order]),
        np.where(filled > picked_expected, _HIGH[order], _LOW[order]),
    )
    present = picked_share > 0
    out = {}
    for k in range(order.shape[1]):
        keep = present[:, k]
        out[f"ae_reason_{k + 1}_code"] = np.where(keep, code[:, k], np.array(None, dtype=object))
        out[f"ae_reason_{k + 1}_feature"] = np.where(keep, _FEATURES[order[:, k]], np.array(None, dtype=object))
        out[f"ae_reason_{k + 1}_value"] = np.where(keep, picked_value[:, k], np.nan)
        out[f"ae_reason_{k + 1}_expected"] = np.where(keep, picked_expected[:, k], np.nan)
        out[f"ae_reason_{k + 1}_contribution"] = np.where(keep, picked_share[:, k], np.nan)
    return pd.DataFrame(out)


def reason_lists(flat: pd.DataFrame, prefix: str = "ae_reason") -> list[list[dict[str, object]]]:
    """The nested form of flat reason columns: per row, a list of {code, feature, value, expected, contribution}."""
    top = sum(1 for c in flat.columns if c.startswith(f"{prefix}_") and c.endswith("_code"))
    out = []
    for record in flat.to_dict("records"):
        reasons = []
        for k in range(1, top + 1):
            if record[f"{prefix}_{k}_code"] is None:
                continue
            reason = {field: record[f"{prefix}_{k}_{field}"] for field in REASON_FIELDS}
            reasons.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in reason.items()})
        out.append(reasons)
    return out
