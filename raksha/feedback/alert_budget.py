"""Thresholds by alert budget: ``raksha calibrate --start-date D1 --end-date D2 --capacity K``.

The notebook's threshold is the 95th percentile of held-out errors: it flags about 5% of every
day, however many analysts there are. ``calibrate`` instead reads a window of scored days and
picks the thresholds at which the review queue would hold, on average, K cases a day (a case is
one user's flagged sessions of one day, as in ``review_queue``):

- **the autoencoder threshold** T, which the default rules use (``ae_is_anomaly = 1`` reviews):
  a user-day is a case when one of its sessions was blocked, or has ``ae_error > T``;
- **the combined-score cut** C, for rules that rank by ``risk_score`` instead
  (``{when: "risk_score > risk_score_cut", decision: REVIEW}``): a case when a session was blocked
  or has ``risk_score > C``.

Blocked sessions (``decision = 'BLOCK'`` as scored) are cases whatever the threshold, so they use
up the budget first; when they alone exceed it, the threshold is set above every session (no
autoencoder reviews) and the report says so. Each threshold is the value just below the
M-th largest user-day maximum, M = K * days - blocked cases, found with Spark (only the top M
rows reach the driver). Ties at the threshold can only lower the count.

Where ground truth exists (the generated labels, or the analysts' verdicts) the report gives,
for each threshold, precision and recall over sessions and the share of cases holding an
attack. The result is a new autoencoder version: the same network and scaler files (the same
bytes) as the version that scored the window, with ``threshold`` = T, ``alert_budget`` (K, the
window, C, the measured figures) and ``threshold_history`` (every earlier threshold of the
lineage, oldest first). It is written, not promoted, unless asked: ``raksha promote`` (or
``models.challenger`` for a trial night) puts it to work. Decision rules read its cut as the
column ``risk_score_cut`` (null for versions without one, so such a rule never matches).

Legacy versions (imported from the notebooks) have no reference distribution: their
``risk_score`` uses a parametric tail scaled by the threshold. The new version keeps that scale
(``fallback_threshold``), so calibrating changes decisions, never risk scores.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide import review
from raksha.evaluation import window as evaluation
from raksha.ingest import inputs
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion
from raksha.platform import tables

log = logging.getLogger(__name__)

# score column -> the threshold it gets; a session counts when its score is strictly above it
KNOBS: dict[str, str] = {"ae_error": "ae_threshold", "risk_score": "risk_score_cut"}
# manifest keys a calibrated version sets itself (everything else is the source version's)
OWN_KEYS = ("name", "version", "created_at", "files", "threshold", "alert_budget", "threshold_history")


class CalibrationError(RuntimeError):
    """The window cannot be calibrated as asked (nothing is written)."""


@dataclass
class Calibration:
    report: dict[str, Any]
    version: ModelVersion


def pick_threshold(top: list[float], slots: int) -> float:
    """A threshold with at most ``slots`` of the values strictly above it, as many as ties allow.

    ``top`` holds the largest ``slots + 1`` (or fewer) values, descending. No slot: above the
    largest value; more slots than values: 0 (every value above it, for non-negative scores).
    """
    if slots <= 0:
        return math.nextafter(top[0], math.inf) if top else 0.0
    if len(top) <= slots:
        return 0.0
    return float(top[slots])


def user_days(scored: DataFrame) -> DataFrame:
    """One row per (dt, user): blocked (any session BLOCK) and, over the unblocked sessions, the highest scores."""
    unblocked = F.col("decision") != "BLOCK"
    return scored.groupBy("dt", review.case_key().alias("case_user")).agg(
        F.max((F.col("decision") == "BLOCK").cast("int")).alias("blocked"),
        *[F.max(F.when(unblocked, F.col(c))).alias(c) for c in KNOBS],
    )


def _flagged(knob: str, value: float) -> F.Column:
    return (F.col("decision") == "BLOCK") | (F.col(knob) > F.lit(value))


def measure(cases: DataFrame, scored: DataFrame, truth: DataFrame | None, knob: str, value: float, days: int):
    """Cases per day, sessions flagged, and (with truth) precision and recall at ``knob > value``."""
    per_day = {
        r["dt"]: int(r["n"])
        for r in cases.where((F.col("blocked") == 1) | (F.col(knob) > F.lit(value)))
        .groupBy("dt")
        .agg(F.count("*").alias("n"))
        .collect()
    }
    flagged = scored.withColumn("flagged", _flagged(knob, value).cast("int"))
    out: dict[str, Any] = {
        "threshold": value,
        "cases_per_day": sum(per_day.values()) / days,
        "cases_by_day": per_day,
        "sessions_flagged": int(flagged.agg(F.sum("flagged")).first()[0] or 0),
    }
    if truth is not None:
        judged = flagged.join(truth, ["dt", "session_id"], "inner")
        row = judged.agg(
            F.count("*").alias("judged"),
            F.sum("is_attack").alias("attacks"),
            F.sum("flagged").alias("flagged"),
            F.sum(F.col("flagged") * F.col("is_attack")).alias("caught"),
        ).first()
        by_case = (
            judged.where(F.col("flagged") == 1)
            .groupBy("dt", review.case_key())
            .agg(F.max("is_attack").alias("attack"))
            .agg(F.count("*").alias("cases"), F.sum("attack").alias("attack_cases"))
            .first()
        )
        caught, flagged_n, attacks = int(row["caught"] or 0), int(row["flagged"] or 0), int(row["attacks"] or 0)
        out.update(
            {
                "sessions_judged": int(row["judged"]),
                "attacks": attacks,
                "attacks_flagged": caught,
                "precision": caught / flagged_n if flagged_n else None,
                "recall": caught / attacks if attacks else None,
                "case_precision": (int(by_case["attack_cases"] or 0) / by_case["cases"]) if by_case["cases"] else None,
            }
        )
    return out


def source_version(scored: DataFrame, cfg: Config) -> ModelVersion:
    """The one autoencoder version that scored the window (ae_error of two versions cannot share a threshold)."""
    versions = sorted(r[0] for r in scored.select("ae_model_version").distinct().collect())
    if len(versions) != 1:
        raise CalibrationError(
            f"the window was scored by {len(versions)} autoencoder versions ({', '.join(versions) or 'none'}): "
            "calibrate a window scored by one version (rescore the other days first)"
        )
    return artifacts.load_version(cfg.path("models"), contract.AE_MODEL, versions[0])


def history(source: ModelVersion) -> list[dict[str, Any]]:
    """The source's own history plus the source itself, oldest first."""
    earlier = list(source.manifest.get("threshold_history") or [])
    budget = source.manifest.get("alert_budget") or {}
    entry = {
        "version": source.version,
        "threshold": source.threshold,
        "set_by": "calibrate" if budget else "training",
        "created_at": source.manifest.get("created_at"),
    }
    if budget:
        entry.update(
            {
                "capacity": budget.get("capacity"),
                "window": [budget.get("start_date"), budget.get("end_date")],
                "risk_score_cut": budget.get("risk_score_cut"),
            }
        )
    return [*earlier, entry]


def calibrate(
    spark: SparkSession,
    cfg: Config,
    start: dt.date,
    end: dt.date,
    capacity: int,
    truth: str | None = "labels",
    promote: bool = False,
) -> Calibration:
    """Pick the thresholds for ``capacity`` cases a day over the window, measure them, write the new version."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 case a day, got {capacity}")
    if truth not in (None, *evaluation.TRUTHS):
        raise ValueError(f"truth must be one of {evaluation.TRUTHS} or None, got {truth!r}")
    days = inputs.days(start, end)
    scored = (
        tables.read_days(
            spark, cfg, "scored_sessions", start, end, lambda d: f"not scored (run `raksha score --date {d}` first)"
        )
        .select("dt", "session_id", "user_id", "decision", *KNOBS, "ae_model_version", "seq_model_version")
        .persist()
    )
    try:
        source = source_version(scored, cfg)
        seq_versions = sorted(r[0] for r in scored.select("seq_model_version").distinct().collect())
        cases = user_days(scored).persist()
        try:
            budget = capacity * len(days)
            blocked = cases.where(F.col("blocked") == 1).count()
            slots = budget - blocked
            picked: dict[str, float] = {}
            for score, knob in KNOBS.items():
                top = [
                    float(r[0])
                    for r in cases.where((F.col("blocked") == 0) & F.col(score).isNotNull())
                    .select(score)
                    .orderBy(F.col(score).desc())
                    .limit(max(slots, 0) + 1)
                    .collect()
                ]
                picked[knob] = pick_threshold(top, slots)
            truth_frame = _truth(spark, cfg, start, end, truth)
            measured = {
                knob: measure(cases, scored, truth_frame, score, picked[knob], len(days))
                for score, knob in KNOBS.items()
            }
            current = measure(cases, scored, truth_frame, "ae_error", float(source.threshold), len(days))
            user_day_count = cases.count()
        finally:
            cases.unpersist()
        sessions = scored.count()
    finally:
        scored.unpersist()

    notes = []
    if slots <= 0:
        notes.append(
            f"blocked sessions alone make {blocked / len(days):.1f} cases a day, at or above the capacity of "
            f"{capacity}: the thresholds are set above every session (no reviews beyond the blocks)"
        )
    elif slots >= user_day_count - blocked:
        notes.append("the window has fewer user-days than the budget: every session is above the thresholds")
    report: dict[str, Any] = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "days": len(days),
        "capacity": capacity,
        "sessions": sessions,
        "user_days": user_day_count,
        "blocked_cases_per_day": blocked / len(days),
        "truth": truth,
        "source_version": source.version,
        "seq_model_versions": seq_versions,
        "ae_threshold": measured["ae_threshold"],
        "risk_score_cut": measured["risk_score_cut"],
        "current_ae_threshold": current,
        "notes": notes,
    }
    version = write_calibrated(cfg, source, report, promote)
    report["version"] = version.version
    report["promoted"] = promote
    log.info("calibrated %s/%s from %s", version.name, version.version, source.version)
    return Calibration(report, version)


def _truth(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, truth: str | None) -> DataFrame | None:
    if truth is None:
        return None
    if truth == "labels":
        frame = evaluation.labels_truth(spark, cfg, start, end)
    elif not spark.catalog.tableExists(tables.table_name(cfg, "verdicts")):
        log.warning("calibrate: no verdicts table: precision and recall are left out")
        return None
    else:
        frame = evaluation.verdicts_truth(spark, cfg, start, end)
    return frame.select("dt", "session_id", "is_attack")


def write_calibrated(cfg: Config, source: ModelVersion, report: dict[str, Any], promote: bool) -> ModelVersion:
    """The source's files under a new version with the calibrated threshold, cut and history."""
    kept = {k: v for k, v in source.manifest.items() if k not in OWN_KEYS}
    if source.manifest.get("reference") is None:  # a legacy version: keep its risk_score scale
        kept.setdefault("fallback_threshold", source.threshold)
    budget = {
        key: report[key]
        for key in ("start_date", "end_date", "days", "capacity", "truth", "source_version", "seq_model_versions")
    }
    budget.update(
        {
            "risk_score_cut": report["risk_score_cut"]["threshold"],
            "ae_threshold": {k: v for k, v in report["ae_threshold"].items() if k != "cases_by_day"},
            "combined": {k: v for k, v in report["risk_score_cut"].items() if k != "cases_by_day"},
            "blocked_cases_per_day": report["blocked_cases_per_day"],
        }
    )
    fields = {
        **kept,
        "threshold": report["ae_threshold"]["threshold"],
        "alert_budget": budget,
        "threshold_history": history(source),
    }
    return artifacts.write_version(cfg.path("models"), contract.AE_MODEL, source.files, fields, promote_it=promote)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_calibration(result: Calibration) -> None:
    r = result.report
    print(
        f"calibrate {r['start_date']} .. {r['end_date']}: capacity {r['capacity']} cases a day, "
        f"{r['sessions']} sessions, {r['user_days']} user-days, {r['blocked_cases_per_day']:.1f} blocked cases a day"
    )
    truth = f" (truth: {r['truth']})" if r["truth"] else ""
    header = ("threshold", 12), ("cases/day", 11), ("sessions", 10), ("precision", 11), ("recall", 8), ("case prec", 11)
    print("  " + " " * 28 + "".join(f"{title:>{width}}" for title, width in header))
    rows = (
        ("current ae_threshold", r["current_ae_threshold"]),
        ("new ae_threshold", r["ae_threshold"]),
        ("new risk_score_cut", r["risk_score_cut"]),
    )
    for label, m in rows:
        print(
            f"  {label:<28}{m['threshold']:>12.6g}{m['cases_per_day']:>11.1f}{m['sessions_flagged']:>10}"
            f"{_fmt(m.get('precision')):>11}{_fmt(m.get('recall')):>8}{_fmt(m.get('case_precision')):>11}"
        )
    for note in r["notes"]:
        print(f"  note: {note}")
    promote = f"raksha promote --model {contract.AE_MODEL} --version {r['version']}"
    state = "promoted" if r["promoted"] else f"not promoted: {promote}"
    print(f"  wrote {contract.AE_MODEL}/{r['version']} from {r['source_version']} ({state}){truth}")
