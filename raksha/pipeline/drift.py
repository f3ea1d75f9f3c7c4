"""Drift of a day against a reference: bins, proportions and the population stability index (PSI).

Pure numpy, no Spark: the training code bins its training data here, and the nightly report
(``raksha.pipeline.report``) bins a scored day with the same edges on the executors, then compares
here.

A reference is, per column, the interior bin edges e1 < ... < ek (the deciles of the reference's
values, ties merged) and the share of the reference in each of the k + 1 bins
(-inf, e1], (e1, e2], ..., (ek, inf), plus the share of missing (null) values as one more bin.
A value v falls in bin ``searchsorted(edges, v, side="left")``: the number of edges below it.

PSI = sum over bins of (observed - expected) * ln(observed / expected), shares floored at
``SHARE_FLOOR`` so an empty bin counts as rare rather than impossible. The usual reading:
below 0.1 stable, 0.1 to 0.2 a moderate shift worth watching, above 0.2 a significant shift
(``band``; a day above ``WARN_ABOVE`` is a warning).

The seven day-of-week features are calendar features: every session of a date carries that
date's weekday, so against a reference of several days they differ by construction, every night.
They are compared with what the date implies instead (``calendar_expected``): all sessions on the
date's weekday. A day that carries the wrong weekday, or two, still shows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from raksha import contract

BINS = 10
SHARE_FLOOR = 1e-4
WATCH_ABOVE = 0.1
WARN_ABOVE = 0.2
MISSING_BIN = -1  # the bin index of a null value
CALENDAR_FEATURES: tuple[str, ...] = contract.DAY_OF_WEEK_FEATURES
BINARY_EDGES: tuple[float, ...] = (0.5,)  # a 0/1 feature: its two values, whatever the reference's mix
DRIFT_COLUMNS: tuple[str, ...] = (*contract.FEATURES, "ae_error", "seq_risk")
SCORE_COLUMNS: dict[str, str] = {"ae_error": contract.AE_MODEL, "seq_risk": contract.SEQ_MODEL}  # score -> its model


@dataclass(frozen=True)
class Binned:
    """Shares of a column in the bins its ``edges`` make, plus the share of missing values."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]  # len(edges) + 1; with ``missing`` they sum to 1 (both 0 for no rows)
    missing: float
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares), "missing": self.missing, "count": self.count}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Binned:
        edges = tuple(float(e) for e in doc["edges"])
        shares = tuple(float(s) for s in doc["shares"])
        if len(shares) != len(edges) + 1 or list(edges) != sorted(set(edges)):
            raise ValueError(f"a reference needs increasing edges and one share more than edges, got {dict(doc)}")
        return cls(edges, shares, float(doc.get("missing", 0.0)), int(doc.get("count", 0)))


def quantile_edges(values: Iterable[float], bins: int = BINS) -> tuple[float, ...]:
    """The interior edges of ``bins`` equal-count bins of ``values`` (nulls/NaN left out), ties merged."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return ()
    return distinct_edges(np.quantile(x, np.arange(1, bins) / bins))


def distinct_edges(points: Iterable[float]) -> tuple[float, ...]:
    """Sorted distinct finite edges (the percentiles Spark computes may repeat)."""
    return tuple(float(p) for p in sorted({float(p) for p in points if p is not None and math.isfinite(float(p))}))


def bin_index(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Each value's bin: the number of edges strictly below it; ``MISSING_BIN`` for NaN."""
    x = np.asarray(values, dtype=np.float64)
    out = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left").astype(np.int64)
    out[np.isnan(x)] = MISSING_BIN
    return out


def from_counts(edges: tuple[float, ...], counts: Mapping[int, int]) -> Binned:
    """Shares from counts per bin index (``MISSING_BIN`` for nulls); bins without a count hold 0."""
    total = int(sum(counts.values()))
    bins = len(edges) + 1
    outside = [b for b in counts if b != MISSING_BIN and not 0 <= b < bins]
    if outside:
        raise ValueError(f"bin indexes {outside} outside 0..{bins - 1}")
    if total == 0:
        return Binned(tuple(edges), (0.0,) * bins, 0.0, 0)
    shares = tuple(counts.get(b, 0) / total for b in range(bins))
    return Binned(tuple(edges), shares, counts.get(MISSING_BIN, 0) / total, total)


def binned(values: np.ndarray, edges: tuple[float, ...]) -> Binned:
    """``values`` (NaN = missing) in the bins of ``edges``."""
    index, counts = np.unique(bin_index(values, edges), return_counts=True)
    return from_counts(edges, {int(i): int(c) for i, c in zip(index, counts, strict=True)})


def edges_for(column: str, values: np.ndarray, bins: int = BINS) -> tuple[float, ...]:
    """A column's reference edges: ``BINARY_EDGES`` for a binary feature, else decile edges of ``values``."""
    return BINARY_EDGES if column in contract.BINARY_FEATURES else quantile_edges(values, bins)


def reference_of(column: str, values: np.ndarray, bins: int = BINS) -> Binned:
    """A reference from raw values: the column's edges (``edges_for``), and the values' shares in them."""
    x = np.asarray(values, dtype=np.float64)
    return binned(x, edges_for(column, x, bins))


def training_reference(features: Any, scores: Mapping[str, np.ndarray], bins: int = BINS) -> dict[str, Any]:
    """What a trained version stores as ``drift_reference``: its training data's features (a pandas
    frame with the contract's columns; null = missing) and held-out scores, binned."""
    columns = {name: reference_of(name, features[name].astype("float64").to_numpy(), bins) for name in features.columns}
    columns.update({name: reference_of(name, values, bins) for name, values in scores.items()})
    return {"kind": "training", "bins": bins, "columns": {k: v.to_json() for k, v in columns.items()}}


def psi(expected: Binned, observed: Binned) -> float:
    """Population stability index of ``observed`` against ``expected`` (same edges), missing as a bin."""
    if tuple(expected.edges) != tuple(observed.edges):
        raise ValueError("PSI compares shares in the same bins: the edges differ")
    if observed.count == 0:
        return 0.0
    e = np.maximum(np.asarray([*expected.shares, expected.missing]), SHARE_FLOOR)
    o = np.maximum(np.asarray([*observed.shares, observed.missing]), SHARE_FLOOR)
    return float(np.sum((o - e) * np.log(o / e)))


def band(value: float) -> str:
    """``stable`` (PSI below 0.1), ``moderate`` (0.1 to 0.2) or ``significant`` (above 0.2)."""
    if value > WARN_ABOVE:
        return "significant"
    if value > WATCH_ABOVE:
        return "moderate"
    return "stable"


def calendar_expected(feature: str, day: dt.date, edges: tuple[float, ...]) -> Binned:
    """What date ``day`` implies for a day-of-week feature: every session 1 on its weekday, else 0."""
    value = 1.0 if CALENDAR_FEATURES.index(feature) == day.weekday() else 0.0
    return binned(np.asarray([value]), edges)


def warnings_for(drift: Mapping[str, float]) -> list[str]:
    """One warning per column whose PSI is above ``WARN_ABOVE``, largest first."""
    over = sorted(((v, k) for k, v in drift.items() if v > WARN_ABOVE), reverse=True)
    return [f"DRIFT:{name} PSI {value:.3f} > {WARN_ABOVE}" for value, name in over]


def compare(
    day: dt.date,
    observed: Mapping[str, Binned],
    references: Mapping[str, Binned],
    sources: Mapping[str, str],
) -> list[dict[str, Any]]:
    """PSI of every drift column (the 30 features, then ae_error and seq_risk) observed on ``day``.

    ``references``: the reference of each column that has one; ``sources``: what it is (shown).
    Calendar features are compared with what the date implies. A column without a reference has
    PSI None and band ``no reference``; one without observed values (an empty day) ``no data``.
    """
    out = []
    for column in DRIFT_COLUMNS:
        seen = observed.get(column)
        kind = "score" if column in SCORE_COLUMNS else "calendar" if column in CALENDAR_FEATURES else "feature"
        if kind == "calendar" and seen is not None:
            expected: Binned | None = calendar_expected(column, day, seen.edges)
            source = f"the date's weekday ({day:%A}: every session on it)"
        else:
            expected = references.get(column)
            source = sources.get(column, "no reference")
        if seen is None or seen.count == 0:
            value, label = None, "no data"
        elif expected is None:
            value, label = None, "no reference"
        else:
            value = round(psi(expected, seen), 6)
            label = band(value)
        out.append(
            {
                "column": column,
                "kind": kind,
                "psi": value,
                "band": label,
                "compared_with": source,
                "expected": None if expected is None else expected.to_json(),
                "observed": None if seen is None else seen.to_json(),
            }
        )
    return out
