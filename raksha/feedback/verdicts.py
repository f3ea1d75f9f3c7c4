"""Analysts' verdicts: ``raksha label --file verdicts.csv|parquet`` lands them in the ``verdicts`` table.

This module is the Spark side: reading the file from storage, checking its sessions against
``scored_sessions``, reading the table's current verdicts and the MERGE. What a verdict file holds
and how its rows are checked is ``raksha.feedback.verdict_file``; which verdict wins is
``raksha.feedback.verdict_merge``; the printed report is ``raksha.feedback.reports``.

A row whose session is not in ``scored_sessions`` for its dt is rejected too. The valid rows land
anyway; the report says what landed and what was rejected.

The verdicts land by one Delta MERGE on (dt, session_id) for the whole file, inside
``raksha.platform.tables.committing``: a new session is inserted, a current verdict is replaced
only by one that wins the order of ``verdict_merge``, so a reader sees the table before the file or
after it, never half of it. The run (its id from ``raksha.platform.runs``) holds the verdicts
table's lock for each day in the file (``raksha.platform.locks``): a second ``raksha label``
touching one of those days is refused, naming the holder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract
from raksha.config import Config
from raksha.feedback.verdict_file import VerdictFileError, check_rows, parse_file, rejections
from raksha.feedback.verdict_merge import WINS, LabelReport, settle
from raksha.platform import locks, runs, tables
from raksha.platform.storage import Storage
from raksha.platform.uris import local_path

log = logging.getLogger(__name__)

TABLE = "verdicts"


def read_verdict_file(spark: SparkSession, path: str) -> pd.DataFrame:
    """The file's rows as Python values, with ``line``; a file-level problem is a VerdictFileError."""
    storage = Storage(spark)
    if not storage.exists(path):
        raise VerdictFileError(f"verdicts file {path}: no such file")
    if storage.is_dir(path):
        raise VerdictFileError(f"verdicts file {path}: is a folder, expected one .csv or .parquet file")
    return parse_file(storage.read_bytes(path), path)


def _wanted(spark: SparkSession, rows: pd.DataFrame) -> tuple[DataFrame, list[str]]:
    """The (dt, session_id) pairs of ``rows`` as a small frame to join on, and their days."""
    pairs = sorted({(d.isoformat(), s) for d, s in zip(rows["dt"], rows["session_id"], strict=True)})
    return spark.createDataFrame(pairs, "dt string, session_id string"), sorted({d for d, _ in pairs})


def unscored(spark: SparkSession, cfg: Config, rows: pd.DataFrame) -> dict[int, str]:
    """Reasons for the rows whose session is not in scored_sessions for their dt (by line)."""
    keys = rows.dropna(subset=["session_id", "dt"])
    if keys.empty:
        return {}
    name = tables.table_name(cfg, "scored_sessions")
    found: set[tuple[str, str]] = set()
    scored_days: set[str] = set()
    if spark.catalog.tableExists(name):
        wanted, days = _wanted(spark, keys)
        scored = spark.table(name).where(F.col("dt").isin(days)).select("dt", "session_id")
        found = {
            (r["dt"], r["session_id"]) for r in scored.join(wanted.hint("broadcast"), ["dt", "session_id"]).collect()
        }
        first, last = min(keys["dt"]), max(keys["dt"])
        scored_days = tables.published_days(spark, cfg, "scored_sessions", first, last)
    out = {}
    for line, day, session_id in zip(keys["line"], keys["dt"], keys["session_id"], strict=True):
        iso = day.isoformat()
        if iso not in scored_days:
            out[int(line)] = f"no scored_sessions for dt {iso} (score that day first)"
        elif (iso, session_id) not in found:
            out[int(line)] = f"session {session_id} is not in scored_sessions for dt {iso}"
    return out


def existing_rows(spark: SparkSession, cfg: Config, incoming: pd.DataFrame) -> pd.DataFrame:
    """The table's current rows for the (dt, session_id) pairs of ``incoming``, with dt as a date."""
    columns = ["dt", *[f.name for f in contract.VERDICTS_SCHEMA.fields]]
    if not tables.exists(spark, cfg, TABLE) or incoming.empty:
        return pd.DataFrame(columns=columns)
    wanted, days = _wanted(spark, incoming)
    rows = (
        spark.table(tables.table_name(cfg, TABLE))
        .where(F.col("dt").isin(days))
        .join(wanted.hint("broadcast"), ["dt", "session_id"])
        .select(*columns)
        .toPandas()
    )
    rows["dt"] = [dt.date.fromisoformat(d) for d in rows["dt"]]
    return rows


def _merge(spark: SparkSession, cfg: Config, run_id: str, winners: pd.DataFrame) -> None:
    """One MERGE on (dt, session_id) of the winning incoming rows (one per session and day)."""
    out = winners[["dt", *[f.name for f in contract.VERDICTS_SCHEMA.fields]]].copy()
    out["dt"] = [d.isoformat() for d in out["dt"]]
    out["reviewed_at"] = pd.to_datetime(out["reviewed_at"]).astype("datetime64[us]")
    out["ingested_at"] = pd.to_datetime(out["ingested_at"]).astype("datetime64[us]")
    out["source_line"] = out["source_line"].astype("int32")
    schema = T.StructType([T.StructField("dt", T.StringType(), False), *contract.VERDICTS_SCHEMA.fields])
    source = spark.createDataFrame(out, schema)
    days = sorted({dt.date.fromisoformat(d) for d in out["dt"]})
    in_days = ", ".join(f"'{d.isoformat()}'" for d in days)
    with tables.committing(spark, cfg, TABLE, run_id, days) as name:
        (
            DeltaTable.forName(spark, name)
            .alias("t")
            .merge(source.alias("s"), f"t.dt IN ({in_days}) AND t.dt = s.dt AND t.session_id = s.session_id")
            .whenMatchedUpdateAll(condition=WINS)
            .whenNotMatchedInsertAll()
            .execute()
        )


def source_name(path: str) -> str:
    local = local_path(path)
    return os.path.abspath(local) if local is not None else path


def label(spark: SparkSession, cfg: Config, path: str, now: dt.datetime | None = None) -> LabelReport:
    """Check the file's rows, land the valid ones in the verdicts table, return the report."""
    now = now or dt.datetime.now(dt.UTC)
    run_id = runs.new_run_id("label", now)
    report = LabelReport(file=path, table=tables.table_name(cfg, TABLE), run_id=run_id)
    rows, reasons = check_rows(read_verdict_file(spark, path), now)
    for line, reason in unscored(spark, cfg, rows).items():
        reasons.setdefault(line, []).append(reason)
    report.rows_read = len(rows)
    report.rejected = rejections(rows, reasons)
    valid = rows[~rows["line"].isin(reasons)].drop(columns="dt_text")
    report.valid_rows = len(valid)
    if valid.empty:
        return report
    valid["source_file"] = source_name(path)
    valid["source_line"] = valid["line"].astype("int32")
    valid["run_id"] = run_id
    valid["ingested_at"] = pd.Timestamp(now.astimezone(dt.UTC).replace(tzinfo=None)).floor("us")
    days = sorted(set(valid["dt"]))
    with locks.hold(spark, cfg, [locks.date_key(TABLE, d) for d in days], run_id):
        winners, report.days = settle(existing_rows(spark, cfg, valid), valid)
        if not winners.empty:  # the same file twice: nothing wins, no commit
            _merge(spark, cfg, run_id, winners)
            log.info("verdicts: %s", report.days)
    return report


def read_verdicts(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """The current verdicts of the window (dt, session_id, verdict, ...)."""
    name = tables.table_name(cfg, TABLE)
    if not spark.catalog.tableExists(name):
        raise RuntimeError(f"{name}: no such table (land verdicts with `raksha label --file ...` first)")
    return spark.table(name).where(F.col("dt").between(start.isoformat(), end.isoformat()))
