"""History, restore and vacuum of published days (Delta time travel), readers without Spark, locks."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import factories
import pandas as pd
import pytest
from conftest import test_config as config_under
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from raksha import contract
from raksha.pipeline.daily import run
from raksha.platform import locks, tables
from raksha.platform.history import RestoreError, history, restore, vacuum
from raksha.platform.storage import Storage

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 5, 6)
NIGHTLY = ("scored_sessions", "review_queue", "quarantine")


def _write_day(cfg, day: dt.date, n: int, seed: int) -> None:
    sessions = factories.sessions_frame(day, n, seed=seed)
    sessions.loc[0, "touch_pressure"] = 7.0  # out of range: one quarantined row, so every table has rows
    factories.write_partition(sessions, cfg.path("sessions"), day)
    factories.write_partition(factories.actions_frame(sessions, seed=seed), cfg.path("actions"), day)


def _rows(cfg, table: str) -> pd.DataFrame:
    """The published day as delta-rs reads it, in a stable order, nested values made comparable."""
    frame = factories.read_table_day(cfg, table, DAY)
    frame = frame.map(lambda v: repr(v.tolist()) if hasattr(v, "tolist") else v)
    return frame.sort_values(["session_id", *frame.columns[:1]]).reset_index(drop=True)


@pytest.fixture
def scored(cfg):
    _write_day(cfg, DAY, 60, seed=5)
    factories.write_untrained_models(cfg.path("models"))
    return cfg


def test_restore_republishes_exactly_what_an_earlier_run_wrote(spark, scored):
    first = run(spark, scored, DAY)
    taken = {t: _rows(scored, t) for t in NIGHTLY}  # a copy taken at the time
    # the input changes: the second run publishes other rows
    _write_day(scored, DAY, 40, seed=9)
    second = run(spark, scored, DAY)
    assert len(_rows(scored, "scored_sessions")) == 39 != len(taken["scored_sessions"])

    runs = {r.run_id: r for r in history(spark, scored, DAY)}
    assert list(runs) == [first.run_id, second.run_id]
    assert runs[first.run_id].status == runs[second.run_id].status == "SUCCEEDED"
    assert runs[first.run_id].versions["scored_sessions"] < runs[second.run_id].versions["scored_sessions"]
    assert runs[first.run_id].rows["scored_sessions"] == 59

    restored = restore(spark, scored, DAY, first.run_id)
    for table in NIGHTLY:
        pd.testing.assert_frame_equal(_rows(scored, table), taken[table])
        assert restored.versions[table] > runs[second.run_id].versions[table]  # a new commit, not a rewind
    logged = spark.table(tables.table_name(scored, "run_log")).where(f"run_id = '{restored.run_id}'").first()
    assert logged["status"] == "RESTORED" and first.run_id in logged["message"]
    assert logged["table_versions"]["scored_sessions"] == restored.versions["scored_sessions"]
    after = {r.run_id: r for r in history(spark, scored, DAY)}
    assert after[restored.run_id].restored_from == first.run_id

    with pytest.raises(RestoreError, match="wrote nothing on this date"):
        restore(spark, scored, DAY, "score-19990101T000000Z-000000")


def test_deltalake_readers_see_exactly_the_rows_spark_sql_sees_after_a_rerun(spark, scored):
    run(spark, scored, DAY)
    second = run(spark, scored, DAY)
    name = tables.table_name(scored, "scored_sessions")
    through_spark = spark.sql(f"select session_id, run_id, risk_score from {name} where dt = '{DAY}'").toPandas()
    through_rs = factories.read_table_day(scored, "scored_sessions", DAY)[["session_id", "run_id", "risk_score"]]
    key = ["session_id"]
    pd.testing.assert_frame_equal(
        through_spark.sort_values(key).reset_index(drop=True), through_rs.sort_values(key).reset_index(drop=True)
    )
    assert set(through_rs["run_id"]) == {second.run_id}  # no row of the replaced run
    # the replaced run's files are still on disk (until vacuum): a Parquet glob would see both runs
    files = list((Path(scored.path("warehouse")) / "scored_sessions" / f"dt={DAY}").glob("*.parquet"))
    assert len(pd.concat(pd.read_parquet(f) for f in files)) == 2 * len(through_rs)


def test_vacuum_keeps_runs_inside_the_retention_and_removes_older_files(spark, scored):
    first = run(spark, scored, DAY)
    second = run(spark, scored, DAY)
    folder = Path(scored.path("warehouse")) / "scored_sessions" / f"dt={DAY}"
    files_before = set(folder.glob("*.parquet"))

    # the default retention (7 days): the first run's files, replaced minutes ago, all stay
    report = vacuum(spark, scored)
    assert sum(len(f) for f in report.removed.values()) == 0
    assert set(folder.glob("*.parquet")) == files_before
    restore(spark, scored, DAY, first.run_id)  # still restorable
    assert set(factories.read_table_day(scored, "scored_sessions", DAY)["run_id"]) == {first.run_id}

    # a retention of 0 (Delta counts it in whole hours): every replaced run's files go, and they are
    # named; the published day stays whole
    report = vacuum(spark, scored.with_overrides(["publish.retention_days=0"]))
    removed = {Path(p.removeprefix("file:")) for p in report.removed["scored_sessions"]}
    assert removed == files_before  # both runs' files: the restore wrote the day anew
    assert list(folder.glob("*.parquet")) and not removed & set(folder.glob("*.parquet"))
    with pytest.raises(RestoreError, match="removed by vacuum"):
        restore(spark, scored, DAY, second.run_id)
    assert set(factories.read_table_day(scored, "scored_sessions", DAY)["run_id"]) == {first.run_id}
    assert len(factories.read_table_day(scored, "scored_sessions", DAY)) == 59


def _dead_pid() -> int:
    process = multiprocessing.get_context("spawn").Process(target=int)
    process.start()
    process.join()
    return process.pid


def test_two_runs_taking_over_a_dead_holders_lock_race_and_exactly_one_wins(spark, cfg):
    key = locks.date_key("scored_sessions", DAY)
    folder = locks.lock_folder(cfg, key)
    Path(folder).mkdir(parents=True)
    dead = {"run_id": "score-dead", "host": socket.gethostname(), "pid": _dead_pid(), "acquired_at": "then"}
    Path(folder, f"{1:012d}.json").write_text(json.dumps(dead))

    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(4)
    held = threading.Event()
    release = threading.Event()

    def contender(name: str) -> None:
        barrier.wait()
        try:
            with locks.hold(spark, cfg, [key], name):
                outcomes[name] = "won"
                held.set()
                release.wait(30)
        except locks.LockHeldError as exc:
            outcomes[name] = str(exc)

    threads = [threading.Thread(target=contender, args=(f"score-c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    assert held.wait(60)
    time.sleep(1)
    release.set()
    for t in threads:
        t.join(60)
    winners = [n for n, o in outcomes.items() if o == "won"]
    assert len(winners) == 1, outcomes
    assert all(f"run {winners[0]}" in o for n, o in outcomes.items() if n not in winners)


def test_a_lock_entry_caught_before_its_writer_filled_it_is_reported_by_its_run(spark, cfg):
    # on filesystems that create a file and then write it (HDFS, object stores) a reader can catch a
    # new entry empty: it is read again a moment later, so the refusal names the run, not "(being written)"
    key = locks.date_key("review_queue", DAY)
    folder = Path(locks.lock_folder(cfg, key))
    folder.mkdir(parents=True)
    entry = folder / f"{3:012d}.json"
    entry.write_bytes(b"")
    holder = {"run_id": "score-late", "host": socket.gethostname(), "pid": os.getpid(), "acquired_at": "now"}
    writer = threading.Timer(0.2, lambda: entry.write_text(json.dumps(holder)))
    writer.start()
    try:
        with pytest.raises(locks.LockHeldError, match=r"another run holds it: run score-late on host"):
            with locks.hold(spark, cfg, [key], "score-second"):
                pass
    finally:
        writer.join()
    assert [p.name for p in folder.iterdir()] == [entry.name]


def test_a_local_lock_entry_appears_with_its_contents_and_only_once(spark, tmp_path):
    storage = Storage(spark)
    folder = tmp_path / "locks"
    targets = [folder / f"{i:012d}.json" for i in range(300)]
    current = [targets[0]]
    seen_empty: list[str] = []
    done = threading.Event()

    def watch() -> None:  # reads the entry being created over and over, as a contender listing it would
        while not done.is_set():
            target = current[0]
            try:
                if target.read_bytes() == b"":
                    seen_empty.append(target.name)
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        firsts, seconds = [], []
        for target in targets:
            current[0] = target
            time.sleep(0.001)
            firsts.append(storage.create_exclusive(str(target), b'{"run_id": "first"}'))
            seconds.append(storage.create_exclusive(str(target), b'{"run_id": "second"}'))
    finally:
        done.set()
        watcher.join()
    assert all(firsts) and not any(seconds) and not seen_empty
    entries = sorted(folder.iterdir())  # nothing left aside
    assert entries == targets and {p.read_bytes() for p in entries} == {b'{"run_id": "first"}'}


def test_a_lock_held_on_another_host_is_never_taken_over(spark, cfg):
    key = locks.date_key("verdicts", DAY)
    folder = Path(locks.lock_folder(cfg, key))
    folder.mkdir(parents=True)
    other = {"run_id": "label-elsewhere", "host": "another-host", "pid": 1, "acquired_at": "then"}
    (folder / f"{7:012d}.json").write_text(json.dumps(other))
    with pytest.raises(locks.LockHeldError, match=rf"run label-elsewhere on host another-host .*remove {folder}"):
        with locks.hold(spark, cfg, [key], "label-here"):
            pass
    assert [p.name for p in folder.iterdir()] == [f"{7:012d}.json"]


def test_the_nightly_job_never_breaks_a_date_held_from_another_host_even_if_its_pid_is_free_here(spark, tmp_path):
    """Another host's pid says nothing about this host: the job is refused, the entry stays, and the
    message names the folder to clear by hand."""
    cfg = config_under(tmp_path, f"paths.models={REPO / 'models'}")
    key = locks.date_key("scored_sessions", DAY)
    folder = Path(locks.lock_folder(cfg, key))
    folder.mkdir(parents=True)
    entry = folder / f"{3:012d}.json"
    elsewhere = {"run_id": "score-elsewhere", "host": "another-host", "pid": _dead_pid(), "acquired_at": "then"}
    entry.write_text(json.dumps(elsewhere))
    # no input exists for DAY: a run that got past its locks would fail on the missing partition instead
    refusal = (
        rf"{key}: another run holds it: run score-elsewhere on host another-host .*remove {re.escape(str(folder))}\)"
    )
    with pytest.raises(locks.LockHeldError, match=refusal):
        run(spark, cfg, DAY)
    assert [p.name for p in folder.iterdir()] == [entry.name] and json.loads(entry.read_text()) == elsewhere
    # the dates it had taken before meeting the held one are released; no table was created
    others = [p for p in (Path(cfg.path("warehouse")) / "_locks").rglob("*.json") if p.parent != folder]
    assert others and all(json.loads(p.read_text()).get("released") for p in others)
    assert not (Path(cfg.path("warehouse")) / "scored_sessions").exists()
    # cleared by hand, as the message says: the date can be taken
    shutil.rmtree(folder)
    with locks.hold(spark, cfg, [key], "score-after"):
        assert _holder(folder)["run_id"] == "score-after"


def _holder(folder: Path) -> dict:
    return json.loads(max(folder.glob("*.json")).read_text())


def test_a_commit_waits_for_another_writer_of_the_table_then_commits(spark, cfg):
    key = locks.commit_key("run_log")
    taken = threading.Event()
    done = threading.Event()

    def other_writer() -> None:
        with locks.hold(spark, cfg, [key], "score-other"):
            taken.set()
            time.sleep(2)
        done.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert taken.wait(30)
    started = time.monotonic()
    with locks.hold(spark, cfg, [key], "score-me", wait_s=60):
        assert done.is_set()  # it got the lock only once the other writer let go
    assert time.monotonic() - started >= 1
    thread.join()
    with locks.hold(spark, cfg, [key], "score-holder"):
        with pytest.raises(locks.LockHeldError, match="run score-holder"):
            with locks.hold(spark, cfg, [key], "score-impatient", wait_s=0.5):
                pass


def test_delta_constraints_refuse_rows_that_break_the_contract(spark, cfg):
    name = tables.ensure_table(spark, cfg, "run_log")
    properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    assert "status IN" in properties["delta.constraints.status_known"]
    assert properties["delta.enableDeletionVectors"] == "false"
    scored = tables.ensure_table(spark, cfg, "scored_sessions")
    constraints = {r["key"] for r in spark.sql(f"SHOW TBLPROPERTIES {scored}").collect()}
    assert {"delta.constraints.risk_score_range", "delta.constraints.decision_known"} <= constraints
    assert "delta.dataSkippingStatsColumns" not in properties  # only the tables of every session or user
    now = dt.datetime(2026, 5, 6, 1, 0)
    row = {
        "run_id": "score-x", "status": "MAYBE", "message": None, "started_at": now, "finished_at": now,
        "duration_s": 0.0, "counts": {}, "decisions": {}, "ae_model_version": None, "seq_model_version": None,
        "model_checksums": {}, "ae_threshold": None, "model_loads": {}, "timings_s": {}, "table_versions": {},
        "config_hash": "h", "code_version": "v", "spark_master": "local",
    }  # fmt: skip
    bad = spark.createDataFrame([row], contract.RUN_LOG_SCHEMA)
    with pytest.raises(Exception, match="status_known"):
        tables.append_day(spark, cfg, "run_log", bad, DAY, "score-x")
    assert DeltaTable.forName(spark, name).toDF().count() == 0
    tables.append_day(spark, cfg, "run_log", bad.withColumn("status", F.lit("FAILED")), DAY, "score-x")
    assert DeltaTable.forName(spark, name).toDF().count() == 1


def test_a_table_registered_elsewhere_while_it_is_created_is_refused_naming_both_places(
    spark, cfg, monkeypatch, tmp_path
):
    """ensure_table describes a table only when it did not make it: one the catalog gained between its look and
    its CREATE (another process's, at another folder) is checked as any registered table, not taken as made."""
    name = tables.table_name(cfg, "quarantine")
    elsewhere = tmp_path / "elsewhere"
    spark.createDataFrame([], contract.QUARANTINE_SCHEMA).write.format("delta").save(str(elsewhere))
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{cfg.get('catalog.database')}`")
    spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{elsewhere}'")
    monkeypatch.setattr(spark.catalog, "tableExists", lambda *args, **kwargs: False)  # looked before it came
    with pytest.raises(tables.CatalogError, match=r"registered at .*elsewhere, but paths.warehouse puts it at "):
        tables.ensure_table(spark, cfg, "quarantine")


@pytest.mark.parametrize("made", ["by this raksha", "by an older raksha"])
def test_the_columns_of_nearly_distinct_values_are_written_without_a_dictionary(spark, cfg, made):
    """scored_sessions' contract.TABLE_PLAIN_COLUMNS (Parquet paths of its files) are written plain; its columns
    of few values keep Parquet's dictionary. A table an older raksha made gets the setting, for the files
    written from then on."""
    import pyarrow.parquet as pq

    location = tables.table_location(cfg, "scored_sessions")
    if made == "by an older raksha":
        older = spark.createDataFrame([], contract.SCORED_SESSIONS_SCHEMA).withColumn("dt", F.lit("").cast("string"))
        older.write.format("delta").partitionBy("dt").save(location)  # Parquet's defaults, no data file
    rows = factories.scored_rows(spark, DAY, [f"s{i}" for i in range(50)], "score-x")
    tables.publish_day(spark, cfg, "scored_sessions", rows, DAY, "score-x")
    dictionary = {}
    for path in Path(location).rglob("*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        for i in range(metadata.num_columns):
            column = metadata.row_group(0).column(i)
            dictionary[column.path_in_schema] = column.has_dictionary_page
    plain = set(contract.TABLE_PLAIN_COLUMNS["scored_sessions"])
    assert dictionary and plain <= set(dictionary)  # each is a column of the files, as Parquet names it
    assert [c for c in sorted(plain) if dictionary[c]] == []
    assert dictionary["decision"] and dictionary["run_id"]


def test_the_files_of_a_days_sessions_record_statistics_of_the_columns_their_readers_filter_by(spark, cfg):
    """scored_sessions' data files record minimum, maximum and null count of contract.TABLE_STATS_COLUMNS
    only (Delta's default is the first 32 columns); a table an older raksha made gets the setting, for the
    files written from then on."""
    from raksha.platform.storage import Storage

    location = tables.table_location(cfg, "scored_sessions")
    older = spark.createDataFrame([], contract.SCORED_SESSIONS_SCHEMA).withColumn("dt", F.lit("").cast("string"))
    older.write.format("delta").partitionBy("dt").save(location)  # Delta's default statistics
    name = tables.ensure_table(spark, cfg, "scored_sessions")
    properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    assert properties["delta.dataSkippingStatsColumns"] == "session_id,user_id,session_start,decision,risk_score"

    commit = tables.publish_day(
        spark, cfg, "scored_sessions", factories.scored_rows(spark, DAY, ["s1", "s2"], "score-x"), DAY, "score-x"
    )
    text = Storage(spark).read_bytes(f"{location}/_delta_log/{commit.version:020d}.json").decode()
    stats = [json.loads(a["add"]["stats"]) for a in map(json.loads, text.splitlines()) if "add" in a]
    assert stats and all(set(s["nullCount"]) == set(contract.TABLE_STATS_COLUMNS["scored_sessions"]) for s in stats)
    assert min(s["minValues"]["session_id"] for s in stats) == "s1"
    assert DeltaTable.forName(spark, name).toDF().where(F.col("session_id") == "s2").count() == 1


def test_the_days_a_table_holds_are_those_of_its_current_version_whatever_its_folders(spark, tmp_path):
    """tables.days_of lists the days from the table's log, not its folders: a replaced day's old files and a
    deleted day's folder stay on disk; a table whose files are not in dt= folders has its rows read instead."""

    def days_read(frame) -> set[str]:
        return {r[0] for r in frame.select("dt").distinct().collect()}

    hive, prefixed = tmp_path / "hive", tmp_path / "prefixed"
    spark.sql(f"CREATE TABLE delta.`{hive}` (a INT, dt STRING) USING delta PARTITIONED BY (dt)")
    spark.sql(
        f"CREATE TABLE delta.`{prefixed}` (a INT, dt STRING) USING delta PARTITIONED BY (dt) TBLPROPERTIES "
        "('delta.columnMapping.mode' = 'name', 'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')"
    )
    for path in (hive, prefixed):
        spark.sql(f"INSERT INTO delta.`{path}` VALUES (1, '2026-05-01'), (2, '2026-05-02'), (3, '2026-05-03')")
        spark.sql(f"INSERT INTO delta.`{path}` REPLACE WHERE dt = '2026-05-02' VALUES (4, '2026-05-02')")
        DeltaTable.forPath(spark, str(path)).delete("dt = '2026-05-03'")
    assert (hive / "dt=2026-05-03").is_dir()  # the deleted day's files are still there
    for path in (hive, prefixed):
        frame = spark.read.format("delta").load(str(path))
        assert tables.days_of(frame) == days_read(frame) == {"2026-05-01", "2026-05-02"}
    assert not any(p.name.startswith("dt=") for p in prefixed.iterdir())  # the read, not the folders
