"""Output tables: catalog registration and publication of one day (DESIGN.md section 5).

Write, audit, publish: a run writes each table's day to its own staging folder
``{paths.staging}/{run_id}/{table}/dt=D`` (outside every table's folder), the job audits what
it staged, then ``publish`` swaps the staged folder in as ``{warehouse}/{table}/dt=D``.

On a local filesystem the swap is one ``renameat2(RENAME_EXCHANGE)``: the staged folder and the
live one trade places in a single step, so a reader of ``dt=D`` (Spark, DuckDB, pyarrow) sees
the old day or the new one, never neither and never a mix; the old folder, now at the staged
path, then moves to ``{paths.staging}/superseded/{run_id}/{table}/dt=D`` for rollback. Where the
filesystem has no exchange (HDFS, object stores) it is two renames, live aside then staged in,
with a short window in which the day is absent (never partial). Superseded days are removed
after ``publish.superseded_retention_days``. Other dates are never touched. The catalog
partition points at the fixed folder, so it needs no change beyond a refresh.
``run_log`` is append-only: each run adds its own file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract, inputs
from raksha.config import Config
from raksha.storage import Storage

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The catalog holds a table that does not match this configuration."""


def table_name(cfg: Config, table: str) -> str:
    return f"{cfg.get('catalog.database')}.{table}"


def table_location(cfg: Config, table: str) -> str:
    return f"{cfg.path('warehouse').rstrip('/')}/{table}"


def _ddl(schema: T.StructType) -> str:
    columns = [f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields]
    return ", ".join(columns + ["`dt` string"])


def _normalize(location: str) -> str:
    return location.removeprefix("file:").rstrip("/")


def ensure_table(spark: SparkSession, cfg: Config, table: str) -> str:
    """Create ``{database}.{table}`` (Parquet, partitioned by dt) at its warehouse folder."""
    name = table_name(cfg, table)
    location = table_location(cfg, table)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{cfg.get('catalog.database')}`")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {name} ({_ddl(contract.OUTPUT_SCHEMAS[table])}) "
        f"USING parquet PARTITIONED BY (dt) LOCATION '{location}'"
    )
    described = {r["col_name"]: r["data_type"] for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
    registered = described.get("Location", "")
    if _normalize(registered) != _normalize(location):
        raise CatalogError(f"table {name} is registered at {registered}, but paths.warehouse puts it at {location}")
    return name


def published_days(spark: SparkSession, cfg: Config, table: str) -> set[str]:
    """The dt values registered for ``table`` (empty when the table does not exist)."""
    name = table_name(cfg, table)
    if not spark.catalog.tableExists(name):
        return set()
    return {r[0].removeprefix("dt=") for r in spark.sql(f"SHOW PARTITIONS {name}").collect()}


def read_days(
    spark: SparkSession, cfg: Config, table: str, start: dt.date, end: dt.date, missing: Callable[[dt.date], str]
) -> DataFrame:
    """``table``'s rows of start .. end (with dt).

    A day not published is an InputError ``'{table} {day}: ' + missing(day)``.
    """
    published = published_days(spark, cfg, table)
    for day in inputs.days(start, end):
        if day.isoformat() not in published:
            raise inputs.InputError(f"{table} {day}: {missing(day)}")
    name = table_name(cfg, table)
    spark.sql(f"REFRESH TABLE {name}")
    return spark.table(name).where(F.col("dt").between(start.isoformat(), end.isoformat()))


def stage_path(cfg: Config, run_id: str, table: str, day: dt.date) -> str:
    return f"{cfg.path('staging').rstrip('/')}/{run_id}/{table}/dt={day.isoformat()}"


def stage(cfg: Config, run_id: str, table: str, df: DataFrame, day: dt.date) -> str:
    """Write ``df`` (exactly the table's columns) to this run's staging folder."""
    schema = contract.OUTPUT_SCHEMAS[table]
    path = stage_path(cfg, run_id, table, day)
    df.select(*[f.name for f in schema.fields]).write.mode("overwrite").parquet(path)
    return path


def stage_scored(spark: SparkSession, cfg: Config, run_id: str, df: DataFrame, day: dt.date, ok: Column) -> DataFrame:
    """Stage scored_sessions in one pass, setting aside the rows where ``ok`` is false.

    Returns the set-aside rows (read back from staging; expected to be none), so that a model
    output that is not a number is never published as a score.
    """
    schema = contract.OUTPUT_SCHEMAS["scored_sessions"]
    base = f"{stage_path(cfg, run_id, 'scored_sessions', day)}.split"
    (
        df.select(*[f.name for f in schema.fields], F.when(ok, "ok").otherwise("rejected").alias("model_output"))
        .write.partitionBy("model_output")
        .mode("overwrite")
        .parquet(base)
    )
    storage = Storage(spark)
    target = stage_path(cfg, run_id, "scored_sessions", day)
    if storage.exists(f"{base}/model_output=ok"):
        storage.rename(f"{base}/model_output=ok", target)
    else:
        spark.createDataFrame([], schema).write.mode("overwrite").parquet(target)
    rejected = f"{base}/model_output=rejected"
    if storage.exists(rejected):
        return spark.read.schema(schema).parquet(rejected)
    return spark.createDataFrame([], schema)


def read_staged(spark: SparkSession, cfg: Config, run_id: str, table: str, day: dt.date) -> DataFrame:
    return spark.read.schema(contract.OUTPUT_SCHEMAS[table]).parquet(stage_path(cfg, run_id, table, day))


def publish(spark: SparkSession, cfg: Config, run_id: str, table: str, day: dt.date) -> None:
    """Swap this run's staged day in as the table's ``dt=day`` folder and register it."""
    storage = Storage(spark)
    name = ensure_table(spark, cfg, table)
    live = f"{table_location(cfg, table)}/dt={day.isoformat()}"
    staged = stage_path(cfg, run_id, table, day)
    if storage.exists(live):
        aside = f"{superseded_root(cfg)}/{run_id}/{table}/dt={day.isoformat()}"
        if storage.exchange(staged, live):
            storage.rename(staged, aside)  # the staged path holds the old day now
        else:
            storage.rename(live, aside)
            storage.rename(staged, live)
    else:
        storage.rename(staged, live)
    _register_partition(spark, name, day)


def superseded_root(cfg: Config) -> str:
    return f"{cfg.path('staging').rstrip('/')}/superseded"


def run_started(run_id: str) -> dt.datetime | None:
    """When a run began, from its id (``YYYYMMDD-YYYYMMDDTHHMMSSZ-xxxxxx``)."""
    parts = run_id.split("-")
    try:
        return dt.datetime.strptime(parts[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except (IndexError, ValueError):
        return None


def prune_superseded(spark: SparkSession, cfg: Config, now: dt.datetime) -> list[str]:
    """Remove superseded days older than ``publish.superseded_retention_days``; returns the run ids."""
    storage = Storage(spark)
    keep = dt.timedelta(days=float(cfg.get("publish.superseded_retention_days")))
    removed = []
    for folder in storage.list_dirs(superseded_root(cfg)):
        run_id = folder.rstrip("/").rsplit("/", 1)[-1]
        started = run_started(run_id)
        if started is not None and now - started > keep:
            storage.delete(folder)
            removed.append(run_id)
    return removed


def discard_abandoned_staging(spark: SparkSession, cfg: Config, day: dt.date, current_run: str) -> list[str]:
    """Staging folders of earlier runs of ``day`` that died before cleaning up (the caller holds the lock)."""
    storage = Storage(spark)
    removed = []
    for folder in storage.list_dirs(cfg.path("staging")):
        run_id = folder.rstrip("/").rsplit("/", 1)[-1]
        if run_id.startswith(f"{day:%Y%m%d}-") and run_id != current_run and run_started(run_id) is not None:
            storage.delete(folder)
            removed.append(run_id)
    return removed


def append(spark: SparkSession, cfg: Config, run_id: str, table: str, df: DataFrame, day: dt.date) -> None:
    """Add this run's rows to an append-only table's day (one new file, named by run_id)."""
    storage = Storage(spark)
    name = ensure_table(spark, cfg, table)
    staged = stage(cfg, run_id, table, df.coalesce(1), day)
    live = f"{table_location(cfg, table)}/dt={day.isoformat()}"
    storage.mkdirs(live)
    for i, path in enumerate(storage.list_files(staged)):
        storage.rename(path, f"{live}/{run_id}-{i:03d}.parquet")
    storage.delete(f"{cfg.path('staging').rstrip('/')}/{run_id}/{table}")
    if not storage.list_dirs(f"{cfg.path('staging').rstrip('/')}/{run_id}"):
        storage.delete(f"{cfg.path('staging').rstrip('/')}/{run_id}")
    _register_partition(spark, name, day)


def _register_partition(spark: SparkSession, name: str, day: dt.date) -> None:
    spark.sql(f"ALTER TABLE {name} ADD IF NOT EXISTS PARTITION (dt='{day.isoformat()}')")
    spark.sql(f"REFRESH TABLE {name}")


def discard_staging(spark: SparkSession, cfg: Config, run_id: str) -> None:
    Storage(spark).delete(f"{cfg.path('staging').rstrip('/')}/{run_id}")
