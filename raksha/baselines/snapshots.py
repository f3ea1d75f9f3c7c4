"""Where the user baselines live: one snapshot per date in ``user_baselines`` (the state after that
date's sessions) and the score's reference of that date in ``user_baseline_reference``.

Day D is scored against the newest snapshot before D, so a rerun of D reads what the first run read
and gives the same scores. After D is published its snapshot is written (one commit per table, as
every table's day). Snapshots older than ``baseline.keep_days`` before the newest are deleted (the
newest is always kept); a rerun older than that finds an older snapshot or none, and ``raksha
baseline build`` bootstraps any window from the input history.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.platform import tables

log = logging.getLogger(__name__)

QUANTILES = 1001
TABLES = (contract.USER_BASELINES, contract.USER_BASELINE_REFERENCE)  # a date's snapshot: one commit to each


def snapshot_dates(spark: SparkSession, cfg: Config) -> list[dt.date]:
    """The dates with a published snapshot, oldest first (``tables.days_with_rows``: from the table's log, not its
    rows, so the three listings of a nightly run cost the same for 14 snapshots as for one)."""
    return sorted(dt.date.fromisoformat(d) for d in tables.days_with_rows(spark, cfg, contract.USER_BASELINES))


def snapshot_before(spark: SparkSession, cfg: Config, day: dt.date) -> dt.date | None:
    """The newest snapshot date before ``day`` (what ``day`` is scored against), or None."""
    earlier = [d for d in snapshot_dates(spark, cfg) if d < day]
    return earlier[-1] if earlier else None


def read_snapshot(spark: SparkSession, cfg: Config, as_of: dt.date) -> DataFrame:
    name = tables.table_name(cfg, contract.USER_BASELINES)
    return spark.table(name).where(F.col("dt") == as_of.isoformat()).drop("dt")


def read_reference(spark: SparkSession, cfg: Config, as_of: dt.date) -> list[float] | None:
    """The user-baseline score's quantiles on the snapshot's day, or None (too few sessions, or none written)."""
    if not tables.exists(spark, cfg, contract.USER_BASELINE_REFERENCE):
        return None
    name = tables.table_name(cfg, contract.USER_BASELINE_REFERENCE)
    row = spark.table(name).where(F.col("dt") == as_of.isoformat()).select("quantiles").first()
    return list(row["quantiles"]) if row is not None and row["quantiles"] else None


def reference_metrics(kept: Column | None = None) -> list[Column]:
    """The aggregates of a day's reference: ``user_baseline_score`` over the sessions of users with a
    baseline, BLOCK left out (and, when given, where ``kept`` holds). Aggregates without a filter, so
    the nightly job takes them as an observation of the pass that builds its scored day."""
    probs = [i / (QUANTILES - 1) for i in range(QUANTILES)]
    counted = F.col("has_user_baseline") & (F.coalesce(F.col("decision"), F.lit("")) != "BLOCK")
    if kept is not None:
        counted = kept & counted
    return [  # percentile_approx skips nulls: the score of a session not counted is null
        F.count(F.when(counted, 1)).alias("n"),
        F.percentile_approx(F.when(counted, F.col("user_baseline_score")), probs, 10_000).alias("q"),
    ]


def reference_of(metrics: Mapping[str, Any]) -> tuple[int, list[float] | None]:
    """(sessions, quantiles) from ``reference_metrics``' values; no quantiles below 100 sessions."""
    n = int(metrics["n"] or 0)
    return n, (list(metrics["q"]) if n >= 100 and metrics["q"] else None)


def reference_quantiles(scored: DataFrame) -> tuple[int, list[float] | None]:
    """(sessions, quantiles) of ``user_baseline_score`` over ``scored`` (``reference_metrics``)."""
    return reference_of(scored.agg(*reference_metrics()).first().asDict())


def publish(
    spark: SparkSession,
    cfg: Config,
    day: dt.date,
    state: DataFrame,
    reference: tuple[int, list[float] | None],
    run_id: str,
) -> dict[str, int]:
    """Write ``day``'s snapshot and reference (one commit each); returns the Delta versions."""
    versions = {
        contract.USER_BASELINES: tables.publish_day(spark, cfg, contract.USER_BASELINES, state, day, run_id).version
    }
    sessions, quantiles = reference
    rows = [] if quantiles is None else [{"sessions": sessions, "quantiles": quantiles, "run_id": run_id}]
    frame = spark.createDataFrame(rows, contract.USER_BASELINE_REFERENCE_SCHEMA)
    versions[contract.USER_BASELINE_REFERENCE] = tables.publish_day(
        spark, cfg, contract.USER_BASELINE_REFERENCE, frame, day, run_id
    ).version
    return versions


def prune(spark: SparkSession, cfg: Config, keep_days: int, run_id: str) -> list[dt.date]:
    """Delete snapshots (and references) more than ``keep_days`` before the newest; returns the dates deleted."""
    dates = snapshot_dates(spark, cfg)
    if not dates:
        return []
    cutoff = dates[-1] - dt.timedelta(days=keep_days)
    old = [d for d in dates if d < cutoff]
    if not old:
        return []
    for table in TABLES:
        if not tables.exists(spark, cfg, table):
            continue
        with tables.committing(spark, cfg, table, run_id, old) as name:
            DeltaTable.forName(spark, name).delete(F.col("dt") < cutoff.isoformat())
    log.info("user baselines: snapshots before %s deleted (%d dates)", cutoff, len(old))
    return old
