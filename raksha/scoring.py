"""Applying the two models to a day in Spark: pandas UDFs in iterator form.

The driver reads and verifies each model version once and broadcasts its bytes; each Python
worker deserializes it once through ``model_cache`` and then scores whole Arrow batches
(``spark.sql.execution.arrow.maxRecordsPerBatch`` rows) with no per-row model call. The pandas
core of each UDF is ``BehaviorScorer.score`` / ``SequenceScorer.score``, testable without Spark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract, failpoints, model_cache
from raksha.artifacts import ModelVersion

SEQ_RESULT = T.StructType(
    [
        T.StructField("seq_risk", T.DoubleType()),
        T.StructField("seq_is_block", T.IntegerType()),
        T.StructField("seq_surprise", T.DoubleType()),
        T.StructField("seq_reasons", T.ArrayType(contract.REASON_TYPE)),
    ]
)
AE_RESULT = T.StructType(
    [
        T.StructField("ae_error", T.DoubleType()),
        T.StructField("ae_threshold", T.DoubleType()),
        T.StructField("ae_is_anomaly", T.IntegerType()),
        T.StructField("ae_risk_percent", T.DoubleType()),
        T.StructField("ae_surprise", T.DoubleType()),
        T.StructField("ae_reasons", T.ArrayType(contract.REASON_TYPE)),
    ]
)


@dataclass(frozen=True)
class BroadcastModel:
    """What a UDF closure carries: the broadcast bytes and the cache key, nothing heavy."""

    name: str
    key: tuple[str, ...]
    broadcast: Any

    @classmethod
    def of(cls, spark: SparkSession, version: ModelVersion) -> BroadcastModel:
        key = model_cache.cache_key(version.name, version.version, version.checksums)
        return cls(version.name, key, spark.sparkContext.broadcast(version))


def behavior_udf(model: BroadcastModel, threads: int, counter: Any):
    def score_behavior(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from raksha.scorers import BehaviorScorer

        failpoints.hit_in_task("score_behavior")
        scorer = model_cache.get(model.key, lambda: BehaviorScorer(model.broadcast.value), threads, counter)
        for features in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score(features)

    return F.pandas_udf(score_behavior, AE_RESULT)


def sequence_udf(model: BroadcastModel, threads: int, counter: Any):
    def score_windows(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from raksha.scorers import SequenceScorer

        failpoints.hit_in_task("score_sequences")
        scorer = model_cache.get(model.key, lambda: SequenceScorer(model.broadcast.value), threads, counter)
        for windows in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score(windows)

    return F.pandas_udf(score_windows, SEQ_RESULT)


def features_struct() -> Column:
    return F.struct(*[F.col(c) for c in contract.FEATURES])


def score_behavior(sessions: DataFrame, model: BroadcastModel, threads: int, counter: Any) -> DataFrame:
    """``sessions`` plus the autoencoder's columns (ae_error ... ae_reasons)."""
    udf = behavior_udf(model, threads, counter)
    return sessions.withColumn("_ae", udf(features_struct())).select("*", "_ae.*").drop("_ae")


def _windows(sessions: DataFrame) -> DataFrame:
    """session_id, window_end, window_offset, seq_window: what the notebook would score at each action.

    For every action j of a session, the window is the last (up to) 10 actions up to j, i.e.
    the session as the notebook would have seen it had it ended at j. The window at the
    session's last action is the notebook's own (``seq_risk``); a session without actions has
    one empty window.
    """
    n = contract.MAX_SEQ_LENGTH
    tokens = F.col("action_tokens")
    end = F.col("window_end")
    return (
        sessions.select(
            "session_id",
            "action_tokens",
            F.explode(F.sequence(F.lit(1), F.greatest(F.size(tokens), F.lit(1)))).alias("window_end"),
        )
        .withColumn("window_offset", F.greatest(end - n, F.lit(0)))
        .select(
            "session_id",
            "window_end",
            "window_offset",
            F.slice(tokens, F.col("window_offset") + 1, F.least(end, F.lit(n))).alias("seq_window"),
        )
    )


def score_sequences(sessions: DataFrame, model: BroadcastModel, threads: int, counter: Any) -> DataFrame:
    """``sessions`` (with ``action_tokens``) plus the sequence model's columns.

    seq_risk, seq_is_block: the notebook's score of the last 10 actions.
    seq_risk_max, seq_risk_max_at (the action at which it peaked), seq_surprise: the riskiest
    window, so an attack in the middle of a long session is not missed (and ranks in risk_score).
    seq_reasons: the steps that drove the riskiest window, with their positions in the session.

    Action sequences repeat heavily, so each distinct window is scored once and joined back.
    """
    udf = sequence_udf(model, threads, counter)
    windows = _windows(sessions)
    scored = (
        windows.select("seq_window")
        .distinct()
        .withColumn("_seq", udf(F.col("seq_window")))
        .select("seq_window", "_seq.*")
    )
    per_window = windows.join(scored, on="seq_window", how="inner")
    peak_key = F.struct(F.col("seq_risk"), -F.col("window_end"))  # riskiest, then earliest
    shifted = F.transform(
        "seq_reasons",
        lambda r: r.withField("value", r["value"] + F.col("window_offset")).withField(
            "code",
            F.when(F.col("window_offset") > 0, F.regexp_replace(r["code"], "^START -> ", "EARLIER -> ")).otherwise(
                r["code"]
            ),
        ),
    )
    per_session = per_window.groupBy("session_id").agg(
        F.max_by(F.struct("seq_risk", "seq_is_block"), "window_end").alias("_last"),
        F.max_by(
            F.struct(
                F.col("seq_risk").alias("seq_risk_max"),
                F.col("window_end").cast("int").alias("seq_risk_max_at"),
                F.col("seq_surprise"),
                shifted.alias("seq_reasons"),
            ),
            peak_key,
        ).alias("_peak"),
    )
    return sessions.join(per_session.select("session_id", "_last.*", "_peak.*"), on="session_id", how="left")
