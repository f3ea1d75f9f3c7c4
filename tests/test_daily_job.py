"""The whole nightly job on tiny Parquet in tmp_path, through the shared SparkSession."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import factories
import pandas as pd
import pytest
from conftest import test_config as config_under
from delta.tables import DeltaTable

from raksha import contract
from raksha.pipeline.daily import WRITTEN_TABLES, run
from raksha.platform import session, tables
from raksha.platform.session import SHUFFLE_PARTITIONS, hive_resources_dir, shuffle_partitions_for

DAY = dt.date(2026, 3, 4)


def _tree_digest(folder: Path) -> dict[str, str]:
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _by_session(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("session_id").reset_index(drop=True)


def _commits(spark, cfg, table: str) -> list[tuple[int, str | None]]:
    """(version, run_id of its commit) for every commit of the table, oldest first."""
    history = DeltaTable.forName(spark, tables.table_name(cfg, table)).history()
    out = []
    for row in history.select("version", "userMetadata").orderBy("version").collect():
        meta = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
        out.append((int(row["version"]), meta.get("run_id")))
    return out


@pytest.fixture
def cfg(tmp_path):
    """The whole job as it runs by default: with the user baselines."""
    return config_under(tmp_path, "baseline.enabled=true")


@pytest.fixture
def day_input(cfg):
    sessions = factories.sessions_frame(DAY, 300, seed=1)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions, seed=1), cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    return sessions


def test_every_session_scored_once_and_rerun_replaces_the_day(spark, cfg, day_input):
    first = run(spark, cfg, DAY)
    name = tables.table_name(cfg, "scored_sessions")
    scored = spark.table(name).where(f"dt = '{DAY}'").toPandas()
    assert sorted(scored["session_id"]) == sorted(day_input["session_id"])
    assert first.counts["sessions_read"] == 300 == first.counts["sessions_scored"]
    assert first.counts["sessions_quarantined"] == 0
    assert set(scored["decision"]) <= {"ALLOW", "REVIEW", "BLOCK"}
    assert (scored["run_id"] == first.run_id).all()

    # the rerun shuffles into one partition per 20 sessions (15, where the shared session has 4): the same
    # scores, and the session's own setting back after the run
    configured = spark.conf.get(SHUFFLE_PARTITIONS)
    second = run(spark, cfg.with_overrides(["spark.sessions_per_shuffle_partition=20"]), DAY)
    assert spark.conf.get(SHUFFLE_PARTITIONS) == configured
    again = spark.table(name).where(f"dt = '{DAY}'").toPandas()
    assert len(again) == 300 and again["session_id"].is_unique
    assert (again["run_id"] == second.run_id).all()
    columns = ["session_id", "ae_error", "ae_is_anomaly", "ae_risk_percent", "seq_risk", "seq_is_block", "decision"]
    pd.testing.assert_frame_equal(
        scored[columns].sort_values("session_id").reset_index(drop=True),
        again[columns].sort_values("session_id").reset_index(drop=True),
    )
    # a reader outside Spark (delta-rs) sees exactly the published rows: the rerun's, not the replaced run's
    direct = factories.read_table_day(cfg, "scored_sessions", DAY)
    assert len(direct) == 300 and direct["session_id"].is_unique
    assert (direct["run_id"] == second.run_id).all()
    # run_log keeps one row per run
    runs = spark.table(tables.table_name(cfg, "run_log")).where(f"dt = '{DAY}'").collect()
    assert sorted(r["run_id"] for r in runs) == sorted([first.run_id, second.run_id])
    assert all(r["status"] == "SUCCEEDED" and r["counts"]["sessions_read"] == 300 for r in runs)
    # each phase of the run timed once: setup, the baselines' load and fold included, none counted twice
    phases = {"setup", "read", "baselines_load", "score", "audit", "publish", "baselines", "report"}
    for timed in (dict(r["timings_s"]) for r in runs):
        assert set(timed) == {*phases, "total"}, timed
        assert sum(timed[p] for p in phases) <= timed["total"], timed


def test_a_large_day_shuffles_into_more_partitions_for_its_run_only(spark, cfg):
    configured = int(spark.conf.get(SHUFFLE_PARTITIONS))
    per = int(cfg.get("spark.sessions_per_shuffle_partition"))
    with shuffle_partitions_for(spark, cfg, per * configured) as used:  # no more than configured: untouched
        assert used == configured == int(spark.conf.get(SHUFFLE_PARTITIONS))
    with shuffle_partitions_for(spark, cfg, per * configured * 3 + 1) as used:
        assert used == configured * 3 + 1 == int(spark.conf.get(SHUFFLE_PARTITIONS))
    assert int(spark.conf.get(SHUFFLE_PARTITIONS)) == configured
    with pytest.raises(RuntimeError), shuffle_partitions_for(spark, cfg, per * configured * 2):
        assert int(spark.conf.get(SHUFFLE_PARTITIONS)) == configured * 2
        raise RuntimeError("the run failed")
    assert int(spark.conf.get(SHUFFLE_PARTITIONS)) == configured  # put back on an error too
    off = cfg.with_overrides(["spark.sessions_per_shuffle_partition=0"])
    with shuffle_partitions_for(spark, off, 10**9) as used:
        assert used == configured


def test_rerun_leaves_other_dates_untouched(spark, cfg, day_input):
    other = DAY - dt.timedelta(days=1)
    sessions = factories.sessions_frame(other, 40, seed=2)
    factories.write_partition(sessions, cfg.path("sessions"), other)
    factories.write_partition(factories.actions_frame(sessions), cfg.path("actions"), other)
    run(spark, cfg, other)
    # a replaceWhere commit for DAY never adds or removes a file of another date: its files stay as they were
    other_folder = Path(cfg.path("warehouse")) / "scored_sessions" / f"dt={other}"
    before = _tree_digest(other_folder)
    other_rows = _by_session(factories.read_table_day(cfg, "scored_sessions", other))
    first = run(spark, cfg, DAY)
    rows = factories.read_table_day(cfg, "scored_sessions", DAY)
    history = {t: _commits(spark, cfg, t) for t in WRITTEN_TABLES}
    second = run(spark, cfg, DAY)
    assert _tree_digest(other_folder) == before
    pd.testing.assert_frame_equal(_by_session(factories.read_table_day(cfg, "scored_sessions", other)), other_rows)
    # the rerun replaced DAY with the same rows, by exactly one new version of each table, tagged with its run
    again = factories.read_table_day(cfg, "scored_sessions", DAY)
    assert (rows["run_id"] == first.run_id).all() and (again["run_id"] == second.run_id).all()
    columns = ["session_id", "ae_error", "risk_score", "decision", "dq_flags"]
    pd.testing.assert_frame_equal(_by_session(again)[columns], _by_session(rows)[columns])
    assert second.counts["sessions_quarantined"] == 0 and second.counts["review_cases"] > 0
    for table in WRITTEN_TABLES:
        after = _commits(spark, cfg, table)
        if table in ("quarantine", contract.USER_BASELINE_REFERENCE):  # an empty day replacing an empty day: no commit
            assert after == history[table] and second.versions[table] == after[-1][0], table
            continue
        assert after[:-1] == history[table] and after[-1] == (history[table][-1][0] + 1, second.run_id), table
        if table in second.versions:
            assert second.versions[table] == after[-1][0]
    counts = spark.sql(f"select dt, count(*) n from {tables.table_name(cfg, 'scored_sessions')} group by dt").collect()
    assert {r["dt"]: r["n"] for r in counts} == {str(other): 40, str(DAY): 300}


def test_models_load_once_per_python_worker_not_per_batch(spark, cfg, day_input):
    # conftest sets maxRecordsPerBatch=50: 300 sessions make several batches per model
    result = run(spark, cfg, DAY)
    for model in ("behavior_autoencoder", "sequence_lstm"):
        loads = result.model_loads[f"{model}.loads"]
        workers = result.model_loads[f"{model}.workers"]
        batches = result.model_loads[f"{model}.batches"]
        assert loads == workers >= 1, result.model_loads
    assert result.model_loads["behavior_autoencoder.batches"] >= 6 > result.model_loads["behavior_autoencoder.loads"]
    logged = spark.table(tables.table_name(cfg, "run_log")).where(f"run_id = '{result.run_id}'").first()
    assert logged["model_loads"]["behavior_autoencoder.loads"] == result.model_loads["behavior_autoencoder.loads"]
    assert batches >= 1


def test_session_order_and_padding_follow_the_notebook(spark, cfg):
    sessions = factories.sessions_frame(DAY, 3, seed=3)
    ids = list(sessions["session_id"])
    long_seq = ["LOGIN"] + ["VIEW_BALANCE"] * 12 + ["TRANSFER_LARGE"]
    actions = factories.actions_frame(sessions, sequences={ids[0]: long_seq, ids[1]: ["LOGIN", "OPEN_CHAT", "LOGOUT"]})
    actions = actions[actions["session_id"] != ids[2]]  # a session without actions
    # shuffled rows; seq_no breaks a tie of event_ts
    actions = actions.sample(frac=1.0, random_state=0)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(actions, cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    result = run(spark, cfg, DAY)
    rows = {r["session_id"]: r for r in spark.table(tables.table_name(cfg, "scored_sessions")).collect()}
    assert rows[ids[0]]["action_count"] == 14 and "SEQUENCE_TRUNCATED" in rows[ids[0]]["dq_flags"]
    assert rows[ids[1]]["unknown_action_count"] == 1 and "UNKNOWN_ACTIONS" in rows[ids[1]]["dq_flags"]
    assert rows[ids[2]]["action_count"] == 0 and "NO_ACTIONS" in rows[ids[2]]["dq_flags"]
    assert result.counts["sessions_without_actions"] == 1
    assert result.counts["unknown_actions"] == 1


def test_the_hive_client_keeps_what_it_downloads_in_one_folder(spark):
    # Hive's default is a new <session id>_resources folder in the temporary folder for each session, which
    # Spark never removes: every run, test and server left one behind
    folder = hive_resources_dir()
    assert spark.sparkContext._jsc.hadoopConfiguration().get("hive.downloaded.resources.dir") == folder
    spark.sql("SHOW DATABASES").collect()  # the catalog's Hive client has started its session
    assert Path(folder).is_dir()


def test_the_hive_folder_of_a_user_without_a_name_is_named_by_its_uid(monkeypatch):
    def nameless():
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr("getpass.getuser", nameless)
    assert Path(hive_resources_dir()).name == f"raksha-hive-resources-{os.getuid()}"


def test_the_driver_runs_the_throughput_collector_unless_a_collector_is_chosen(spark, monkeypatch):
    beans = spark._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert {bean.getName() for bean in beans} == {"PS Scavenge", "PS MarkSweep"}  # the shared session's JVM
    for key in session.JVM_OPTIONS_ENV:
        monkeypatch.delenv(key, raising=False)
    options = "spark.driver.extraJavaOptions"
    assert session.collector_conf({}) == {options: "-XX:+UseParallelGC"}
    assert session.collector_conf({options: "-Dx=1"}) == {options: "-Dx=1 -XX:+UseParallelGC"}
    assert session.collector_conf({options: "-Dx=1 -XX:+UseG1GC"}) == {}  # the configuration's choice
    monkeypatch.setenv("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    assert session.collector_conf({}) == {}  # the environment's: two collectors would stop the JVM


@pytest.mark.parametrize(("command", "table"), [("score", "verdicts"), ("baseline build", contract.USER_BASELINES)])
def test_a_table_registered_in_another_warehouse_is_refused_before_anything_is_read(
    spark, cfg, day_input, monkeypatch, tmp_path, command, table
):
    """A warehouse moved or copied without its catalog: the catalog still names the old folders. The run (or a
    baseline build) stops before it reads its input, naming both places, instead of reading the user baselines,
    verdicts or published days of the other warehouse by name and being refused only at its first commit."""
    from raksha.baselines import nightly

    elsewhere = tmp_path / "other-warehouse" / table
    spark.createDataFrame([], contract.OUTPUT_SCHEMAS[table]).write.format("delta").save(str(elsewhere))
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{cfg.get('catalog.database')}`")
    spark.sql(f"CREATE TABLE {tables.table_name(cfg, table)} USING delta LOCATION '{elsewhere}'")

    def no_read(*args, **kwargs):
        raise AssertionError("the input was read")

    monkeypatch.setattr("raksha.ingest.inputs.read_sessions", no_read)
    expected = rf"{table} is registered at .*other-warehouse/{table}, but paths.warehouse puts it at "
    with pytest.raises(tables.CatalogError, match=expected):
        if command == "score":
            run(spark, cfg, DAY)
        else:
            nightly.build(spark, cfg, DAY, DAY)
    assert not Path(cfg.path("warehouse"), table).exists()


def test_a_catalog_new_to_the_warehouse_finds_its_tables_before_the_run_reads_them(spark, cfg, day_input, monkeypatch):
    """The warehouse kept, its catalog lost (or a new one): the run registers the tables its folders hold before
    it reads them by name, so the next day is scored against the warehouse's user baselines, not the population."""
    from raksha.baselines import nightly

    nightly.build(spark, cfg, DAY, DAY)
    for table in (contract.USER_BASELINES, contract.USER_BASELINE_REFERENCE):
        spark.sql(f"DROP TABLE {tables.table_name(cfg, table)}")  # external: the folders stay
    monkeypatch.setattr(tables, "_ENSURED", set())  # as in a new process: no table known to be in place
    later = DAY + dt.timedelta(days=1)
    sessions = factories.sessions_frame(later, 100, seed=2)
    factories.write_partition(sessions, cfg.path("sessions"), later)
    factories.write_partition(factories.actions_frame(sessions, seed=2), cfg.path("actions"), later)
    assert run(spark, cfg, later).baseline_as_of == DAY
