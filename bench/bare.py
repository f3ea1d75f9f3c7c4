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

Variant u, the bare floor with user baselines: the same job, each session also scored against its user's
snapshot of the day before (the one raksha's ``baseline build`` wrote: per habit feature a z-score from the
user's mean and spread, squared and capped, summed, plus a device the user was not seen with), and the
day then folded into the next snapshot: one aggregation of the day by user (counts, sums and sums of squares,
the hour's sums, the distinct devices, networks and places), joined to the old snapshot, the sums decayed and
added, the sets' ids merged and capped, written as one day of a Delta table. Less than issue 15 asks (no
shrinkage, no winsorizing, no per-key counts or eviction of devices, no reasons, no reference, no verdicts
left out): the least any job that keeps per-user baselines pays, so (bare-baselines - bare) is a floor
of what the baselines add to raksha.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

BARE_TABLE = "bare_sessions"  # under paths.warehouse, by path (not registered in the catalog)
BARE_STATE = "bare_user_baselines"  # variant u's next snapshot, beside it
BLOCK_SCORE = 200.0  # variant u: a session scored above this is left out of the fold (as raksha's BLOCK)


def location_of(warehouse: str, table: str) -> str:
    """Where a table of the bare variants is: ``table`` under ``warehouse``, by path."""
    return f"{warehouse.rstrip('/')}/{table}"


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


def user_scored(frame, snapshot, s):
    """Variant u's score: ``frame`` (sessions) joined by user to the snapshot's means and spreads (a user without
    one: no score), ``bare_baseline_score`` the squared z-scores capped at ``s.feature_cap`` and summed, plus
    ``s.new_device_weight`` for a device not seen (``s``: raksha's ``baseline`` settings, ``habits.Settings``)."""
    from pyspark.sql import functions as F

    from raksha import contract

    habits = []
    for f in contract.BASELINE_FEATURES:
        mean = F.try_divide(F.col(f"{f}_sum"), F.col(f"{f}_weight"))  # no value yet: null, no score
        spread = F.sqrt(F.greatest(F.try_divide(F.col(f"{f}_sumsq"), F.col(f"{f}_weight")) - mean * mean, F.lit(1e-4)))
        habits += [mean.alias(f"_m_{f}"), spread.alias(f"_s_{f}")]
    expected = snapshot.select("user_id", *habits, F.col("devices")["id"].alias("_devices"))
    joined = frame.join(expected, on="user_id", how="left")
    parts = [
        F.coalesce(F.least(((F.col(f) - F.col(f"_m_{f}")) / F.col(f"_s_{f}")) ** 2, F.lit(s.feature_cap)), F.lit(0.0))
        for f in contract.BASELINE_FEATURES
    ]
    new_device = F.when(~F.array_contains(F.col("_devices"), F.col("device_id")), s.new_device_weight).otherwise(0.0)
    score = sum(parts[1:], parts[0]) + new_device
    return joined.select(*frame.columns, score.alias("bare_baseline_score"))


def next_snapshot(day_frame, snapshot, day: dt.date, s):
    """Variant u's fold: the day's sessions (not above ``BLOCK_SCORE``) aggregated by user and joined to the
    snapshot (full outer): a user's sums decayed by half every ``s.half_life_days`` and the day's added (a user
    not seen that day keeps them as they were), the devices', networks' and places' ids merged (the day's
    first) and the first ``s.max_devices`` kept. Places as one number per ``habits.place_cell`` cell (the
    snapshot's cells too)."""
    from pyspark.sql import functions as F

    from raksha import contract
    from raksha.baselines.habits import place_cell

    counted = day_frame.where(F.col("bare_baseline_score") <= BLOCK_SCORE)
    cell = (place_cell(F.col("gps_latitude"), s) * 1000 + place_cell(F.col("gps_longitude"), s)).cast("long")
    old_cells = F.transform("places", lambda p: (p["lat_cell"] * 1000 + p["lon_cell"]).cast("long"))
    sums = []
    for f in contract.BASELINE_FEATURES:
        value = F.col(f)
        sums += [
            F.count(value).alias(f"_{f}_weight"),
            F.sum(value).alias(f"_{f}_sum"),
            F.sum(value * value).alias(f"_{f}_sumsq"),
        ]
    today = counted.groupBy("user_id").agg(
        F.count("*").alias("_sessions"),
        *sums,
        F.sum("time_of_day_sin").alias("_hour_sin_sum"),
        F.sum("time_of_day_cos").alias("_hour_cos_sum"),
        F.collect_set("device_id").alias("_devices"),
        F.collect_set("wifi_id_hash").alias("_networks"),
        F.collect_set(cell).alias("_places"),
    )
    old = snapshot.select(
        "user_id",
        "sessions",
        "last_seen",
        *[f"{f}_{part}" for f in contract.BASELINE_FEATURES for part in ("weight", "sum", "sumsq")],
        "hour_sin_sum",
        "hour_cos_sum",
        F.col("devices")["id"].alias("devices"),
        F.col("networks")["id"].alias("networks"),
        old_cells.alias("places"),
    )
    joined = old.join(today, on="user_id", how="full_outer")
    decay = F.pow(F.lit(0.5), F.datediff(F.lit(day), F.col("last_seen")) / F.lit(s.half_life_days))
    seen = F.col("_sessions").isNotNull()

    def added(name: str):  # a user not seen that day keeps the sums as of their last day
        today_too = F.coalesce(F.col(name) * decay, F.lit(0.0)) + F.col(f"_{name}")
        return F.when(seen, today_too).otherwise(F.col(name)).alias(name)

    def merged(name: str):
        both = F.array_union(F.coalesce(F.col(f"_{name}"), F.array()), F.coalesce(F.col(name), F.array()))
        return F.slice(both, 1, s.max_devices).alias(name)

    return joined.select(
        "user_id",
        (F.coalesce(F.col("sessions"), F.lit(0)) + F.coalesce(F.col("_sessions"), F.lit(0))).alias("sessions"),
        F.when(seen, F.lit(day)).otherwise(F.col("last_seen")).alias("last_seen"),
        *[added(f"{f}_{part}") for f in contract.BASELINE_FEATURES for part in ("weight", "sum", "sumsq")],
        added("hour_sin_sum"),
        added("hour_cos_sum"),
        merged("devices"),
        merged("networks"),
        merged("places"),
    )


def run_bare(
    spark,
    sessions_root: str,
    actions_root: str,
    warehouse: str,
    day: dt.date,
    mark=None,
    score=None,
    snapshot: str | None = None,
    settings=None,
) -> str:
    """Read, sequence, join and write ``day`` as one Delta commit; the table's location.

    ``mark(phase)``, when given, is called as the job enters its read and its write (the breakdown's phases).
    ``score``, when given, takes the joined frame (with ``action_tokens``) and returns it scored (variant m).
    ``snapshot``, when given, the location of the user baselines whose day before ``day`` each session is scored
    against and the day folded into (variant u), with raksha's ``baseline`` ``settings``: the scored day kept,
    then written, then the next snapshot written to ``BARE_STATE`` (a second commit, phase
    ``publish:user_baselines`` as raksha's).
    """
    from pyspark.sql import functions as F

    from raksha import contract

    mark = mark or (lambda _phase: None)
    part = f"dt={day.isoformat()}"
    location = location_of(warehouse, BARE_TABLE)
    mark("read")
    frame = bare_frame(
        spark, f"{sessions_root.rstrip('/')}/{part}", f"{actions_root.rstrip('/')}/{part}", score is not None
    )
    if score is not None:  # lazily: the models run in the write's job
        frame = score(frame)
    before = None
    if snapshot is not None:
        yesterday = (day - dt.timedelta(days=1)).isoformat()
        before = spark.read.format("delta").load(snapshot).where(F.col("dt") == yesterday)
        frame = user_scored(frame, before, settings).persist()  # written, then folded
    # the file statistics raksha's scored_sessions records (of the columns this table has), not Delta's default;
    # and, as raksha's tables, no Parquet dictionary for columns of nearly distinct values (the ids and times
    # scored_sessions writes plain, and the sessions' continuous features): the session's settings reach the
    # Parquet writer
    mark("write")
    _write_day(spark, frame, location, day, "scored_sessions")
    if before is not None:
        mark("publish:user_baselines")
        state = next_snapshot(frame, before, day, settings)
        _write_day(spark, state, location_of(warehouse, BARE_STATE), day, contract.USER_BASELINES)
        frame.unpersist()
    return location


def _write_day(spark, frame, location: str, day: dt.date, like: str) -> None:
    """``frame`` as day ``day`` of the Delta table at ``location`` (``replaceWhere``, one commit), with the file
    statistics and plain columns of raksha's table ``like`` (of the columns it has), its doubles plain too."""
    from pyspark.sql import functions as F

    from raksha import contract
    from raksha.platform.tables import PLAIN_COLUMN

    stats = [c for c in contract.TABLE_STATS_COLUMNS[like] if c in frame.columns]
    plain = [c for c in contract.TABLE_PLAIN_COLUMNS[like] if c in frame.columns]
    plain += [f.name for f in frame.schema.fields if f.dataType.simpleString() == "double" and f.name not in plain]
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


def commit_metrics(spark, location: str) -> dict[str, Any]:
    """The last commit's version, operation and metrics (read after the timing)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, location).history(1).select("version", "operation", "operationMetrics").first()
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metrics": dict(row["operationMetrics"] or {}),
    }
