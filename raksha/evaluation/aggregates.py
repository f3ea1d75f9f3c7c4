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
  (``queues`` says how they are built; the cases are ranked by ``review.queued_sessions_by``, the
  review queue's rule for many queues), reduced to one row per (score, share, way): the cases, attack
  cases, sessions, attacks, attacks of each kind and normal sessions of each benign oddity they hold.
  All the queues are one plan: each score's sessions of a day are ranked once, in one task (a window
  per score and day), for every share and both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pyspark import RDD
from pyspark.sql import Column, DataFrame, Window
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


def queue_counts(
    frame: DataFrame,
    capacity: dict[str, dict[str, dict[str, int]]],
    kinds: Sequence[str],
    oddities: Sequence[str],
) -> pd.DataFrame:
    """One row per (score, share key, way) of ``capacity`` (score -> share key -> day -> cases): score,
    share, way, ``queues.HELD``, the sessions of each of ``kinds`` and the normal sessions of each of
    ``oddities`` and of none (``queues.kind_column``, ``queues.oddity_column``) the queues of those days
    hold. ``frame``: sessions with dt, session_id, user_id, is_attack, kind, oddity and the scores.

    Every queue in one plan: each session once per score that it has (neither null nor NaN), ranked per
    (score, day) once for all shares; per session the top ``cases`` sessions (score descending, ties by
    session_id), per case ``review.queued_sessions_by`` (every session a candidate, ranked by the score
    alone). A plan per queue (scores x shares x ways x days of them, each reading the day again) took
    74 of an evaluation's 83 s on three days of 600 sessions."""
    columns = [*queues.HELD, *map(queues.kind_column, kinds), *map(queues.oddity_column, (queues.BASE, *oddities))]
    rows = [
        (score, share, day, int(cases))
        for score, by_share in capacity.items()
        for share, by_day in by_share.items()
        for day, cases in by_day.items()
    ]
    if not rows:
        return pd.DataFrame(columns=["score", "share", "way", *columns])
    capacities = frame.sparkSession.createDataFrame(rows, "score string, share string, dt string, capacity int")
    each_score = F.explode(
        F.array(*[F.struct(F.lit(s).alias("score"), F.col(s).cast("double").alias("risk_score")) for s in capacity])
    )
    sessions = (
        frame.select("dt", "session_id", "user_id", "is_attack", "kind", "oddity", each_score.alias("_scored"))
        .select("*", "_scored.*")
        .drop("_scored")
        .where(has("risk_score"))
    )
    order = Window.partitionBy("score", "dt").orderBy(F.col("risk_score").desc(), F.col("session_id").asc())
    held_columns = ["score", "share", "way", "dt", "case_key", "is_attack", "kind", "oddity"]
    per_session = (
        sessions.withColumn("_rank", F.row_number().over(order))
        .join(capacities, ["score", "dt"])
        .where(F.col("_rank") <= F.col("capacity"))
        .withColumns({"way": F.lit("per_session"), "case_key": F.col("session_id")})
        .select(*held_columns)
    )
    candidates = sessions.withColumn("case_key", review.case_key())
    per_case = (
        review.queued_sessions_by(candidates, capacities, ["score", "dt"], ["share"])
        .withColumn("way", F.lit("per_case"))
        .select(*held_columns)
    )
    held = per_session.unionByName(per_case)
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
