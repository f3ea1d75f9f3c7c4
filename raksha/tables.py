"""Output tables: catalog registration and publication of one day (DESIGN.md section 5).

Write, audit, publish: a run writes each table's day to its own staging folder
``{paths.staging}/{run_id}/{table}/dt=D`` (outside every table's folder), the job audits what
it staged, then ``publish`` swaps the staged folder in as ``{warehouse}/{table}/dt=D``: the
previous folder is first moved aside to ``{paths.staging}/superseded/{run_id}/{table}/dt=D``
(kept for rollback), then the staged one is renamed into place. Other dates are never touched.
The catalog partition points at the fixed folder, so it needs no change beyond a refresh.
``run_log`` is append-only: each run adds its own file.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from raksha import contract
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


def stage_path(cfg: Config, run_id: str, table: str, day: dt.date) -> str:
    return f"{cfg.path('staging').rstrip('/')}/{run_id}/{table}/dt={day.isoformat()}"


def stage(cfg: Config, run_id: str, table: str, df: DataFrame, day: dt.date) -> str:
    """Write ``df`` (exactly the table's columns) to this run's staging folder."""
    schema = contract.OUTPUT_SCHEMAS[table]
    path = stage_path(cfg, run_id, table, day)
    df.select(*[f.name for f in schema.fields]).write.mode("overwrite").parquet(path)
    return path


def read_staged(spark: SparkSession, cfg: Config, run_id: str, table: str, day: dt.date) -> DataFrame:
    return spark.read.schema(contract.OUTPUT_SCHEMAS[table]).parquet(stage_path(cfg, run_id, table, day))


def publish(spark: SparkSession, cfg: Config, run_id: str, table: str, day: dt.date) -> None:
    """Swap this run's staged day in as the table's ``dt=day`` folder and register it."""
    storage = Storage(spark)
    name = ensure_table(spark, cfg, table)
    live = f"{table_location(cfg, table)}/dt={day.isoformat()}"
    staged = stage_path(cfg, run_id, table, day)
    if storage.exists(live):
        aside = f"{cfg.path('staging').rstrip('/')}/superseded/{run_id}/{table}/dt={day.isoformat()}"
        storage.rename(live, aside)
    storage.rename(staged, live)
    _register_partition(spark, name, day)


def append(spark: SparkSession, cfg: Config, run_id: str, table: str, df: DataFrame, day: dt.date) -> None:
    """Add this run's rows to an append-only table's day (one new file, named by run_id)."""
    storage = Storage(spark)
    name = ensure_table(spark, cfg, table)
    staged = stage(cfg, run_id, table, df.coalesce(1), day)
    live = f"{table_location(cfg, table)}/dt={day.isoformat()}"
    storage.mkdirs(live)
    for i, path in enumerate(storage.list_files(staged)):
        storage.rename(path, f"{live}/{run_id}-{i:03d}.parquet")
    _register_partition(spark, name, day)


def _register_partition(spark: SparkSession, name: str, day: dt.date) -> None:
    spark.sql(f"ALTER TABLE {name} ADD IF NOT EXISTS PARTITION (dt='{day.isoformat()}')")
    spark.sql(f"REFRESH TABLE {name}")


def discard_staging(spark: SparkSession, cfg: Config, run_id: str) -> None:
    Storage(spark).delete(f"{cfg.path('staging').rstrip('/')}/{run_id}")
