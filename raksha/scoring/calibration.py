"""How unusual is a model's raw output? Tail probabilities against a reference distribution.

Each trained model version stores the quantiles (1001 points) of its output on held-out
*normal* data: reconstruction errors for the autoencoder, seq_risk for the sequence model.
``surprise`` turns a raw output x into s = -log10 P(reference >= x):

- up to the reference's 95th percentile, the empirical survival function (interpolated);
- above it, an exponential tail fitted to the reference's top 5% (mean excess), so the
  probability keeps falling for ever larger outputs and never reaches 0: two flagged sessions
  of different severity keep different scores. Computed in log space: no underflow.

The sequence model's outputs are probabilities; they are compared on the logit scale.
Models imported from the notebooks carry no reference; they fall back to a parametric tail
stated in ``fallback_surprise``.

``risk_score`` combines both models' surprises with Fisher's method (strictly increasing in
each) and maps the combined surprise S to 0-100 as ``100 * S / (S + 1.3)``: a combined tail
probability of 5% scores 50, 0.1% about 70, 1e-6 about 82, and no finite output scores 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

TAIL_FROM = 0.95
LOGIT_EPS = 1e-7
SCORE_HALF = -math.log10(0.05)  # combined surprise that scores 50
LN10 = math.log(10.0)


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(x) - np.log1p(-x)


def surprise(values: np.ndarray, quantiles: Sequence[float], logit: bool = False) -> np.ndarray:
    """-log10 of the reference's survival probability at each value (0 = not unusual at all)."""
    x = np.asarray(values, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if logit:
        x, q = _logit(x), _logit(q)
    probs = np.linspace(0.0, 1.0, len(q))
    unique_q, last = np.unique(q[::-1], return_index=True)  # highest probability for tied quantiles
    cdf = probs[::-1][last]
    survival = 1.0 - np.interp(x, unique_q, cdf, left=0.0, right=1.0)
    s = -np.log10(np.clip(survival, 1e-300, 1.0))
    tail_at = np.quantile(q, TAIL_FROM)
    excess = q[q > tail_at] - tail_at
    scale = float(excess.mean()) if len(excess) and excess.mean() > 0 else max(abs(tail_at), 1.0) * 1e-3
    in_tail = x > tail_at
    s[in_tail] = -math.log10(1.0 - TAIL_FROM) + (x[in_tail] - tail_at) / scale / LN10
    return s


def fallback_surprise(values: np.ndarray, kind: str, threshold: float | None = None) -> np.ndarray:
    """Parametric tails for versions without a reference (imported notebook models).

    autoencoder: P(error > x) = 0.05 ** (x / threshold), i.e. 5% at the threshold as the
    notebook's 95th percentile says, exponential beyond; sequence: P = 1 - seq_risk.
    """
    x = np.asarray(values, dtype=np.float64)
    if kind == "ae":
        if threshold is None:
            raise ValueError("the autoencoder's fallback tail needs its threshold")
        return -math.log10(0.05) * np.maximum(x, 0.0) / float(threshold)
    return -np.log10(np.clip(1.0 - x, 1e-12, 1.0))


def combined_surprise(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Fisher's method on two tail probabilities given as surprises; returns the combined surprise."""
    half_chi2 = LN10 * (np.asarray(s1) + np.asarray(s2))  # X/2 with X = -2 (ln p1 + ln p2)
    return (half_chi2 - np.log1p(half_chi2)) / LN10  # -log10(exp(-X/2) (1 + X/2))


def risk_score(s_ae: np.ndarray, s_seq: np.ndarray) -> np.ndarray:
    s = combined_surprise(s_ae, s_seq)
    return 100.0 * s / (s + SCORE_HALF)


def risk_score_column(s_ae: Column, s_seq: Column) -> Column:
    """``risk_score`` as a Spark expression (the same formula as the numpy version above)."""
    half_chi2 = F.lit(LN10) * (s_ae + s_seq)
    s = (half_chi2 - F.log1p(half_chi2)) / F.lit(LN10)
    return F.lit(100.0) * s / (s + F.lit(SCORE_HALF))
