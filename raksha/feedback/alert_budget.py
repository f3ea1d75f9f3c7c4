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

This module is the Spark side (reading the window, the user-days, the counts at a threshold); the
threshold picked from the largest scores, the figures, the report and the new version are
``raksha.feedback.thresholds``; the printed table is ``raksha.feedback.reports``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide import review
from raksha.evaluation import window as evaluation
from raksha.feedback.thresholds import (
    KNOBS,
    Calibration,
    calibration_report,
    figures,
    one_version,
    pick_threshold,
    write_calibrated,
)
from raksha.ingest import inputs
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion
from raksha.platform import tables
from raksha.platform.storage import Storage

log = logging.getLogger(__name__)


def user_days(scored: DataFrame) -> DataFrame:
    """One row per (dt, user): blocked (any session BLOCK) and, over the unblocked sessions, the highest scores."""
    unblocked = F.col("decision") != "BLOCK"
    return scored.groupBy("dt", review.case_key().alias("case_user")).agg(
        F.max((F.col("decision") == "BLOCK").cast("int")).alias("blocked"),
        *[F.max(F.when(unblocked, F.col(c))).alias(c) for c in KNOBS],
    )


def _flagged(knob: str, value: float) -> F.Column:
    return (F.col("decision") == "BLOCK") | (F.col(knob) > F.lit(value))


def measure(
    cases: DataFrame, scored: DataFrame, truth: DataFrame | None, knob: str, value: float, days: int
) -> dict[str, Any]:
    """Cases per day, sessions flagged, and (with truth) precision and recall at ``knob > value``."""
    per_day = {
        r["dt"]: int(r["n"])
        for r in cases.where((F.col("blocked") == 1) | (F.col(knob) > F.lit(value)))
        .groupBy("dt")
        .agg(F.count("*").alias("n"))
        .collect()
    }
    flagged = scored.withColumn("flagged", _flagged(knob, value).cast("int"))
    sessions_flagged = int(flagged.agg(F.sum("flagged")).first()[0] or 0)
    counts = None
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
        counts = {k: int(row[k] or 0) for k in ("judged", "attacks", "flagged", "caught")}
        counts.update({k: int(by_case[k] or 0) for k in ("cases", "attack_cases")})
    return figures(value, per_day, days, sessions_flagged, counts)


def source_version(scored: DataFrame, cfg: Config) -> ModelVersion:
    """The one autoencoder version that scored the window (ae_error of two versions cannot share a threshold)."""
    versions = sorted(r[0] for r in scored.select("ae_model_version").distinct().collect())
    store = Storage(scored.sparkSession)
    return artifacts.load_version(cfg.path("models"), contract.AE_MODEL, one_version(versions), store)


def _top(cases: DataFrame, score: str, slots: int) -> list[float]:
    """The largest ``slots + 1`` user-day maxima of ``score`` (unblocked user-days), descending."""
    return [
        float(r[0])
        for r in cases.where((F.col("blocked") == 0) & F.col(score).isNotNull())
        .select(score)
        .orderBy(F.col(score).desc())
        .limit(max(slots, 0) + 1)
        .collect()
    ]


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
    days = len(inputs.days(start, end))
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
            blocked = cases.where(F.col("blocked") == 1).count()
            slots = capacity * days - blocked
            picked = {knob: pick_threshold(_top(cases, score, slots), slots) for score, knob in KNOBS.items()}
            truth_frame = _truth(spark, cfg, start, end, truth)
            measured = {
                knob: measure(cases, scored, truth_frame, score, picked[knob], days) for score, knob in KNOBS.items()
            }
            measured["current_ae_threshold"] = measure(
                cases, scored, truth_frame, "ae_error", float(source.threshold), days
            )
            user_day_count = cases.count()
        finally:
            cases.unpersist()
        sessions = scored.count()
    finally:
        scored.unpersist()

    counts = {"days": days, "sessions": sessions, "user_days": user_day_count, "blocked": blocked, "slots": slots}
    report = calibration_report(start, end, capacity, counts, truth, source.version, seq_versions, measured)
    version = write_calibrated(cfg, source, report, promote, Storage(spark))
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
