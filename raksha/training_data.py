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

from raksha import contract, inputs, quality
from raksha.config import Config
from raksha.sequences import session_sequences

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
    day = start
    while day <= end:
        sessions = inputs.read_sessions(spark, cfg.path("sessions"), day)
        valid, _ = quality.split_valid(quality.flag_sessions(sessions, day))
        frames.append(valid.withColumn("dt", F.lit(day.isoformat())))
        day += dt.timedelta(days=1)
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
