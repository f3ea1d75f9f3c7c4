"""What the nightly report says: its document (``report.json``) assembled from a day's counts, the
run's run_log row, the thresholds and the drift comparison. Pure: no Spark; ``report`` counts
in Spark and calls ``assemble``, ``report_page`` draws the result.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raksha import contract
from raksha.pipeline import drift
from raksha.pipeline.drift import Binned

RULE_BOUND = re.compile(
    r"\b(ae_error|seq_risk_max|seq_risk|risk_score)\s*(>=|>|<=|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
)
DQ_FLAGS = ("NO_ACTIONS", "UNKNOWN_ACTIONS", "SEQUENCE_TRUNCATED", "SEQUENCE_WINDOWS_CAPPED", "MISSING_FEATURES_FILLED")
TREND_COUNTS = ("sessions_read", "sessions_scored", "sessions_quarantined")


@dataclass(frozen=True)
class DisplayBins:
    """Equal-width histogram bins from ``low`` to ``high``, of log10(value) when ``log``; values
    outside fall in the end bins."""

    low: float
    high: float
    count: int
    log: bool = False

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.count

    def edges(self) -> list[float]:
        points = [self.low + i * self.width for i in range(self.count + 1)]
        return [10.0**p for p in points] if self.log else points

    def index(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin, 0 .. count - 1 (values outside go to the end bins; no NaN)."""
        x = np.log10(np.maximum(values, 1e-300)) if self.log else values
        return np.clip(np.floor((x - self.low) / self.width), 0, self.count - 1).astype(np.int64)


def displays(ae_threshold: float | None) -> dict[str, DisplayBins]:
    """ae_error on a log axis, three decades either side of its threshold; the others over their ranges."""
    centre = math.log10(ae_threshold) if ae_threshold and ae_threshold > 0 else 0.0
    return {
        "ae_error": DisplayBins(centre - 3, centre + 3, 60, log=True),
        "seq_risk_max": DisplayBins(0.0, 1.0, 50),
        "risk_score": DisplayBins(0.0, 100.0, 50),
    }


@dataclass
class DayStats:
    """What one aggregation of a scored day returns to the driver."""

    decisions: dict[str, int]
    dq_flags: dict[str, int]
    without_dq_flags: int
    reasons: dict[str, int]
    histograms: dict[str, list[int]]
    drift: dict[str, Binned] = field(default_factory=dict)

    @property
    def sessions(self) -> int:
        return sum(self.decisions.values())


@dataclass
class Reference:
    """A model version's drift reference and where it came from."""

    model: str
    version: str
    kind: str  # training, first_scored_day
    columns: dict[str, Binned]
    date: str | None = None
    run_id: str | None = None
    new: bool = False  # made from the day being reported: to be stored

    def note(self, day: dt.date) -> str:
        if self.kind == "training":
            return f"{self.model} {self.version}: the training reference stored in the version when it was trained"
        this = " (this date)" if self.date == day.isoformat() else ""
        return (
            f"{self.model} {self.version}: carries no training reference (an imported, shipped or older version), "
            f"so its first scored day, {self.date}{this}, run {self.run_id}, is the reference"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "date": self.date,
            "run_id": self.run_id,
            "bins": drift.BINS,
            "columns": {c: b.to_json() for c, b in self.columns.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], model: str, version: str) -> Reference:
        columns = {c: Binned.from_json(b) for c, b in doc["columns"].items()}
        return cls(model, version, str(doc.get("kind", "training")), columns, doc.get("date"), doc.get("run_id"))


def rule_thresholds(rules: Sequence[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """``column op number`` bounds in the decision rules, by column: what each rule compares with."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i, (condition, decision) in enumerate(rules):
        for column, op, number in RULE_BOUND.findall(condition):
            label = f"rule {i + 1} ({decision}): {column} {op} {number}"
            out.setdefault(column, []).append({"label": label, "value": float(number)})
    return out


def threshold_lines(
    rules: Sequence[tuple[str, str]], ae_threshold: float | None, block_threshold: float, risk_score_cut: float | None
) -> dict[str, list[dict[str, Any]]]:
    """The lines drawn on each score's histogram: the versions' thresholds, then the rules' bounds."""
    lines: dict[str, list[dict[str, Any]]] = {"ae_error": [], "seq_risk_max": [], "risk_score": []}
    if ae_threshold is not None:
        lines["ae_error"].append({"label": "ae_threshold (ae_is_anomaly)", "value": float(ae_threshold)})
    lines["seq_risk_max"].append({"label": "block_threshold (seq_is_block, on seq_risk)", "value": block_threshold})
    if risk_score_cut is not None:
        lines["risk_score"].append({"label": "risk_score_cut (raksha calibrate)", "value": float(risk_score_cut)})
    for column, bounds in rule_thresholds(rules).items():
        lines["seq_risk_max" if column == "seq_risk" else column].extend(bounds)
    return lines


def trend_rows(runs: Mapping[str, Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` dates of ``runs`` (date -> run_id, counts, decisions), oldest first."""
    out = []
    for date in sorted(runs)[-limit:]:
        counts, decisions = dict(runs[date].get("counts") or {}), dict(runs[date].get("decisions") or {})
        out.append(
            {
                "date": date,
                "run_id": runs[date]["run_id"],
                **{k: int(counts.get(k, 0)) for k in TREND_COUNTS},
                "decisions": {d: int(decisions.get(d, 0)) for d in contract.DECISIONS},
            }
        )
    return out


def assemble(
    day: dt.date,
    run: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
    stats: DayStats,
    bins: Mapping[str, DisplayBins],
    lines: Mapping[str, list[dict[str, Any]]],
    refs: Mapping[str, Reference],
    trend: list[dict[str, Any]],
    capacity: int,
    top_reasons: int,
    built_by: str,
) -> dict[str, Any]:
    """The report's document: every number the page shows, JSON-ready."""
    reference_bins = {c: b for ref in refs.values() for c, b in ref.columns.items()}
    sources = {c: ref.note(day) for ref in refs.values() for c in ref.columns}
    columns = drift.compare(day, stats.drift, reference_bins, sources)
    psi = {c["column"]: c["psi"] for c in columns if c["psi"] is not None}
    counts = {k: int(v) for k, v in dict(run.get("counts") or {}).items()}
    ranked = sorted(stats.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top_reasons]
    return {
        "date": day.isoformat(),
        "run_id": run["run_id"],
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "built_by": built_by,
        "models": {name: dict(m) for name, m in models.items()},
        "counts": counts,
        "decisions": stats.decisions,
        "dq_flags": {**{f: 0 for f in DQ_FLAGS}, **stats.dq_flags},
        "sessions_without_dq_flags": stats.without_dq_flags,
        "top_reasons": [{"code": code, "sessions": n} for code, n in ranked],
        "distributions": {
            column: {
                "edges": b.edges(),
                "counts": [int(n) for n in stats.histograms.get(column, [0] * b.count)],
                "scale": "log" if b.log else "linear",
                "thresholds": list(lines.get(column, [])),
            }
            for column, b in bins.items()
        },
        "queue": {
            "capacity": capacity,
            "cases": counts.get("review_cases", 0),
            "sessions": counts.get("review_sessions", 0),
            "audit_sessions": counts.get("review_audit_sessions", 0),
            "overflow_cases": counts.get("review_overflow_cases", 0),
        },
        "trend": trend,
        "drift": {
            "bands": {"watch": drift.WATCH_ABOVE, "warn": drift.WARN_ABOVE},
            "references": {
                name: {"kind": r.kind, "version": r.version, "date": r.date, "run_id": r.run_id, "note": r.note(day)}
                for name, r in refs.items()
            },
            "psi": psi,
            "columns": columns,
        },
        "warnings": drift.warnings_for(psi),
    }
