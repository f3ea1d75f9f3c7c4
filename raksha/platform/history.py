"""The runs behind a date, and going back to one: ``raksha history``, ``restore`` and ``vacuum``.

Every commit a run makes carries its run id and the days it replaced (``raksha.platform.tables``), and
every nightly run leaves a run_log row with its counts, model versions and the table versions it
committed. ``history`` joins the two for one date. ``restore`` republishes the date in every table
an earlier run wrote, exactly as that run wrote it (Delta time travel to the version it
committed), as new commits of a ``restore`` run, logged in run_log. ``vacuum`` removes the files
no current version references and that were replaced longer than ``publish.retention_days`` ago,
so every run replaced within the retention stays restorable.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.platform import locks, runs, tables
from raksha.platform.storage import Storage

log = logging.getLogger(__name__)

RUN_LOG = "run_log"
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"


class RestoreError(RuntimeError):
    """The run cannot be restored as asked (nothing was changed)."""


@dataclass
class RunHistory:
    """One run that wrote a date: its commits per table and what run_log says of it."""

    run_id: str
    kind: str
    committed_at: dt.datetime | None = None
    versions: dict[str, int] = field(default_factory=dict)  # table -> version
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows it wrote
    status: str | None = None  # from run_log; None when the run left no run_log row
    ae_model_version: str | None = None
    seq_model_version: str | None = None
    message: str | None = None
    restored_from: str | None = None


def _day_commits(spark: SparkSession, cfg: Config, day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """table -> the tagged commits that replaced ``day`` (newest first); run_log left out."""
    iso = day.isoformat()
    out = {}
    for table in contract.OUTPUT_SCHEMAS:
        if table != RUN_LOG:
            out[table] = [c for c in tables.commits(spark, cfg, table) if iso in c.get("days", [])]
    return out


def history(spark: SparkSession, cfg: Config, day: dt.date) -> list[RunHistory]:
    """The runs that wrote ``day``, oldest first."""
    found: dict[str, RunHistory] = {}
    for table, commits in _day_commits(spark, cfg, day).items():
        for commit in commits:
            run = found.setdefault(commit["run_id"], RunHistory(commit["run_id"], commit.get("kind", "?")))
            if table not in run.versions:  # newest first: a run's last commit to the table
                run.versions[table] = commit["version"]
                metrics = commit["metrics"]
                run.rows[table] = int(metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted") or 0)
            run.restored_from = run.restored_from or commit.get("restored_from")
            stamp = commit["timestamp"]
            run.committed_at = stamp if run.committed_at is None else max(run.committed_at, stamp)
    if tables.exists(spark, cfg, RUN_LOG):
        logged = (
            spark.table(tables.table_name(cfg, RUN_LOG))
            .where(F.col("dt") == day.isoformat())
            .select(
                "run_id", "status", "ae_model_version", "seq_model_version", "message", "finished_at", "table_versions"
            )
            .collect()
        )
        for row in logged:
            run = found.setdefault(row["run_id"], RunHistory(row["run_id"], row["run_id"].split("-", 1)[0]))
            for table, version in (row["table_versions"] or {}).items():
                run.versions.setdefault(table, int(version))  # also a day left empty, with no commit of its own
            run.status = row["status"]
            run.ae_model_version, run.seq_model_version = row["ae_model_version"], row["seq_model_version"]
            run.message = row["message"]
            if run.committed_at is None:
                run.committed_at = row["finished_at"]
    return sorted(found.values(), key=lambda r: (r.committed_at or dt.datetime.min, r.run_id))


def print_history(day: dt.date, found: list[RunHistory]) -> None:
    if not found:
        print(f"{day}: no run wrote this date")
        return
    print(f"{day}: {len(found)} runs (oldest first); table versions and rows written")
    for run in found:
        when = run.committed_at.strftime("%Y-%m-%d %H:%M:%S") if run.committed_at else "?"
        status = run.status or "NO RUN_LOG ROW (did not finish)"
        print(f"  {run.run_id}  {when}  {status}")
        if run.ae_model_version or run.seq_model_version:
            print(f"    models: {run.ae_model_version} / {run.seq_model_version}")
        for table, version in sorted(run.versions.items()):
            print(f"    {table:<18} version {version:<5} {run.rows.get(table, 0)} rows")
        if run.restored_from:
            print(f"    restored from run {run.restored_from}")
        elif run.message:
            print(f"    {run.message}")


def restore(spark: SparkSession, cfg: Config, day: dt.date, source_run: str) -> RunHistory:
    """Republish ``day`` in every table ``source_run`` wrote, as it wrote it; returns the restore run."""
    versions = {}
    for table, commits in _day_commits(spark, cfg, day).items():
        mine = [c for c in commits if c["run_id"] == source_run]
        if mine:
            versions[table] = mine[0]["version"]
    source_log = _run_log_row(spark, cfg, day, source_run)
    if source_log is not None:  # the versions it published, also where it made no commit (an empty day)
        versions.update({t: int(v) for t, v in (source_log["table_versions"] or {}).items()})
    if not versions:
        raise RestoreError(f"{day}: run {source_run} wrote nothing on this date (see `raksha history --date {day}`)")
    run_id = runs.new_run_id("restore")
    started = dt.datetime.now(dt.UTC)
    written = list(versions) + [RUN_LOG]
    result = RunHistory(run_id, "restore", restored_from=source_run)
    with locks.hold(spark, cfg, [locks.date_key(t, day) for t in written], run_id):
        frames = {}
        for table, version in versions.items():
            frame = tables.read_version(spark, cfg, table, version).where(F.col("dt") == day.isoformat())
            try:
                frame.select(F.count("*")).first()  # every file of that version is still there
            except Exception as exc:  # noqa: BLE001 - py4j wraps the missing-file error
                if "FileNotFound" in str(exc) or "DELTA_FILE_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
                    raise RestoreError(
                        f"{day}: run {source_run}'s files of {table} were removed by vacuum "
                        f"(older than publish.retention_days); it cannot be restored"
                    ) from None
                raise
            frames[table] = frame
        for table, frame in frames.items():
            commit = tables.publish_days(spark, cfg, table, frame, [day], run_id, restored_from=source_run)
            result.versions[table], result.rows[table] = commit.version, commit.rows
        from raksha.pipeline.daily import append_run_log

        append_run_log(
            spark,
            cfg,
            day,
            {
                "run_id": run_id,
                "status": "RESTORED",
                "message": f"restored {day} as run {source_run} wrote it",
                "started_at": started,
                "counts": {f"{t}_rows": n for t, n in result.rows.items()},
                "ae_model_version": source_log["ae_model_version"] if source_log else None,
                "seq_model_version": source_log["seq_model_version"] if source_log else None,
                "model_checksums": dict(source_log["model_checksums"]) if source_log else {},
                "ae_threshold": source_log["ae_threshold"] if source_log else None,
                "decisions": dict(source_log["decisions"]) if source_log else {},
                "table_versions": result.versions,
            },
        )
    if contract.USER_BASELINES in result.versions:  # later snapshots were built on the replaced one
        from raksha.baselines.nightly import rebuild_after

        rebuild_after(spark, cfg, day, run_id)
    result.status = "RESTORED"
    if source_log:
        result.ae_model_version = source_log["ae_model_version"]
        result.seq_model_version = source_log["seq_model_version"]
    return result


def _run_log_row(spark: SparkSession, cfg: Config, day: dt.date, run_id: str):
    if not tables.exists(spark, cfg, RUN_LOG):
        return None
    return (
        spark.table(tables.table_name(cfg, RUN_LOG))
        .where((F.col("dt") == day.isoformat()) & (F.col("run_id") == run_id))
        .first()
    )


@dataclass
class VacuumReport:
    run_id: str
    retention_days: float
    cutoff: dt.datetime
    removed: dict[str, list[str]] = field(default_factory=dict)  # table -> files
    removed_bytes: dict[str, int] = field(default_factory=dict)


def vacuum(spark: SparkSession, cfg: Config) -> VacuumReport:
    """Remove every table's files that were replaced more than ``publish.retention_days`` ago."""
    days = tables.retention_days(cfg)
    if days < 0:
        raise ValueError(f"publish.retention_days must be >= 0, got {days}")
    run_id = runs.new_run_id("vacuum")
    hours = round(days * 24.0)  # Delta counts the retention in whole hours
    report = VacuumReport(run_id, days, dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours))
    storage = Storage(spark)
    previous = spark.conf.get(RETENTION_CHECK_CONF, "true")
    if days < tables.MIN_FILE_RETENTION_DAYS:
        # Delta refuses a retention under 7 days unless told: a reader older than that may lose files
        spark.conf.set(RETENTION_CHECK_CONF, "false")
    try:
        for table in contract.OUTPUT_SCHEMAS:
            if not tables.exists(spark, cfg, table):
                continue
            location = tables.table_location(cfg, table)
            with tables.committing(spark, cfg, table, run_id, []) as name:
                before = storage.list_tree(location)
                DeltaTable.forName(spark, name).vacuum(hours)
                after = storage.list_tree(location)
            doomed = sorted(set(before) - set(after))
            report.removed[table] = doomed
            report.removed_bytes[table] = sum(before[p] for p in doomed)
            log.info("vacuum %s: %s: %d files removed", run_id, name, len(doomed))
    finally:
        spark.conf.set(RETENTION_CHECK_CONF, previous)
    return report


def print_vacuum(report: VacuumReport) -> None:
    total = sum(len(f) for f in report.removed.values())
    print(
        f"vacuum {report.run_id}: retention {report.retention_days:g} days: files replaced before "
        f"{report.cutoff:%Y-%m-%d %H:%M:%S} UTC removed ({total} files); runs replaced after that stay restorable"
    )
    for table, files in report.removed.items():
        print(f"  {table:<18} {len(files)} files, {report.removed_bytes.get(table, 0) / 1e6:.1f} MB")
