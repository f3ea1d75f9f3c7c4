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

from raksha import contract, model_cache
from raksha.artifacts import ModelVersion
from raksha.sequences import last_window

AE_RESULT = T.StructType(
    [
        T.StructField("ae_error", T.DoubleType()),
        T.StructField("ae_threshold", T.DoubleType()),
        T.StructField("ae_is_anomaly", T.IntegerType()),
        T.StructField("ae_risk_percent", T.DoubleType()),
        T.StructField("ae_reasons", T.ArrayType(contract.REASON_TYPE)),
    ]
)
SEQ_RESULT = T.StructType(
    [
        T.StructField("seq_risk", T.DoubleType()),
        T.StructField("seq_is_block", T.IntegerType()),
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

        scorer = model_cache.get(model.key, lambda: BehaviorScorer(model.broadcast.value), threads, counter)
        for features in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score(features)

    return F.pandas_udf(score_behavior, AE_RESULT)


def sequence_udf(model: BroadcastModel, threads: int, counter: Any):
    def score_sequences(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from raksha.scorers import SequenceScorer

        scorer = model_cache.get(model.key, lambda: SequenceScorer(model.broadcast.value), threads, counter)
        for windows in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score(windows)

    return F.pandas_udf(score_sequences, SEQ_RESULT)


def features_struct() -> Column:
    return F.struct(*[F.col(c) for c in contract.FEATURES])


def score_behavior(sessions: DataFrame, model: BroadcastModel, threads: int, counter: Any) -> DataFrame:
    """``sessions`` plus the autoencoder's columns (ae_error ... ae_reasons)."""
    udf = behavior_udf(model, threads, counter)
    return sessions.withColumn("_ae", udf(features_struct())).select("*", "_ae.*").drop("_ae")


def score_sequences(sessions: DataFrame, model: BroadcastModel, threads: int, counter: Any) -> DataFrame:
    """``sessions`` (with ``action_tokens``) plus seq_risk and seq_is_block.

    Each distinct last-10 window is scored once and joined back: action sequences repeat
    heavily, so a day has far fewer distinct windows than sessions.
    """
    udf = sequence_udf(model, threads, counter)
    with_window = sessions.withColumn("seq_window", last_window(F.col("action_tokens")))
    windows = with_window.select("seq_window").distinct()
    scored = windows.withColumn("_seq", udf(F.col("seq_window"))).select("seq_window", "_seq.*")
    return with_window.join(scored, on="seq_window", how="left").drop("seq_window")
