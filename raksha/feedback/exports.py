"""Retraining exports: ``raksha export-retraining --start-date D1 --end-date D2``.

Two tables, partitioned by dt and published like every other output (``raksha.platform.tables``: selected,
audited, then the window's days replaced by one Delta commit per table):

- ``retrain_behavior``: sessions to retrain the autoencoder on. A session is exported when its
  current verdict is ``legit`` (``selection_reason = 'legit_verdict'``), or when it has no verdict
  at all, was allowed (``decision = 'ALLOW'``), was not an autoencoder anomaly and scored a
  ``risk_score`` below ``exports.behavior_max_risk_score`` (``'unflagged_low_score'``). A session
  whose verdict is ``fraud`` or ``unsure`` is never exported here. Columns: session_id, user_id
  (HMAC-SHA256 pseudonym), the 30 features as the input sessions held them (location rounded and
  network ids dropped as ``raksha.decide.privacy`` says for analyst outputs), selection_reason, run_id.
- ``retrain_sequences``: labelled action sequences for the sequence model. Sessions with a
  ``fraud`` (label 1) or ``legit`` (label 0) verdict, weight 1, ``source = 'verdict'``; the review
  queue's audit sample (``audit = true``) labelled by its verdict, with weight
  ``1 / review.audit_rate`` (each audited ALLOW session stands for that many ALLOW sessions),
  ``source = 'audit'``. A session both audited and reviewed is exported once, as ``audit``.
  ``unsure`` verdicts and audited sessions without a verdict are left out and counted in the
  manifest. Columns: session_id, action_tokens (all the session's actions of its day, as
  ``raksha.features.sequences.session_sequences`` orders and encodes them), label, weight, source, run_id.

Each table gets a manifest per export, ``{paths.warehouse}/{table}/_manifests/{D1}_{D2}.json``
(outside every ``dt=`` folder, so readers of the table see rows only): the window, the run id,
counts per day, per label and per source (or selection reason), the model versions that scored
the exported sessions and the selection rules. Every day of the window must have been scored.
The export refuses to publish unless the staged rows reconcile with the counts taken from
scored_sessions, the verdicts and the review queue, and no session appears twice.

User ids are exported only as pseudonyms: without a key in the environment variable named by
``privacy.pseudonym_key_env`` the export fails before reading anything.

This module is the Spark side (reading the window, selecting the rows, publishing them under the
window's locks); the rules' description, the expected counts, the reconciliation and the manifests
are ``raksha.feedback.export_rules``; the printed summary is ``raksha.feedback.reports``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide import privacy
from raksha.features.sequences import session_sequences
from raksha.feedback import export_rules as rules
from raksha.feedback.export_rules import (
    BEHAVIOR_TABLE,
    EXPORT_TABLES,
    LEGIT_VERDICT,
    SEQUENCES_TABLE,
    SOURCE_AUDIT,
    SOURCE_VERDICT,
    UNFLAGGED_LOW_SCORE,
    ExportResult,
)
from raksha.ingest import inputs
from raksha.platform import locks, runs, tables
from raksha.platform.storage import Storage

log = logging.getLogger(__name__)


def manifest_path(cfg: Config, table: str, start: dt.date, end: dt.date) -> str:
    return f"{tables.table_location(cfg, table)}/_manifests/{start.isoformat()}_{end.isoformat()}.json"


def require_key(cfg: Config) -> bytes:
    key = privacy.pseudonym_key(cfg)
    if key is None:
        env = cfg.get("privacy.pseudonym_key_env")
        raise privacy.PrivacyError(
            f"exports: environment variable {env} (privacy.pseudonym_key_env) holds no key; "
            "user ids are exported only as HMAC-SHA256 pseudonyms, so set it (never in the config or the repository)"
        )
    return key


def scored_window(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """scored_sessions of the window; a day that was not scored is an error naming it."""

    def missing(day: dt.date) -> str:
        return f"not scored (run `raksha score --date {day}` before exporting)"

    return tables.read_days(spark, cfg, "scored_sessions", start, end, missing)


def current_verdicts(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, verdict (the current one); none when no verdict ever landed."""
    from raksha.feedback.verdicts import read_verdicts

    if not spark.catalog.tableExists(tables.table_name(cfg, "verdicts")):
        log.warning("exports: no verdicts table yet: no legit or labelled sessions to export")
        return spark.createDataFrame([], "dt string, session_id string, verdict string")
    return read_verdicts(spark, cfg, start, end).select("dt", "session_id", "verdict")


def audit_sample(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id of the review queue's audit rows in the window."""
    name = tables.table_name(cfg, "review_queue")
    if not spark.catalog.tableExists(name):
        return spark.createDataFrame([], "dt string, session_id string")
    return (
        spark.table(name)
        .where(F.col("dt").between(start.isoformat(), end.isoformat()) & F.col("audit"))
        .select("dt", "session_id")
        .distinct()
    )


def input_features(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id and the 30 features of the window's valid input sessions (as the job kept them)."""
    from raksha.training.window import valid_sessions

    return valid_sessions(spark, cfg, start, end).select("dt", "session_id", *contract.FEATURES)


def input_sequences(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, action_tokens from each day's action log (the actions the day's scoring saw)."""
    frames = [
        session_sequences(inputs.read_actions(spark, cfg.path("actions"), day))
        .select("session_id", "action_tokens")
        .withColumn("dt", F.lit(day.isoformat()))
        for day in inputs.days(start, end)
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _quiet(cfg: Config) -> Column:
    """Allowed, not an autoencoder anomaly and under ``exports.behavior_max_risk_score``."""
    cut = float(cfg.get("exports.behavior_max_risk_score"))
    return (F.col("decision") == "ALLOW") & (F.col("ae_is_anomaly") == 0) & (F.col("risk_score") < F.lit(cut))


def behavior_rows(scored: DataFrame, verdicts: DataFrame, features: DataFrame, cfg: Config, key: bytes) -> DataFrame:
    """retrain_behavior's rows (with dt and the model versions that scored them)."""
    judged = scored.join(verdicts, ["dt", "session_id"], "left")
    reason = (
        F.when(F.col("verdict") == "legit", F.lit(LEGIT_VERDICT))
        .when(F.col("verdict").isNull() & _quiet(cfg), F.lit(UNFLAGGED_LOW_SCORE))
        .otherwise(F.lit(None))
    )
    selected = judged.withColumn("selection_reason", reason).where(F.col("selection_reason").isNotNull())
    return (
        selected.select("dt", "session_id", "user_id", "selection_reason", *rules.VERSION_COLUMNS)
        .join(features, ["dt", "session_id"], "inner")
        .select(
            "dt",
            "session_id",
            privacy.pseudonymize(F.col("user_id"), key).alias("user_id"),
            *[privacy.coarsen_column(c, cfg) for c in contract.FEATURES],
            "selection_reason",
            *rules.VERSION_COLUMNS,
        )
    )


def sequence_rows(
    scored: DataFrame, verdicts: DataFrame, audited: DataFrame, sequences: DataFrame, cfg: Config
) -> DataFrame:
    """retrain_sequences' rows (with dt and the model versions that scored them)."""
    weight = rules.audit_weight(float(cfg.get("review.audit_rate"))) or 0.0
    labelled = verdicts.where(F.col("verdict").isin("fraud", "legit"))
    is_audit = F.col("audit").isNotNull()
    return (
        scored.select("dt", "session_id", *rules.VERSION_COLUMNS)
        .join(labelled, ["dt", "session_id"], "inner")
        .join(audited.withColumn("audit", F.lit(True)), ["dt", "session_id"], "left")
        .join(sequences, ["dt", "session_id"], "left")
        .select(
            "dt",
            "session_id",
            F.coalesce("action_tokens", F.array().cast("array<int>")).alias("action_tokens"),
            (F.col("verdict") == "fraud").cast("int").alias("label"),
            F.when(is_audit, F.lit(weight)).otherwise(F.lit(1.0)).alias("weight"),
            F.when(is_audit, F.lit(SOURCE_AUDIT)).otherwise(F.lit(SOURCE_VERDICT)).alias("source"),
            *rules.VERSION_COLUMNS,
        )
    )


def _counts(frame: DataFrame, column: str) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in frame.groupBy(column).count().orderBy(column).collect()}


def _staged(rows: DataFrame, table: str, window: list[dt.date]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The summary and the model versions of a table's staged rows (counted by Spark, summed by pandas)."""
    sums = [F.count("*").alias("rows")]
    if "weight" in rows.columns:
        sums.append(F.sum("weight").alias("weight"))
    groups = rows.groupBy("dt", *rules.SUMMARY_BY[table], *rules.VERSION_COLUMNS).agg(*sums).toPandas()
    sessions = rows.agg(F.count_distinct("session_id")).first()[0]
    return rules.summary(groups, sessions, window, rules.SUMMARY_BY[table]), rules.model_versions(groups)


def export_retraining(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, now: dt.datetime | None = None
) -> ExportResult:
    """Select, stage, audit and publish both exports of the window, then write their manifests."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    key = require_key(cfg)
    audit_rate = float(cfg.get("review.audit_rate"))
    if not 0.0 <= audit_rate <= 1.0:
        raise ValueError(f"review.audit_rate must lie in [0, 1], got {audit_rate}")
    now = now or dt.datetime.now(dt.UTC)
    run_id = runs.new_run_id("export", now)
    log.info("export %s: %s .. %s", run_id, start, end)
    window = list(inputs.days(start, end))
    with locks.hold(spark, cfg, [locks.date_key(t, d) for t in EXPORT_TABLES for d in window], run_id):
        result = _export(spark, cfg, ExportResult(run_id, start, end), now, key, audit_rate)
    storage = Storage(spark)
    for table, manifest in result.manifests.items():
        result.manifest_paths[table] = storage.write_json(manifest_path(cfg, table, start, end), manifest)
    return result


def _export(
    spark: SparkSession, cfg: Config, result: ExportResult, now: dt.datetime, key: bytes, audit_rate: float
) -> ExportResult:
    start, end, run_id = result.start, result.end, result.run_id
    scored = scored_window(spark, cfg, start, end).select(
        "dt", "session_id", "user_id", "decision", "ae_is_anomaly", "risk_score", *rules.VERSION_COLUMNS
    )
    verdicts = current_verdicts(spark, cfg, start, end)
    audited = audit_sample(spark, cfg, start, end)
    scored = scored.persist()
    judged = scored.select("dt", "session_id").join(verdicts, ["dt", "session_id"], "inner").persist()
    behavior = (
        behavior_rows(scored, verdicts, input_features(spark, cfg, start, end), cfg, key)
        .withColumn("run_id", F.lit(run_id))
        .persist()
    )
    sequences = (
        sequence_rows(scored, verdicts, audited, input_sequences(spark, cfg, start, end), cfg)
        .withColumn("run_id", F.lit(run_id))
        .persist()
    )
    try:
        # expected counts, from scored_sessions, the verdicts and the review queue
        verdict_counts = _counts(judged, "verdict")
        audit_rows = audited.join(scored.select("dt", "session_id"), ["dt", "session_id"], "left_semi")
        audit_judged = audit_rows.join(judged, ["dt", "session_id"], "left")
        audit_counts = _counts(audit_judged.fillna({"verdict": "none"}), "verdict")
        unflagged = scored.join(verdicts, ["dt", "session_id"], "left_anti").where(_quiet(cfg)).count()
        expected = rules.expected_counts(verdict_counts, audit_counts, unflagged)
        rules.check_audit_weight(expected, audit_rate)

        window = list(inputs.days(start, end))
        staged, versions = {}, {}
        for table, rows in ((BEHAVIOR_TABLE, behavior), (SEQUENCES_TABLE, sequences)):
            staged[table], versions[table] = _staged(rows, table, window)
        rules.reconcile(staged, expected, start, end)

        for table, rows in ((BEHAVIOR_TABLE, behavior), (SEQUENCES_TABLE, sequences)):
            tables.publish_days(spark, cfg, table, rows, window, run_id)

        names = {table: tables.table_name(cfg, table) for table in EXPORT_TABLES}
        result.manifests.update(
            rules.manifests(cfg, result, now, names, staged, versions, verdict_counts, audit_counts)
        )
    finally:
        for frame in (scored, judged, behavior, sequences):
            frame.unpersist()
    return result


# --- reading an export back (training with --from-export) ---


def read_export(spark: SparkSession, cfg: Config, table: str, start: dt.date, end: dt.date) -> DataFrame:
    """The export's rows of the window (with dt); a day not exported is an error naming it."""
    return tables.read_days(
        spark,
        cfg,
        table,
        start,
        end,
        lambda _: f"not exported (run `raksha export-retraining --start-date {start} --end-date {end}` first)",
    )
