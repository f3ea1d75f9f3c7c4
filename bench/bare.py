"""Variant g, the bare floor: the least any Spark job on this day must do, in plain Spark code.

It reads both inputs of the day (sessions and action log Parquet), builds each session's ordered
last-10 action sequence (actions ordered by seq_no, mapped to the LSTM notebook's tokens, unknown
actions 0), joins it to the sessions and writes the result as one day of a Delta table (Spark's Delta
writer, ``replaceWhere`` on the day, one commit), the table format raksha publishes (with the file
statistics of scored_sessions, ``contract.TABLE_STATS_COLUMNS``, and no dictionary for columns of
nearly distinct values, ``contract.TABLE_PLAIN_COLUMNS``). No validation,
no model, no decision, no queue, no audit, no catalog table. Same session and settings as raksha's
(``spark_child`` builds it with ``load_config`` and ``build_session``).

Variant m, the bare floor with the models: the same job, each session also carrying its whole ordered
token list (``action_tokens``) and scored by raksha's one scoring UDF (``raksha.scoring.udfs.score_models``,
the promoted versions of both models, their reasons included) before the write. What any job that runs
these two models on the day must pay: the part of raksha's time that is not its pipeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

BARE_TABLE = "bare_sessions"  # under paths.warehouse, by path (not registered in the catalog)


def bare_frame(spark, sessions_path: str, actions_path: str, all_tokens: bool = False):
    """Sessions joined with their ordered last-10 action tokens (``last_actions``, ``action_count``); with
    ``all_tokens``, each session's whole ordered list too (``action_tokens``, what the sequence model scores)."""
    from pyspark.sql import functions as F

    from raksha import contract

    sessions = spark.read.parquet(sessions_path)
    actions = spark.read.parquet(actions_path)
    vocabulary = F.create_map(*[F.lit(x) for name, code in contract.ACTIONS.items() for x in (name, code)])
    ordered = actions.groupBy("session_id").agg(
        F.array_sort(F.collect_list(F.struct("seq_no", "action"))).alias("events")
    )
    tokens = F.transform("events", lambda e: F.coalesce(vocabulary[e["action"]], F.lit(contract.UNKNOWN_ACTION)))
    count = F.size("events")
    last = ordered.select(
        "session_id",
        F.slice(tokens, F.greatest(count - contract.MAX_SEQ_LENGTH + 1, F.lit(1)), contract.MAX_SEQ_LENGTH).alias(
            "last_actions"
        ),
        count.alias("action_count"),
        *([tokens.alias("action_tokens")] if all_tokens else []),
    )
    joined = sessions.join(last, on="session_id", how="left")
    if all_tokens:  # a session without actions scores an empty sequence, as in raksha
        joined = joined.withColumn("action_tokens", F.coalesce("action_tokens", F.array().cast("array<int>")))
    return joined


def run_bare(spark, sessions_root: str, actions_root: str, warehouse: str, day: dt.date, mark=None, score=None) -> str:
    """Read, sequence, join and write ``day`` as one Delta commit; the table's location.

    ``mark(phase)``, when given, is called as the job enters its read and its write (the breakdown's phases).
    ``score``, when given, takes the joined frame (with ``action_tokens``) and returns it scored (variant m).
    """
    from pyspark.sql import functions as F

    from raksha import contract
    from raksha.platform.tables import PLAIN_COLUMN

    mark = mark or (lambda _phase: None)
    part = f"dt={day.isoformat()}"
    location = f"{warehouse.rstrip('/')}/{BARE_TABLE}"
    mark("read")
    frame = bare_frame(
        spark, f"{sessions_root.rstrip('/')}/{part}", f"{actions_root.rstrip('/')}/{part}", score is not None
    )
    if score is not None:  # lazily: the models run in the write's job
        frame = score(frame)
    # the file statistics raksha's scored_sessions records (of the columns this table has), not Delta's default;
    # and, as raksha's tables, no Parquet dictionary for columns of nearly distinct values (the ids and times
    # scored_sessions writes plain, and the sessions' continuous features): the session's settings reach the
    # Parquet writer
    stats = [c for c in contract.TABLE_STATS_COLUMNS["scored_sessions"] if c in frame.columns]
    plain = [c for c in contract.TABLE_PLAIN_COLUMNS["scored_sessions"] if c in frame.columns]
    plain += [f.name for f in frame.schema.fields if f.dataType.simpleString() == "double" and f.name not in plain]
    mark("write")
    for column in plain:
        spark.conf.set(PLAIN_COLUMN.format(column), "false")
    try:
        (
            frame.withColumn("dt", F.lit(day.isoformat()))
            .write.format("delta")
            .option("delta.dataSkippingStatsColumns", ",".join(stats))
            .mode("overwrite")
            .option("replaceWhere", f"dt = '{day.isoformat()}'")
            .partitionBy("dt")
            .save(location)
        )
    finally:
        for column in plain:
            spark.conf.unset(PLAIN_COLUMN.format(column))
    return location


def commit_metrics(spark, location: str) -> dict[str, Any]:
    """The last commit's version, operation and metrics (read after the timing)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, location).history(1).select("version", "operation", "operationMetrics").first()
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metrics": dict(row["operationMetrics"] or {}),
    }
