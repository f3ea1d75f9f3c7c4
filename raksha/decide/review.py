"""The review queue: what analysts look at tomorrow morning (a pure DataFrame transform).

REVIEW and BLOCK sessions are grouped into cases, one per user (a session without a user is
a case of its own), ranked by the case's highest risk_score (ties: the key, so the order never
depends on the run), and capped at ``review.capacity`` cases; what does not fit is counted as
overflow in run_log and stays in scored_sessions. A queued case holds its sessions that rank
with the queue: when more cases were flagged than fit, those scored at least the queue's cut (the
highest risk_score of its last case),
so what an analyst opens is what the score ranked, not every flagged session of a queued user
(their other flagged sessions stay in scored_sessions). Then ``review.audit_rate`` of the ALLOW
sessions are added with ``audit = true``: an unbiased sample for measuring what the models
miss, chosen by a hash of the date and session_id, so a rerun picks the same sessions.

The ranking is a distributed top-K: an ordered limit (TakeOrderedAndProject: each partition keeps
its best ``capacity`` cases, then capacity x partitions rows are merged), and only those rows are
numbered. A window without partitionBy would move every case of the day to one partition.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from raksha.contract import FLAGGED_DECISIONS as FLAGGED

AUDIT_BUCKETS = 1_000_000


def audit_pick(day: dt.date, rate: float) -> Column:
    """True for about ``rate`` of the sessions, the same ones for the same date on every run."""
    bucket = F.pmod(F.xxhash64(F.lit(day.isoformat()), F.col("session_id")), F.lit(AUDIT_BUCKETS))
    return bucket < F.lit(int(round(rate * AUDIT_BUCKETS)))


def candidate(day: dt.date, audit_rate: float) -> Column:
    """True for the sessions ``review_queue`` may hold: flagged, or ALLOW and picked for audit (a few percent
    of a day). ``review_queue`` and ``overflow_cases`` give the same answer on these as on the whole day, so a
    run keeps them apart and its queue's jobs read them instead of the day."""
    return F.col("decision").isin(*FLAGGED) | ((F.col("decision") == "ALLOW") & audit_pick(day, audit_rate))


def case_key() -> Column:
    """What makes one review case: the user (a session without a user is its own case)."""
    return F.coalesce(F.col("user_id"), F.concat(F.lit("session:"), F.col("session_id")))


def top_cases(cases: DataFrame, capacity: int) -> DataFrame:
    """The first ``capacity`` of ``cases`` (case_key, case_risk, case_sessions) by case_risk descending,
    ties by case_key, as (case_key, case_risk, case_sessions, case_rank 1..capacity, queue_cut). queue_cut
    is the last queued case's case_risk when more cases were flagged than fit (null when all fit).

    The ordered limit (capacity + 1, to see whether one more was flagged) is the top-K; its rows are then
    gathered into one array, sorted in the same order and numbered by position (no window: Spark would
    plan one without partitionBy as a single partition, and log that it does, whatever the size of its
    input).
    """
    capacity = max(capacity, 0)
    top = cases.orderBy(F.col("case_risk").desc(), F.col("case_key").asc()).limit(capacity + 1)
    # ascending order of this struct == case_risk DESC NULLS LAST (NaN highest, as Spark sorts), case_key ASC
    order = F.struct(
        F.col("case_risk").isNull().alias("no_risk"),
        (~F.isnan("case_risk")).alias("not_nan"),
        (-F.col("case_risk")).alias("minus_risk"),
        F.col("case_key").alias("case_key"),
        F.col("case_risk").alias("case_risk"),
        F.col("case_sessions").alias("case_sessions"),
    )
    ranked = top.agg(F.array_sort(F.collect_list(order)).alias("cases"))
    overflow = F.size("cases") > capacity
    cut = F.when(overflow & F.lit(capacity > 0), F.try_element_at("cases", F.lit(max(capacity, 1)))["case_risk"])
    numbered = ranked.select(F.posexplode("cases"), cut.alias("queue_cut")).where(F.col("pos") < capacity)
    return numbered.select(
        F.col("col.case_key").alias("case_key"),
        F.col("col.case_risk").alias("case_risk"),
        F.col("col.case_sessions").alias("case_sessions"),
        (F.col("pos") + 1).cast("int").alias("case_rank"),
        "queue_cut",
    )


def queued_sessions(scored: DataFrame, capacity: int) -> DataFrame:
    """The flagged sessions of the top ``capacity`` cases that rank with the queue (when more cases were
    flagged than fit: risk_score at least the last queued case's; else all of them), with case_key,
    case_rank, case_sessions (the case's sessions in the queue) and rank_in_case."""
    flagged = scored.filter(F.col("decision").isin(*FLAGGED)).withColumn("case_key", case_key())
    cases = flagged.groupBy("case_key").agg(
        F.max("risk_score").alias("case_risk"), F.count("*").cast("int").alias("case_sessions")
    )
    top = top_cases(cases, capacity).drop("case_sessions")
    within = Window.partitionBy("case_key").orderBy(F.col("risk_score").desc(), F.col("session_id").asc())
    whole_case = Window.partitionBy("case_key")
    return (
        flagged.join(top, on="case_key", how="inner")
        .where(F.col("queue_cut").isNull() | (F.col("risk_score") >= F.col("queue_cut")))
        .withColumn("rank_in_case", F.row_number().over(within).cast("int"))
        .withColumn("case_sessions", F.count("*").over(whole_case).cast("int"))
        .drop("queue_cut", "case_risk")
    )


def queued_sessions_by(flagged: DataFrame, capacities: DataFrame, ranked: list[str], queue: list[str]) -> DataFrame:
    """``queued_sessions``' rule for many queues at once (the evaluation's: a queue per score, share and day).

    ``flagged``: candidate sessions with the ``ranked`` columns, case_key and risk_score; each group of
    ``ranked`` columns is ranked once, as ``top_cases`` ranks (case_risk descending, NaN first, ties by
    case_key), then cut at each of its ``capacities`` rows (the ``ranked`` columns, the ``queue`` columns
    that tell that group's queues apart, and ``capacity`` in cases): the top ``capacity`` cases, holding
    their sessions scored at least the last queued case's case_risk when more cases were flagged than fit.
    Returns the queued sessions with the ``queue`` columns. Windows partitioned by the ``ranked`` groups
    number the cases: one group's cases are sorted in one task (a day's, per score), where one queue's
    ordered limit (``queued_sessions``) would plan the whole rule once per queue.
    """
    order = Window.partitionBy(*ranked).orderBy(F.col("case_risk").desc(), F.col("case_key").asc())
    cases = (
        flagged.groupBy(*ranked, "case_key")
        .agg(F.max("risk_score").alias("case_risk"))
        .withColumn("case_rank", F.row_number().over(order))
        .withColumn("flagged_cases", F.count(F.lit(1)).over(Window.partitionBy(*ranked)))
        .join(capacities, ranked)
    )
    top = cases.where(F.col("case_rank") <= F.col("capacity")).select(*ranked, *queue, "case_key")
    last = (F.col("case_rank") == F.col("capacity")) & (F.col("flagged_cases") > F.col("capacity"))
    cut = cases.where(last).select(*ranked, *queue, F.col("case_risk").alias("queue_cut"))
    return (
        flagged.join(top, [*ranked, "case_key"])
        .join(cut, [*ranked, *queue], "left")
        .where(F.col("queue_cut").isNull() | (F.col("risk_score") >= F.col("queue_cut")))
        .drop("queue_cut")
    )


def review_queue(scored: DataFrame, day: dt.date, capacity: int, audit_rate: float, run_id: str) -> DataFrame:
    queued = (
        queued_sessions(scored, capacity)
        .withColumn("case_id", F.format_string("%s-%05d", F.lit(day.isoformat()), F.col("case_rank")))
        .withColumn("audit", F.lit(False))
    )
    audited = (
        scored.filter((F.col("decision") == "ALLOW") & audit_pick(day, audit_rate))
        .withColumn("case_rank", F.lit(None).cast("int"))
        .withColumn("case_id", F.lit(None).cast("string"))
        .withColumn("case_sessions", F.lit(None).cast("int"))
        .withColumn("rank_in_case", F.lit(None).cast("int"))
        .withColumn("audit", F.lit(True))
    )
    columns = [c for c in queued.columns if c not in ("case_key", "case_risk")]
    return queued.select(*columns).unionByName(audited.select(*columns)).withColumn("run_id", F.lit(run_id))


def overflow_cases(scored: DataFrame, capacity: int) -> int:
    """Flagged cases beyond the capacity (they stay in scored_sessions)."""
    cases = scored.filter(F.col("decision").isin(*FLAGGED)).select(case_key().alias("k")).distinct().count()
    return max(0, cases - capacity)
