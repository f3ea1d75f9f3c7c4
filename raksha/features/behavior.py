"""Behavioural feature matrix and autoencoder outputs, as the autoencoder notebook computes them.

Pure numpy/pandas: no Spark, no Keras. Nulls are missing values and become 0 (the notebook's
``fillna(0)``), the scaler applies to the 18 continuous features, binaries pass unscaled,
continuous then binary. Everything stays float64 as in the notebook, where the scaled input
is float64 and only the network runs in float32.
"""

from __future__ import annotations

from collections.abc import Callable
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


# The day-of-week one-hots: never a reason, not in the standardised error, and held at their training
# frequencies in its input (a weekday missing from training would otherwise feed weights it never trained).
DAY_FEATURES = tuple(f for f in contract.BINARY_FEATURES if f.startswith("day_of_week_"))
_IS_DAY = np.array([f in DAY_FEATURES for f in contract.FEATURES])
_INDEX = {f: i for i, f in enumerate(contract.FEATURES)}
# The notebook's missing-value indicators and the features whose absence they mark.
MISSING_INDICATORS: dict[str, tuple[str, ...]] = {
    "accel_variance_missing": ("accel_variance",),
    "gyro_variance_missing": ("gyro_variance",),
    "wifi_info_missing": ("wifi_id_hash",),
    "gps_location_missing": ("gps_latitude", "gps_longitude"),
}
BEHAVIOUR_INDEX = np.flatnonzero(~_IS_DAY)  # the 23 features the standardised error and the reasons cover
# No feature's held-out mean squared error is taken below this (a feature reconstructed perfectly on
# held-out rows, e.g. a binary always 0 in training, would otherwise divide by about 0).
ERROR_FLOOR = 1e-4
# Variant rows per model call when the reasons are computed (23 per row; about 24 MB of float64).
OCCLUSION_ROWS = 100_000


@dataclass(frozen=True)
class FeatureErrors:
    """What standardises the autoencoder's error, per feature (in contract order, model-input units).

    ``heldout_mean``: the mean squared reconstruction error of each feature on the held-out rows (None:
    the version has none, e.g. imported from the notebooks; the reasons then weigh every feature's error
    alike and there is no standardised error). ``expected``: the value a reason sets a feature to, the
    training population's mean (0 for a scaled continuous feature) or mode (a binary); for the
    day-of-week one-hots, their training frequencies (1/7 each when unknown).
    """

    heldout_mean: np.ndarray | None
    expected: np.ndarray

    @classmethod
    def unknown(cls) -> FeatureErrors:
        expected = np.where(_IS_DAY, 1.0 / len(DAY_FEATURES), 0.0)
        return cls(None, expected)

    @staticmethod
    def training_expected(x_train: np.ndarray) -> np.ndarray:
        """``expected`` from the training rows' model input: 0 (the scaled mean) for a continuous
        feature, the mode of a binary, the frequency of a day-of-week one-hot."""
        rates = np.asarray(x_train, dtype=np.float64).mean(axis=0)
        expected = np.where(_IS_DAY, rates, (rates >= 0.5).astype(np.float64))
        expected[: len(contract.CONTINUOUS_FEATURES)] = 0.0
        return expected

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "heldout_squared_error_per_feature",
            "features": list(contract.FEATURES),
            "heldout_mean": None if self.heldout_mean is None else [float(v) for v in self.heldout_mean],
            "expected": [float(v) for v in self.expected],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any] | None) -> FeatureErrors:
        if not payload:
            return cls.unknown()
        if list(payload.get("features", [])) != list(contract.FEATURES):
            raise ValueError("feature_errors: features differ from the contract's")
        n = len(contract.FEATURES)
        expected = np.asarray(payload["expected"], dtype=np.float64)
        mean = payload.get("heldout_mean")
        heldout = None if mean is None else np.asarray(mean, dtype=np.float64)
        if expected.shape != (n,) or not np.all(np.isfinite(expected)):
            raise ValueError("feature_errors: expected must hold 30 finite values")
        if heldout is not None and (heldout.shape != (n,) or not np.all(np.isfinite(heldout)) or (heldout < 0).any()):
            raise ValueError("feature_errors: heldout_mean must hold 30 finite non-negative values")
        return cls(heldout, expected)

    @property
    def scale(self) -> np.ndarray:
        """What each behavioural feature's squared error is divided by (1 without held-out errors)."""
        if self.heldout_mean is None:
            return np.ones(len(BEHAVIOUR_INDEX))
        return np.maximum(self.heldout_mean[BEHAVIOUR_INDEX], ERROR_FLOOR)

    def neutral_days(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the day-of-week one-hots at their training frequencies (a copy)."""
        out = np.array(x, dtype=np.float64, copy=True)
        out[..., _IS_DAY] = self.expected[_IS_DAY]
        return out

    def neutral(self, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """``neutral_days(x)`` with what was not measured at its expected value too: each missing feature
        (null in ``observed``, filled with 0 for the notebook's input) and the missing-value indicator of
        a feature that is missing. A phone without a gyroscope, or a session on mobile data, is not
        evidence of anything; the notebook's ``ae_error`` still sees the zeros. (An indicator that is on
        while its feature was measured is left as sent: that contradiction is evidence.)"""
        out = self.neutral_days(x)
        missing = np.isnan(observed)
        for indicator, measured in MISSING_INDICATORS.items():
            missing[:, _INDEX[indicator]] |= np.any(missing[:, [_INDEX[m] for m in measured]], axis=1)
        return np.where(missing, self.expected, out)

    def standardised(self, squared: np.ndarray) -> np.ndarray:
        """Mean over the 23 behavioural features of squared error / that feature's held-out mean (last axis)."""
        return np.mean(squared[..., BEHAVIOUR_INDEX] / self.scale, axis=-1)


def feature_errors(x: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """Each value's squared reconstruction error, (n, 30) float64."""
    return np.square(np.asarray(x, dtype=np.float64) - reconstructed)


def occlusion_drops(
    x: np.ndarray, error: np.ndarray, stats: FeatureErrors, forward: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """(n, 23): how much each row's standardised error falls when one behavioural feature is set to its
    expected value and the variant re-run through the model (``x`` day-neutral, ``error`` its
    ``stats.standardised`` error). The variants of up to ``OCCLUSION_ROWS // 23`` rows go in one call."""
    n, k = len(x), len(BEHAVIOUR_INDEX)
    drops = np.zeros((n, k))
    step = max(OCCLUSION_ROWS // k, 1)
    columns = np.arange(k)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        variants = np.repeat(x[rows, None, :], k, axis=1)
        variants[:, columns, BEHAVIOUR_INDEX] = stats.expected[BEHAVIOUR_INDEX]
        flat = variants.reshape(-1, x.shape[1])
        varied = stats.standardised(feature_errors(flat, forward(flat))).reshape(-1, k)
        drops[rows] = error[rows, None] - varied
    return drops


def ae_reasons(
    observed: np.ndarray,
    x: np.ndarray,
    error: np.ndarray,
    needed: np.ndarray,
    stats: FeatureErrors,
    scaler: Scaler,
    forward: Callable[[np.ndarray], np.ndarray],
    top: int = 3,
) -> pd.DataFrame:
    """The ``top`` features that, set to their expected value, lower each row's error most, as flat columns.

    Occlusion (a counterfactual per feature): for the rows in ``needed`` only, each of the 23 behavioural
    features (never a day-of-week one-hot) is set to ``stats.expected`` and the variant re-run through the
    model (``occlusion_drops``, batched); features rank by how much the row's standardised error
    (``error``, of the day-neutral input ``x``) falls. Reason k of a row is ``ae_reason_{k}_code``,
    ``_feature``, ``_value`` (what the session sent; null when missing), ``_expected`` (what the feature
    was set to, in the input's units: the training mean or mode) and ``_contribution`` (the fall as a
    share of the row's error, 0-1); all null for a row not needed or with fewer than k features whose
    occlusion lowers its error. ``observed`` is the ``feature_matrix`` the input was made from. No Python
    per row (``reason_lists`` gives the nested form).
    """
    n = len(x)
    k = min(top, len(BEHAVIOUR_INDEX))
    share = np.zeros((n, len(BEHAVIOUR_INDEX)))
    rows = np.flatnonzero(np.asarray(needed, dtype=bool))
    if len(rows):
        drops = occlusion_drops(x[rows], error[rows], stats, forward)
        total = error[rows, None]
        share[rows] = np.divide(drops, total, out=np.zeros_like(drops), where=total > 0)
    n_cont = len(contract.CONTINUOUS_FEATURES)
    expected_all = stats.expected.copy()
    expected_all[:n_cont] = expected_all[:n_cont] * scaler.scale + scaler.mean
    # largest fall first, ties by feature position
    ranked = np.argsort(-share, axis=1, kind="stable")[:, :k]
    row_index = np.arange(n)[:, None]
    picked_share = share[row_index, ranked]
    order = BEHAVIOUR_INDEX[ranked]
    picked_value = observed[row_index, order]
    picked_expected = expected_all[order]
    filled = np.nan_to_num(picked_value, nan=0.0)
    code = np.where(
        _IS_BINARY[order],
        np.where(filled >= 0.5, _ON[order], _OFF[order]),
        np.where(filled > picked_expected, _HIGH[order], _LOW[order]),
    )
    present = picked_share > 0
    out = {}
    for j in range(k):
        keep = present[:, j]
        out[f"ae_reason_{j + 1}_code"] = np.where(keep, code[:, j], np.array(None, dtype=object))
        out[f"ae_reason_{j + 1}_feature"] = np.where(keep, _FEATURES[order[:, j]], np.array(None, dtype=object))
        out[f"ae_reason_{j + 1}_value"] = np.where(keep, picked_value[:, j], np.nan)
        out[f"ae_reason_{j + 1}_expected"] = np.where(keep, picked_expected[:, j], np.nan)
        out[f"ae_reason_{j + 1}_contribution"] = np.where(keep, picked_share[:, j], np.nan)
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
