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

from raksha import columns, contract
from raksha.features.behavior import REASON_FIELDS, reason_columns
from raksha.features.sequences import MAX_WINDOWS_PER_SESSION
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
        T.StructField("ae_std_error", T.DoubleType()),
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


MODELS_RESULT = T.StructType([*AE_RESULT.fields, *SEQ_RESULT.fields])


def result_type(behavior: bool, sequence: bool) -> T.StructType:
    """What ``models_udf`` returns for the models it is given."""
    return T.StructType([*(AE_RESULT.fields if behavior else []), *(SEQ_RESULT.fields if sequence else [])])


def models_udf(
    behavior: BroadcastModel | None,
    sequence: BroadcastModel | None,
    threads: int,
    counter: Any,
    max_windows_per_session: int = MAX_WINDOWS_PER_SESSION,
):
    """The one scoring UDF, for the champion pair and the challenger's (either model may be absent).

    It takes the features struct and the action tokens and returns ``result_type`` of the models
    given. One Python worker per task runs them all, so each worker imports the model runtime and
    deserializes each model once (``model_cache``), and each batch crosses to Python once. The
    sequence model scores each session's whole action list (``SequenceScorer.score_sessions``):
    the windows are built in numpy in the worker, each distinct window of a batch is run once, and
    no window is shuffled through Spark. A session's last ``max_windows_per_session`` windows are
    scored (``scoring.max_windows_per_session``), and a batch's windows in bounded groups, so no
    session and no batch can take a worker's memory.
    """
    if behavior is None and sequence is None:
        raise ValueError("models_udf needs at least one model")

    def score_models(batches: Iterator[tuple[pd.DataFrame, pd.Series]]) -> Iterator[pd.DataFrame]:
        if behavior is not None:
            failpoints.hit_in_task("score_behavior")
        if sequence is not None:
            failpoints.hit_in_task("score_sequences")
        ae = model_cache.get(behavior.key, lambda: behavior.behavior(threads), counter) if behavior else None
        seq = model_cache.get(sequence.key, lambda: sequence.sequence(threads), counter) if sequence else None
        for features, sequences in batches:
            parts = []
            if ae is not None:
                model_cache.note_batch(counter, behavior.name)
                parts.append(ae.score(features))
            if seq is not None:
                model_cache.note_batch(counter, sequence.name)
                parts.append(seq.score_sessions(sequences, max_windows_per_session=max_windows_per_session))
            yield pd.concat([p.set_axis(features.index) for p in parts], axis=1)

    return F.pandas_udf(score_models, result_type(behavior is not None, sequence is not None))


def features_struct() -> Column:
    return F.struct(*[F.col(c) for c in contract.FEATURES])


def model_inputs(behavior: bool = True, sequence: bool = True) -> tuple[Column, Column]:
    """The two inputs of ``models_udf``: the features struct and the action tokens; a typed null
    stands in for the input of an absent model, so nothing it does not need crosses to Python."""
    no_features = T.StructType([T.StructField(c, T.DoubleType()) for c in contract.FEATURES])
    return (
        features_struct() if behavior else F.lit(None).cast(no_features),
        F.col("action_tokens") if sequence else F.lit(None).cast(T.ArrayType(T.IntegerType())),
    )


def score_models(
    sessions: DataFrame,
    ae_model: BroadcastModel,
    seq_model: BroadcastModel,
    threads: int,
    counter: Any,
    max_windows_per_session: int = MAX_WINDOWS_PER_SESSION,
) -> DataFrame:
    """``sessions`` (with the features and ``action_tokens``) plus both models' columns (``AE_COLUMNS``,
    ``SEQ_COLUMNS``), from one UDF.

    ae_error, ae_threshold, ae_is_anomaly, ae_risk_percent: the autoencoder notebook's score;
    ae_std_error: the error standardised per feature against the version's held-out errors, without the
    day-of-week one-hots (null for a version without them); ae_surprise its tail calibration (of ae_error
    for such a version); ae_reasons the features that, set to their expected values, lower it most.
    seq_risk, seq_is_block: the LSTM notebook's score of the last 10 actions (blocking above the
    version's ``block_threshold``). seq_risk_max, seq_risk_max_at (the action at which it peaked),
    seq_surprise: the riskiest window of up to 10 actions, so an attack in the middle of a long
    session is not missed (and ranks in risk_score); of a session's last ``max_windows_per_session``
    windows only (``quality.session_dq_flags`` flags a longer session SEQUENCE_WINDOWS_CAPPED).
    seq_reasons: the steps that drove the riskiest window, with their positions in the session.
    """
    udf = models_udf(ae_model, seq_model, threads, counter, max_windows_per_session)
    return with_model_columns(sessions, udf)


def with_model_columns(sessions: DataFrame, udf) -> DataFrame:
    """``sessions`` plus the columns of a UDF returning ``MODELS_RESULT`` from ``model_inputs()``,
    the autoencoder's flat reason columns nested into ``ae_reasons``."""
    return (
        sessions.withColumn("_m", udf(*model_inputs()))
        .select("*", "_m.*")
        .drop("_m")
        .withColumn("ae_reasons", nested_reasons("ae_reason", TOP_REASONS))
        .drop(*reason_columns("ae_reason", TOP_REASONS))
    )


def nested_reasons(prefix: str, top: int) -> Column:
    """The flat reason columns as an array of reason structs (those present, in order; the filter, interpreted
    by Spark, runs only for a session with a reason)."""
    candidates = [
        (
            F.col(f"{prefix}_{k}_code").isNotNull(),
            F.struct(*[F.col(f"{prefix}_{k}_{field}").alias(field) for field in REASON_FIELDS]),
        )
        for k in range(1, top + 1)
    ]
    return columns.present(candidates, F.slice(F.array(*[reason for _, reason in candidates]), 1, 0))
