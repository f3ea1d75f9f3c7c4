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

from raksha import contract
from raksha.features.behavior import REASON_FIELDS, reason_columns
from raksha.models.artifacts import ModelVersion
from raksha.platform import failpoints
from raksha.scoring import model_cache
from raksha.scoring.scorers import TOP_REASONS

SEQ_RESULT = T.StructType(
    [
        T.StructField("seq_risk", T.DoubleType()),
        T.StructField("seq_is_block", T.IntegerType()),
        T.StructField("seq_risk_max", T.DoubleType()),
        T.StructField("seq_risk_max_at", T.IntegerType()),
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
        # the top reasons as flat columns (features.ae_reasons), nested into ae_reasons in Spark SQL:
        # handing Spark an array of structs from pandas would convert it row by row in Python
        *[
            T.StructField(name, contract.REASON_TYPE[name.rsplit("_", 1)[1]].dataType)
            for name in reason_columns("ae_reason", TOP_REASONS)
        ],
    ]
)


# What score_models adds to a session (after the reasons are nested).
AE_COLUMNS = [f for f in AE_RESULT.fields if not f.name.startswith("ae_reason_")] + [
    T.StructField("ae_reasons", T.ArrayType(contract.REASON_TYPE))
]
SEQ_COLUMNS = list(SEQ_RESULT.fields)


@dataclass(frozen=True)
class BroadcastModel:
    """What a UDF closure carries: the broadcast bytes, the runtime to run them with
    (``raksha.models.runtimes``) and the cache key, nothing heavy."""

    name: str
    key: tuple[str, ...]
    broadcast: Any
    runtime: str

    @classmethod
    def of(cls, spark: SparkSession, version: ModelVersion, runtime: str, name: str | None = None) -> BroadcastModel:
        key = model_cache.cache_key(name or version.name, version.version, version.checksums, runtime)
        return cls(name or version.name, key, spark.sparkContext.broadcast(version), runtime)

    def behavior(self, threads: int):
        from raksha.scoring.scorers import BehaviorScorer

        return BehaviorScorer(self.broadcast.value, self.runtime, threads)

    def sequence(self, threads: int):
        from raksha.scoring.scorers import SequenceScorer

        return SequenceScorer(self.broadcast.value, self.runtime, threads)


def behavior_udf(model: BroadcastModel, threads: int, counter: Any):
    def score_behavior(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        failpoints.hit_in_task("score_behavior")
        scorer = model_cache.get(model.key, lambda: model.behavior(threads), counter)
        for features in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score(features)

    return F.pandas_udf(score_behavior, AE_RESULT)


def sequence_udf(model: BroadcastModel, threads: int, counter: Any):
    def score_sessions(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        failpoints.hit_in_task("score_sequences")
        scorer = model_cache.get(model.key, lambda: model.sequence(threads), counter)
        for sequences in batches:
            model_cache.note_batch(counter, model.name)
            yield scorer.score_sessions(sequences)

    return F.pandas_udf(score_sessions, SEQ_RESULT)


MODELS_RESULT = T.StructType([*AE_RESULT.fields, *SEQ_RESULT.fields])


def models_udf(ae_model: BroadcastModel, seq_model: BroadcastModel, threads: int, counter: Any):
    """Both models in one UDF: one Python worker per task runs both, so each worker imports the model
    runtime and deserializes the models once, and each batch crosses to Python once."""

    def score_models(batches: Iterator[tuple[pd.DataFrame, pd.Series]]) -> Iterator[pd.DataFrame]:
        failpoints.hit_in_task("score_behavior")
        failpoints.hit_in_task("score_sequences")
        behavior = model_cache.get(ae_model.key, lambda: ae_model.behavior(threads), counter)
        sequence = model_cache.get(seq_model.key, lambda: seq_model.sequence(threads), counter)
        for features, sequences in batches:
            model_cache.note_batch(counter, ae_model.name)
            model_cache.note_batch(counter, seq_model.name)
            ae = behavior.score(features)
            seq = sequence.score_sessions(sequences)
            yield pd.concat([ae, seq.set_axis(ae.index)], axis=1)

    return F.pandas_udf(score_models, MODELS_RESULT)


def features_struct() -> Column:
    return F.struct(*[F.col(c) for c in contract.FEATURES])


def score_models(
    sessions: DataFrame, ae_model: BroadcastModel, seq_model: BroadcastModel, threads: int, counter: Any
) -> DataFrame:
    """``sessions`` (with the features and ``action_tokens``) plus both models' columns (``AE_COLUMNS``,
    ``SEQ_COLUMNS``), from one UDF."""
    return with_model_columns(sessions, models_udf(ae_model, seq_model, threads, counter))


def with_model_columns(sessions: DataFrame, udf) -> DataFrame:
    """``sessions`` plus the columns of a UDF returning ``MODELS_RESULT`` from the features and the
    action tokens, the autoencoder's flat reason columns nested into ``ae_reasons``."""
    scored = sessions.withColumn("_m", udf(features_struct(), F.col("action_tokens")))
    return (
        scored.select("*", "_m.*")
        .drop("_m")
        .withColumn("ae_reasons", nested_reasons("ae_reason", TOP_REASONS))
        .drop(*reason_columns("ae_reason", TOP_REASONS))
    )


def nested_reasons(prefix: str, top: int) -> Column:
    """The flat reason columns as an array of reason structs (those present, in order)."""
    candidates = F.array(
        *[
            F.struct(*[F.col(f"{prefix}_{k}_{field}").alias(field) for field in REASON_FIELDS])
            for k in range(1, top + 1)
        ]
    )
    return F.filter(candidates, lambda r: r["code"].isNotNull())


def score_sequences(sessions: DataFrame, model: BroadcastModel, threads: int, counter: Any) -> DataFrame:
    """``sessions`` (with ``action_tokens``) plus the sequence model's columns.

    seq_risk, seq_is_block: the notebook's score of the last 10 actions.
    seq_risk_max, seq_risk_max_at (the action at which it peaked), seq_surprise: the riskiest
    window of up to 10 actions, so an attack in the middle of a long session is not missed (and
    ranks in risk_score). seq_reasons: the steps that drove the riskiest window, with their
    positions in the session.

    One pandas UDF over each session's whole action list (``SequenceScorer.score_sessions``): the
    windows are built in numpy in the Python worker, and since action sequences repeat heavily
    each distinct window of a batch is run through the model once; no window is shuffled through
    Spark.
    """
    udf = sequence_udf(model, threads, counter)
    return sessions.withColumn("_seq", udf(F.col("action_tokens"))).select("*", "_seq.*").drop("_seq")
