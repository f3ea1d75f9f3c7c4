"""The evaluated sessions reduced in Spark to the aggregates ``metrics`` turns into the report.

Nothing of the size of the window reaches the driver, only rows of the order of the kinds and
of the partitions:

- ``kind_counts``: one row per (kind, is_attack) with the sessions, the flagged, blocked and
  queued ones, and per score the sessions without one (a gap is a bug: ``evaluate`` fails);
- ``ranking``: each score's exact ROC-AUC, PR-AUC and ROC-AUC by kind. The sessions are grouped
  by score value (negatives and positives of each attack kind per distinct score: ties collapse
  as scikit-learn collapses them), range-partitioned by score descending and sorted within each
  partition (``rank_partitions``). A first pass brings each partition's totals to the driver,
  which derives what is ranked above each partition (and checks the order); a second pass,
  with those offsets broadcast, brings each partition's share of the trapezoid area and of the
  average precision. Both passes run on the same RDD, so on the same range bounds and shuffle
  output. The arithmetic is ``metrics``' (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pyspark import RDD
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from raksha import contract
from raksha.evaluation import metrics


def _number(condition: Column) -> Column:
    """How many rows of a group meet ``condition`` (null counts as not)."""
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def missing(score: str) -> str:
    """The column of ``kind_counts`` with the sessions that have no ``score`` (null or NaN)."""
    return f"missing_{score}"


def kind_counts(frame: DataFrame, scores: Sequence[str] = metrics.SCORES) -> pd.DataFrame:
    """kind, is_attack, ``metrics.KIND_COUNTS`` and ``missing(score)`` of each score: one row per
    (kind, is_attack) of ``frame`` (sessions: kind, is_attack, decision, queued (true or null), scores)."""
    decision = F.col("decision")
    counts = [
        F.count(F.lit(1)).alias("sessions"),
        _number(decision.isin(*contract.FLAGGED_DECISIONS)).alias("flagged"),
        _number(decision == "BLOCK").alias("blocked"),
        _number(F.col("queued")).alias("queued"),
        *[_number(F.col(s).isNull() | F.isnan(s)).alias(missing(s)) for s in scores],
    ]
    rows = frame.groupBy("kind", "is_attack").agg(*counts).collect()
    columns = ["kind", "is_attack", *metrics.KIND_COUNTS, *[missing(s) for s in scores]]
    return pd.DataFrame([[row[c] for c in columns] for row in rows], columns=columns)


def rank_partitions(frame: DataFrame, score: str, kinds: Sequence[str], partitions: int | None = None) -> RDD[Any]:
    """The rank rows of ``score`` (``metrics.RankRow``: score, negatives, positives of each of
    ``kinds``), range-partitioned by score descending (``partitions`` of them, or Spark's default
    number) and sorted within each partition: partition i's scores lie above partition i+1's."""
    attack = F.col("is_attack") == 1
    grouped = frame.groupBy(F.col(score).alias("score")).agg(
        _number(F.col("is_attack") == 0).alias("negatives"),
        *[_number(attack & (F.col("kind") == kind)).alias(f"positives_{k}") for k, kind in enumerate(kinds)],
    )
    descending = F.col("score").desc()
    ranged = (
        grouped.repartitionByRange(partitions, descending) if partitions else grouped.repartitionByRange(descending)
    )
    return ranged.sortWithinPartitions(descending).rdd


def ranking(frame: DataFrame, score: str, kinds: Sequence[str], partitions: int | None = None) -> dict[str, Any]:
    """``metrics.ranking_metrics`` of ``score`` on ``frame`` (sessions: is_attack, kind, the score)
    in two passes over ``rank_partitions``; the driver gets two small rows per partition."""
    ranked = rank_partitions(frame, score, kinds, partitions)
    n = len(kinds)
    totals = ranked.mapPartitionsWithIndex(lambda i, rows: [(i, metrics.partition_totals(rows, n))]).collect()
    totals = sorted(totals, key=lambda pair: pair[0])
    offsets = ranked.context.broadcast(metrics.partition_offsets([t for _, t in totals], n))
    try:
        sums = ranked.mapPartitionsWithIndex(
            lambda i, rows: [(i, metrics.partition_sums(rows, offsets.value[i]))]
        ).collect()
    finally:
        offsets.unpersist()
    sums = sorted(sums, key=lambda pair: pair[0])
    if [i for i, _ in sums] != [i for i, _ in totals]:
        raise RuntimeError(f"ranking {score}: the two passes saw different partitions")
    return metrics.ranking_metrics([t for _, t in totals], [s for _, s in sums], kinds)


def evaluated_metrics(
    frame: DataFrame,
    counts: pd.DataFrame,
    sessions_per_day: dict[str, int],
    capacity_share: float,
    partitions: int | None = None,
) -> dict[str, Any]:
    """``metrics.report_metrics`` of the evaluated sessions ``frame`` given its ``kind_counts``."""
    kinds = metrics.attack_kinds(counts)
    rankings = {name: ranking(frame, name, kinds, partitions) for name in metrics.SCORES}
    return metrics.report_metrics(counts, rankings, sessions_per_day, capacity_share)
