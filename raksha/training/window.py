"""Reading a training window with Spark and handing it to the pure training code.

The autoencoder learns from sessions alone (unsupervised, as in its notebook); the sequence
model from labelled sequences: a session's label is 1 when the ground truth names an attack
kind whose action sequence is the attack (contract.SEQUENCE_ATTACK_KINDS), else 0.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.features.sequences import session_sequences
from raksha.ingest import inputs, quality

log = logging.getLogger(__name__)


def _sample(df: DataFrame, max_rows: int, seed: int) -> DataFrame:
    """At most ``max_rows`` rows, chosen by a seeded hash of session_id (reproducible)."""
    total = df.count()
    if total <= max_rows:
        return df
    fraction = max_rows / total
    bucket = (F.xxhash64("session_id", F.lit(seed)) % 1_000_000).cast("double") / 1_000_000
    return df.filter(F.abs(bucket) < fraction)


def valid_sessions(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """The window's sessions that pass the row checks (the same rules the nightly job applies)."""
    frames = []
    for day in inputs.days(start, end):
        sessions = inputs.read_sessions(spark, cfg.path("sessions"), day)
        valid, _ = quality.split_valid(quality.flag_sessions(sessions, day))
        frames.append(valid.withColumn("dt", F.lit(day.isoformat())))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def autoencoder_frame(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The window's valid sessions' 30 features as pandas, sampled to training.max_rows."""
    sessions = valid_sessions(spark, cfg, start, end)
    sampled = _sample(sessions, int(cfg.get("training.max_rows")), int(cfg.get("training.seed")))
    frame = sampled.orderBy("dt", "session_id").select(*contract.FEATURES).toPandas()
    log.info("autoencoder training rows: %d", len(frame))
    return frame


def sequence_frame(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> pd.DataFrame:
    """action_tokens and label per valid session of the window (labels from paths.labels)."""
    sessions = valid_sessions(spark, cfg, start, end).select("session_id", "dt")
    actions = inputs.read_window(spark, cfg.path("actions"), start, end, "actions", contract.ACTIONS_SCHEMA)
    labels = inputs.read_window(spark, cfg.path("labels"), start, end, "labels", contract.LABELS_SCHEMA)
    sequence_kinds = list(contract.SEQUENCE_ATTACK_KINDS)
    labelled = (
        sessions.join(session_sequences(actions), on="session_id", how="inner")
        .join(labels.select("session_id", "attack_kind"), on="session_id", how="inner")
        .withColumn("label", F.coalesce(F.col("attack_kind").isin(*sequence_kinds), F.lit(False)).cast("int"))
    )
    sampled = _sample(labelled, int(cfg.get("training.max_rows")), int(cfg.get("training.seed")))
    frame = sampled.orderBy("dt", "session_id").select("action_tokens", "label").toPandas()
    log.info("sequence training rows: %d (%d attacks)", len(frame), int(frame["label"].sum()))
    return frame


# --- from a retraining export (raksha export-retraining; --from-export) ---


def _export_info(rows: DataFrame, table: str, cfg: Config, by: str) -> dict[str, object]:
    """Where a training frame came from: the export table, the export runs and the rows per ``by``."""
    from raksha.platform import tables

    counts = {str(r[0]): int(r[1]) for r in rows.groupBy(by).count().orderBy(by).collect()}
    run_ids = sorted(r["run_id"] for r in rows.select("run_id").distinct().collect())
    return {
        "source": "export",
        "export_table": tables.table_name(cfg, table),
        "export_run_ids": run_ids,
        f"rows_by_{by}": counts,
    }


def export_autoencoder_frame(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date
) -> tuple[pd.DataFrame, dict[str, object]]:
    """The 30 features of the window's retrain_behavior rows (sampled to training.max_rows), and their lineage.

    The export shows location rounded and network ids left out (``raksha.decide.privacy``), which is
    right for the people who read it and wrong for a model: those features are read back exact
    from the input sessions (the data the scorer saw) by dt and session_id. An exported session
    that is no longer in the input is an error naming how many.
    """
    from raksha.decide import privacy
    from raksha.feedback import exports

    exact = [c for c in contract.FEATURES if c in privacy.LOCATION_FEATURES + privacy.NETWORK_FEATURES]
    rows = exports.read_export(spark, cfg, exports.BEHAVIOR_TABLE, start, end)
    sampled = _sample(rows, int(cfg.get("training.max_rows")), int(cfg.get("training.seed"))).persist()
    try:
        info = _export_info(sampled, exports.BEHAVIOR_TABLE, cfg, "selection_reason")
        restored = sampled.drop(*exact).join(
            valid_sessions(spark, cfg, start, end).select("dt", "session_id", *exact), ["dt", "session_id"], "inner"
        )
        frame = restored.orderBy("dt", "session_id").select(*contract.FEATURES).toPandas()
        missing = sum(info["rows_by_selection_reason"].values()) - len(frame)
        if missing:
            raise inputs.InputError(
                f"{info['export_table']} {start} .. {end}: {missing} exported sessions are not among the valid input "
                "sessions any more, so their exact location and network features cannot be restored"
            )
    finally:
        sampled.unpersist()
    info["features_from_input"] = exact
    log.info("autoencoder training rows from %s: %d", info["export_table"], len(frame))
    return frame, info


def export_sequence_frame(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date
) -> tuple[pd.DataFrame, dict[str, object]]:
    """action_tokens, label and weight of the window's retrain_sequences rows, and their lineage."""
    from raksha.feedback import exports

    rows = exports.read_export(spark, cfg, exports.SEQUENCES_TABLE, start, end)
    sampled = _sample(rows, int(cfg.get("training.max_rows")), int(cfg.get("training.seed"))).persist()
    try:
        info = _export_info(sampled, exports.SEQUENCES_TABLE, cfg, "source")
        frame = sampled.orderBy("dt", "session_id").select("action_tokens", "label", "weight").toPandas()
    finally:
        sampled.unpersist()
    log.info(
        "sequence training rows from %s: %d (%d attacks)", info["export_table"], len(frame), int(frame["label"].sum())
    )
    return frame, info
