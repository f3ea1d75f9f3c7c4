"""The evaluated sessions reduced in Spark to the aggregates ``metrics`` turns into the report.

Nothing of the size of the window reaches the driver, only rows of the order of the kinds and
of the partitions:

- ``kind_counts``: one row per (kind, is_attack, oddity) with the sessions, the flagged, blocked and
  queued ones, and per score the sessions without one (a gap in a score every scored session has
  is a bug: ``evaluate`` fails; a score added later is null on older days, ``metrics.OPTIONAL_SCORES``);
- ``ranking``: each score's exact ROC-AUC, PR-AUC and ROC-AUC by kind. The sessions are grouped
  by score value (negatives and positives of each attack kind per distinct score: ties collapse
  as scikit-learn collapses them), range-partitioned by score descending and sorted within each
  partition (``rank_partitions``). A first pass brings each partition's totals to the driver,
  which derives what is ranked above each partition (and checks the order); a second pass,
  with those offsets broadcast, brings each partition's share of the trapezoid area and of the
  average precision. Both passes run on the same RDD, so on the same range bounds and shuffle
  output. The arithmetic is ``metrics``' (pure);
- ``queue_counts``: each score's queues at shares of each day's sessions, per session and per case
  (``queues`` says how they are built; the cases are ``review.queued_sessions``'), reduced to one
  row per (score, share, way): the cases, attack cases, sessions, attacks, attacks of each kind and
  normal sessions of each benign oddity they hold. A queue is an ordered limit of its day (a top-K
  of the order of the capacity, as the review queue's), never a window over a whole day.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import pandas as pd
from pyspark import RDD
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from raksha import contract
from raksha.decide import review
from raksha.evaluation import metrics, queues


def _number(condition: Column) -> Column:
    """How many rows of a group meet ``condition`` (null counts as not)."""
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


missing = metrics.missing


def has(score: str) -> Column:
    """The session has ``score`` (neither null nor NaN)."""
    return F.col(score).isNotNull() & ~F.isnan(score)


def kind_counts(frame: DataFrame, scores: Sequence[str] = metrics.SCORES) -> pd.DataFrame:
    """kind, is_attack, oddity, ``metrics.KIND_COUNTS`` and ``missing(score)`` of each score: one row per
    (kind, is_attack, oddity) of ``frame`` (sessions: kind, is_attack, oddity (null but for a normal
    session's benign oddity), decision, queued (true or null), scores; a score not a column of
    ``frame`` is missing on every session)."""
    decision = F.col("decision")
    counts = [
        F.count(F.lit(1)).alias("sessions"),
        _number(decision.isin(*contract.FLAGGED_DECISIONS)).alias("flagged"),
        _number(decision == "BLOCK").alias("blocked"),
        _number(F.col("queued")).alias("queued"),
        *[_number(~has(s) if s in frame.columns else F.lit(True)).alias(missing(s)) for s in scores],
    ]
    rows = frame.groupBy("kind", "is_attack", "oddity").agg(*counts).collect()
    columns = ["kind", "is_attack", "oddity", *metrics.KIND_COUNTS, *[missing(s) for s in scores]]
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


def score_days(frame: DataFrame, scores: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per score, per day (dt) of ``frame``, the sessions that have it (days without any left out)."""
    if not scores:
        return {}
    rows = frame.groupBy("dt").agg(*[_number(has(s)).alias(f"n{i}") for i, s in enumerate(scores)]).collect()
    return {s: {r["dt"]: int(r[f"n{i}"]) for r in rows if r[f"n{i}"]} for i, s in enumerate(scores)}


def queue_sessions(day: DataFrame, score: str, way: str, capacity: int) -> DataFrame:
    """The sessions of one day's queue of ``capacity`` ranked by ``score`` (``queues.WAYS``), with case_key."""
    ranked = day.where(has(score))
    if way == "per_session":  # an ordered limit: a top-K, each session its own case
        top = ranked.orderBy(F.col(score).desc(), F.col("session_id").asc()).limit(capacity)
        return top.withColumn("case_key", F.col("session_id"))
    if way != "per_case":
        raise ValueError(f"a queue is one of {', '.join(queues.WAYS)}, got '{way}'")
    # every session a candidate, ranked by the score: the review queue's cases as the score alone makes them
    candidates = ranked.withColumns({"decision": F.lit(contract.FLAGGED_DECISIONS[0]), "risk_score": F.col(score)})
    return review.queued_sessions(candidates, capacity)


def queue_counts(
    frame: DataFrame,
    capacity: dict[str, dict[str, dict[str, int]]],
    kinds: Sequence[str],
    oddities: Sequence[str],
) -> pd.DataFrame:
    """One row per (score, share key, way) of ``capacity`` (score -> share key -> day -> cases): score,
    share, way, ``queues.HELD``, the sessions of each of ``kinds`` and the normal sessions of each of
    ``oddities`` and of none (``queues.kind_column``, ``queues.oddity_column``) the queues of those days
    hold. ``frame``: sessions with dt, session_id, user_id, is_attack, kind, oddity and the scores."""
    parts = [
        queue_sessions(frame.where(F.col("dt") == day), score, way, cases).select(
            F.lit(score).alias("score"),
            F.lit(share).alias("share"),
            F.lit(way).alias("way"),
            F.lit(day).alias("dt"),
            "case_key",
            "is_attack",
            "kind",
            "oddity",
        )
        for score, by_share in capacity.items()
        for share, by_day in by_share.items()
        for way in queues.WAYS
        for day, cases in by_day.items()
    ]
    columns = [*queues.HELD, *map(queues.kind_column, kinds), *map(queues.oddity_column, (queues.BASE, *oddities))]
    if not parts:
        return pd.DataFrame(columns=["score", "share", "way", *columns])
    held = reduce(DataFrame.unionByName, parts)
    attack, normal = F.col("is_attack") == 1, F.col("is_attack") == 0
    tallies = [
        _number(attack).alias("attacks"),
        *[_number(attack & (F.col("kind") == k)).alias(f"k{i}") for i, k in enumerate(kinds)],
        _number(normal & F.col("oddity").isNull()).alias("o0"),
        *[_number(normal & (F.col("oddity") == o)).alias(f"o{i + 1}") for i, o in enumerate(oddities)],
    ]
    keys = ["score", "share", "way"]
    tally_names = ["attacks", *[f"k{i}" for i in range(len(kinds))], *[f"o{i}" for i in range(len(oddities) + 1)]]
    per_case = held.groupBy(*keys, "dt", "case_key").agg(F.count(F.lit(1)).alias("sessions"), *tallies)
    totals = per_case.groupBy(*keys).agg(
        F.count(F.lit(1)).cast("long").alias("cases"),
        _number(F.col("attacks") > 0).alias("attack_cases"),
        F.sum("sessions").cast("long").alias("sessions"),
        *[F.sum(c).cast("long").alias(c) for c in tally_names],
    )
    rows = totals.collect()
    names = dict(zip(tally_names[1:], columns[len(queues.HELD) :], strict=True))
    return pd.DataFrame(
        [[row[k] for k in keys] + [row[c] for c in queues.HELD] + [row[c] for c in names] for row in rows],
        columns=[*keys, *queues.HELD, *names.values()],
    )


def evaluated_metrics(
    frame: DataFrame,
    counts: pd.DataFrame,
    sessions_per_day: dict[str, int],
    capacity_share: float,
    absent: Sequence[str] = (),
    shares: Sequence[float] = queues.QUEUE_SHARES,
    partitions: int | None = None,
) -> dict[str, Any]:
    """``metrics.report_metrics`` of the evaluated sessions ``frame`` given its ``kind_counts``, with
    each available score's queues (``queues.queue_report``) and the benign oddities
    (``queues.oddity_report``). A score of ``absent`` (not a column of the scored table) or null on
    every session is not available; one null on some sessions is evaluated on those that have it."""
    if not shares or not all(0.0 < share <= 1.0 for share in shares):
        raise ValueError(f"queue shares must lie in (0, 1], got {list(shares)}")
    kinds = metrics.attack_kinds(counts)
    absent = [*absent, *(name for name in metrics.SCORES if name not in frame.columns)]
    available = metrics.score_availability(counts, metrics.SCORES, absent)
    names = [name for name in metrics.SCORES if available[name]["available"]]
    rankings = {name: ranking(frame.where(has(name)), name, kinds, partitions) for name in names}
    days = score_days(frame, names)
    capacity = {name: queues.capacities(shares, days[name]) for name in names}
    held = queue_counts(frame, capacity, kinds, queues.oddities(counts))
    return {
        **metrics.report_metrics(counts, rankings, sessions_per_day, capacity_share, available),
        "queues": queues.queue_report(held, counts, kinds, available, capacity),
        "benign_oddities": queues.oddity_report(counts, held, min(shares)),
    }
