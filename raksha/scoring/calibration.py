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

``risk_score`` combines the surprises (both models', and the user-baseline score's when baselines are
on) with Fisher's method (strictly increasing in each) and maps the combined surprise S to 0-100 as
``100 * S / (S + 1.3)``: a combined tail probability of 5% scores 50, 0.1% about 70, 1e-6 about 82,
and no finite output scores 100.
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


def _poisson_terms(half_chi2, k: int):
    """sum_{i<k} h^i / i!: with exp(-h), the survival of a chi-square with 2k degrees of freedom at 2h."""
    term, total = 1.0, 1.0
    for i in range(1, k):
        term = term * half_chi2 / i
        total = total + term
    return total


def combined_surprise(*surprises: np.ndarray) -> np.ndarray:
    """Fisher's method on tail probabilities given as surprises; returns the combined surprise."""
    half_chi2 = LN10 * np.sum([np.asarray(s, dtype=np.float64) for s in surprises], axis=0)  # X/2, X = -2 sum ln p
    return (half_chi2 - np.log(_poisson_terms(half_chi2, len(surprises)))) / LN10


def risk_score(*surprises: np.ndarray) -> np.ndarray:
    s = combined_surprise(*surprises)
    return 100.0 * s / (s + SCORE_HALF)


def risk_score_column(*surprises: Column) -> Column:
    """``risk_score`` as a Spark expression (the same formula as the numpy version above)."""
    half_chi2 = F.lit(LN10) * sum(surprises[1:], surprises[0])
    s = (half_chi2 - F.log(_poisson_terms(half_chi2, len(surprises)))) / F.lit(LN10)
    return F.lit(100.0) * s / (s + F.lit(SCORE_HALF))


BODY_POINTS = 41  # the reference's quantiles the Spark form interpolates between below its tail


def surprise_column(values: Column, quantiles: Sequence[float]) -> Column:
    """``surprise`` as a Spark expression: the empirical survival interpolated between ``BODY_POINTS``
    of the reference's quantiles up to its 95th percentile, the same exponential tail above it."""
    q = np.asarray(quantiles, dtype=np.float64)
    tail_at = float(np.quantile(q, TAIL_FROM))
    excess = q[q > tail_at] - tail_at
    scale = float(excess.mean()) if len(excess) and excess.mean() > 0 else max(abs(tail_at), 1.0) * 1e-3
    probs = np.linspace(0.0, TAIL_FROM, BODY_POINTS)
    points = np.quantile(q, probs)
    x = values.cast("double")
    tail = F.lit(-math.log10(1.0 - TAIL_FROM)) + (x - F.lit(tail_at)) / F.lit(scale * LN10)
    out = F.when(x > F.lit(tail_at), tail)
    out = out.when(x < F.lit(float(points[0])), F.lit(0.0))
    for (q0, p0), (q1, p1) in zip(
        zip(points, probs, strict=True), zip(points[1:], probs[1:], strict=True), strict=False
    ):
        if q1 <= q0:
            continue
        cdf = F.lit(float(p0)) + (x - F.lit(float(q0))) * F.lit(float((p1 - p0) / (q1 - q0)))
        out = out.when(x <= F.lit(float(q1)), -F.log10(F.lit(1.0) - cdf))
    return out.otherwise(F.lit(-math.log10(1.0 - TAIL_FROM)))
