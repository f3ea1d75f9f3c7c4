"""Measuring the review queue against ground truth (generated labels).

``queue_precision`` rebuilds each day's review queue from ``scored_sessions`` at a capacity
of a share of the day's sessions (the same ranking as the nightly job, no audit sample),
joins the labels written by ``generate``, and reports precision overall and, per attack
kind, how many attacks there were, how many the queue holds, and that recall.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from raksha import contract, inputs, review, tables
from raksha.config import Config


def queue_precision(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, capacity_share: float = 0.01
) -> tuple[pd.DataFrame, dict[str, float]]:
    scored_table = spark.table(tables.table_name(cfg, "scored_sessions"))
    rows = []
    day = start
    while day <= end:
        scored = scored_table.where(F.col("dt") == day.isoformat()).drop("dt")
        n = scored.count()
        if n == 0:
            raise inputs.InputError(f"scored_sessions {day}: no rows (score the day first)")
        capacity = max(1, math.ceil(capacity_share * n))
        queue = review.review_queue(scored, day, capacity, 0.0, "evaluation").select("session_id")
        labels = inputs.read_day(spark, cfg.path("labels"), day, "labels", contract.LABELS_SCHEMA)
        joined = (
            scored.select("session_id")
            .join(labels.select("session_id", "attack_kind"), on="session_id", how="left")
            .join(queue.withColumn("queued", F.lit(True)), on="session_id", how="left")
            .groupBy(F.coalesce("attack_kind", F.lit("normal")).alias("kind"))
            .agg(F.count("*").alias("sessions"), F.count("queued").alias("queued"))
        )
        rows += [{"dt": day.isoformat(), **r.asDict()} for r in joined.collect()]
        day += dt.timedelta(days=1)
    per_day = pd.DataFrame(rows)
    by_kind = per_day.groupby("kind")[["sessions", "queued"]].sum()
    by_kind["recall"] = by_kind["queued"] / by_kind["sessions"]
    queued = int(by_kind["queued"].sum())
    attacks_queued = int(by_kind.drop(index="normal", errors="ignore")["queued"].sum())
    by_kind["share_of_queue"] = by_kind["queued"] / max(queued, 1)
    summary = {
        "sessions": int(by_kind["sessions"].sum()),
        "queued": queued,
        "precision": attacks_queued / max(queued, 1),
        "capacity_share": capacity_share,
    }
    return by_kind.reset_index(), summary


def print_queue_precision(by_kind: pd.DataFrame, summary: dict[str, float], start: dt.date, end: dt.date) -> None:
    print(f"review queue vs ground truth, {start} .. {end}, capacity {summary['capacity_share']:.1%} of sessions")
    print(f"  {summary['queued']} sessions queued of {summary['sessions']}; precision {summary['precision']:.3f}")
    print(f"  {'kind':<20} {'sessions':>9} {'queued':>7} {'recall':>7} {'share of queue':>15}")
    for row in by_kind.sort_values("kind").itertuples():
        print(f"  {row.kind:<20} {row.sessions:>9} {row.queued:>7} {row.recall:>7.3f} {row.share_of_queue:>15.3f}")
