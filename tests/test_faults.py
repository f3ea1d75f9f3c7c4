"""Injected faults (issue: nothing lost, nothing let in): retries, failures, kills, reruns, locks.

Faults are armed through raksha.platform.failpoints (RAKSHA_FAILPOINTS), which the job hands to its
tasks as a Spark local property; nothing is mocked. Published days are read as readers do:
through Spark SQL and through delta-rs (``factories.read_table_day``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import commands
import factories
import pandas as pd
import pytest
from conftest import test_config as config_under
from delta.tables import DeltaTable

from raksha.pipeline.daily import run
from raksha.platform import failpoints, locks, tables

REPO = Path(__file__).resolve().parent.parent
BIN = commands.BIN
DAY = dt.date(2026, 7, 8)
VOLATILE = ["run_id", "scored_at"]


def _write_day(cfg, day: dt.date, n: int, seed: int) -> None:
    sessions = factories.sessions_frame(day, n, seed=seed)
    factories.write_partition(sessions, cfg.path("sessions"), day)
    factories.write_partition(factories.actions_frame(sessions, seed=seed), cfg.path("actions"), day)


def _day(cfg, table: str, day: dt.date = DAY) -> pd.DataFrame:
    """The day's published rows as a reader outside Spark sees them (delta-rs), without per-run columns."""
    frame = factories.read_table_day(cfg, table, day)
    frame = frame.drop(columns=[c for c in VOLATILE if c in frame.columns])
    frame = frame.map(lambda v: repr(v.tolist()) if hasattr(v, "tolist") else v)  # arrays of structs
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def _digest(folder: Path) -> dict[str, str]:
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _cli_env(points: str) -> dict[str, str]:
    return commands.environment(**{failpoints.ENV: points})


def _cli_sets(cfg, master: str) -> list[str]:
    out = []
    for key in ("sessions", "actions", "labels", "warehouse", "models", "metastore"):
        out += ["--set", f"paths.{key}={cfg.path(key)}"]
    same_batches = [  # as the shared test session: float32 results depend on how rows are batched
        "spark.conf.spark.sql.shuffle.partitions=4",
        "spark.conf.spark.sql.execution.arrow.maxRecordsPerBatch=50",
    ]
    out += [item for setting in same_batches for item in ("--set", setting)]
    out += ["--set", f"baseline.enabled={str(cfg.get('baseline.enabled')).lower()}"]  # as the in-process runs
    return [*out, "--set", f"spark.master={master}", "--set", f"catalog.database={cfg.get('catalog.database')}"]


@pytest.fixture
def inputs(cfg):
    _write_day(cfg, DAY, 200, seed=3)
    factories.write_untrained_models(cfg.path("models"))
    return cfg


@pytest.fixture
def clean(spark, inputs, tmp_path):
    """The same input and models scored once without any fault, in its own warehouse."""
    other = config_under(tmp_path / "clean", f"paths.models={inputs.path('models')}")
    _write_day(other, DAY, 200, seed=3)
    run(spark, other, DAY)
    return other


def test_a_task_failing_its_first_attempt_is_retried_and_equals_a_clean_run(inputs, clean, tmp_path):
    job = subprocess.run(
        [str(BIN / "raksha"), "score", "--date", DAY.isoformat(), *_cli_sets(inputs, "local[2,3]")],
        cwd=tmp_path,
        env=_cli_env("score_behavior=raise_first_attempt"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "InjectedFault" in job.stderr  # the first attempt did fail
    for table in ("scored_sessions", "review_queue", "quarantine"):
        pd.testing.assert_frame_equal(_day(inputs, table), _day(clean, table))


def test_a_task_that_always_fails_changes_nothing_published(spark, inputs, monkeypatch):
    run(spark, inputs, DAY)
    warehouse = Path(inputs.path("warehouse"))
    before = {t: _digest(warehouse / t / f"dt={DAY}") for t in ("scored_sessions", "review_queue", "quarantine")}
    name = tables.table_name(inputs, "scored_sessions")
    rows_before = spark.sql(f"select count(*) n from {name} where dt = '{DAY}'").first()["n"]

    monkeypatch.setenv(failpoints.ENV, "score_behavior=raise")
    with pytest.raises(Exception, match="InjectedFault"):
        run(spark, inputs, DAY)
    monkeypatch.delenv(failpoints.ENV)
    failpoints.propagate(spark)

    assert {t: _digest(warehouse / t / f"dt={DAY}") for t in before} == before
    assert spark.sql(f"select count(*) n from {name} where dt = '{DAY}'").first()["n"] == rows_before
    statuses = [r["status"] for r in spark.table(tables.table_name(inputs, "run_log")).collect()]
    assert sorted(statuses) == ["FAILED", "SUCCEEDED"]
    assert _held_locks(inputs) == []  # the failed run released its date


def _held_locks(cfg) -> list[str]:
    """Lock entries that name a holder (not a release): none once every run has ended."""
    root = Path(cfg.path("warehouse")) / "_locks"
    return [str(p) for p in root.rglob("*.json") if '"released"' not in p.read_text()]


def _held_in(folder: Path) -> bool:
    return any('"released"' not in p.read_text() for p in folder.glob("*.json"))


def _versions(spark, cfg) -> dict[str, int]:
    return {
        t: DeltaTable.forName(spark, tables.table_name(cfg, t)).history(1).first()["version"]
        for t in ("scored_sessions", "review_queue", "quarantine", "run_log")
    }


def _spark_day(spark, cfg, day: dt.date = DAY):
    name = tables.table_name(cfg, "scored_sessions")
    return spark.sql(f"select count(*) n, count(distinct run_id) runs from {name} where dt = '{day}'").first()


def _score_in_background(cfg, failpoint: str, cwd: Path, *extra: str) -> subprocess.Popen:
    """``raksha score`` of DAY as its own process (own session, so it can be killed), stopped at ``failpoint``."""
    return subprocess.Popen(
        [str(BIN / "raksha"), "score", "--date", DAY.isoformat(), *_cli_sets(cfg, "local[2]"), *extra],
        cwd=cwd,
        env=_cli_env(failpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_run_killed_while_committing_scored_sessions_leaves_the_previous_day_whole(spark, inputs, clean, tmp_path):
    first = run(spark, inputs, DAY)
    previous = _day(inputs, "scored_sessions")
    folder = Path(inputs.path("warehouse")) / "scored_sessions" / f"dt={DAY}"
    files_before = set(folder.glob("*.parquet"))
    job = _score_in_background(inputs, "write_scored_sessions=sleep:300", tmp_path)
    try:
        deadline = time.monotonic() + 400
        committing = Path(locks.lock_folder(inputs, locks.commit_key("scored_sessions")))
        # the job is inside scored_sessions' commit: it holds the table's commit lock, the other
        # tasks have written their data files, the commit has not happened
        while not (set(folder.glob("*.parquet")) - files_before and _held_in(committing)):
            assert job.poll() is None, job.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the job never started writing scored_sessions"
            time.sleep(1)
        # readers still see the previous day, whole: Spark SQL and delta-rs
        pd.testing.assert_frame_equal(_day(inputs, "scored_sessions"), previous)
        assert (_spark_day(spark, inputs)["n"], _spark_day(spark, inputs)["runs"]) == (200, 1)
        # a second run of the same date is refused, naming the holder
        refusal = rf"another run holds it: run score-.* pid {job.pid}"
        with pytest.raises(locks.LockHeldError, match=refusal):
            run(spark, inputs, DAY)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(60)
    # killed during the commit: the day is still the first run's, for every reader
    pd.testing.assert_frame_equal(_day(inputs, "scored_sessions"), previous)
    name = tables.table_name(inputs, "scored_sessions")
    assert {r["run_id"] for r in spark.sql(f"select distinct run_id from {name} where dt = '{DAY}'").collect()} == {
        first.run_id
    }
    # the next run takes over the dead run's locks and equals a clean run
    rerun = run(spark, inputs, DAY)
    assert rerun.counts["sessions_read"] == 200
    for table in ("scored_sessions", "review_queue", "quarantine"):
        pd.testing.assert_frame_equal(_day(inputs, table), _day(clean, table))
    assert _held_locks(inputs) == []


def test_run_killed_between_its_table_commits_leaves_whole_tables_and_is_taken_over(spark, cfg, tmp_path):
    """Killed inside review_queue's commit, after its scored_sessions and quarantine commits: each table
    holds one whole run's day, the killed run is not published (no run_log row), and the next run
    takes over the dead run's locks and publishes every table."""
    sessions = factories.sessions_frame(DAY, 40, seed=4)
    sessions.loc[0, "battery_level"] = 1.7  # one quarantined row: quarantine gets a commit too
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions, seed=4), cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    every_session_reviewed = "decision.default=REVIEW"  # a review queue with rows, so it writes files
    cfg = cfg.with_overrides([every_session_reviewed])
    first = run(spark, cfg, DAY)
    previous = {t: _whole_day(cfg, t) for t in ("scored_sessions", "quarantine", "review_queue")}
    assert len(previous["review_queue"]) == 39 and len(previous["quarantine"]) == 1
    job = _score_in_background(cfg, "write_review_queue=sleep:300", tmp_path, "--set", every_session_reviewed)
    try:
        deadline = time.monotonic() + 900  # a loaded machine: the job starts Spark, reads, scores, commits twice
        committing = Path(locks.lock_folder(cfg, locks.commit_key("review_queue")))
        while not _held_in(committing):  # inside review_queue's commit: the two before it are done
            assert job.poll() is None, job.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the job never started writing review_queue"
            time.sleep(1)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(60)
    killed = set(factories.read_table_day(cfg, "scored_sessions", DAY)["run_id"])
    assert len(killed) == 1 and first.run_id not in killed  # the killed run's scored_sessions commit, whole
    assert set(factories.read_table_day(cfg, "quarantine", DAY)["run_id"]) == killed
    assert set(factories.read_table_day(cfg, "review_queue", DAY)["run_id"]) == {first.run_id}  # not committed
    for table, rows in previous.items():  # each table holds one run's whole day (the same input, the same rows)
        pd.testing.assert_frame_equal(_whole_day(cfg, table), rows)
    log = tables.table_name(cfg, "run_log")
    assert [(r["run_id"], r["status"]) for r in spark.table(log).collect()] == [(first.run_id, "SUCCEEDED")]
    assert _held_locks(cfg)  # the dead run's date locks and review_queue's commit lock remain

    rerun = run(spark, cfg, DAY)
    for table, rows in previous.items():
        assert set(factories.read_table_day(cfg, table, DAY)["run_id"]) == {rerun.run_id}, table
        pd.testing.assert_frame_equal(_whole_day(cfg, table), rows)
    statuses = {r["run_id"]: r["status"] for r in spark.table(log).collect()}
    assert statuses == {first.run_id: "SUCCEEDED", rerun.run_id: "SUCCEEDED"}
    assert _held_locks(cfg) == []


def _whole_day(cfg, table: str) -> pd.DataFrame:
    """``_day`` without the quarantine's per-run timestamp, one row per session in session order."""
    frame = _day(cfg, table).drop(columns=["quarantined_at"], errors="ignore")
    return frame.sort_values("session_id").reset_index(drop=True)


def test_three_runs_give_identical_days_and_leave_neighbours_byte_for_byte(spark, inputs):
    neighbours = [DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)]
    for i, day in enumerate(neighbours):
        _write_day(inputs, day, 30, seed=10 + i)
        run(spark, inputs, day)
    warehouse = Path(inputs.path("warehouse"))
    before = {(t, d): _digest(warehouse / t / f"dt={d}") for t in ("scored_sessions", "quarantine") for d in neighbours}
    contents = []
    for _ in range(3):
        versions = _versions(spark, inputs) if contents else None
        run(spark, inputs, DAY)
        if versions is not None:  # one new version of each table per rerun (run_log: its row)
            unchanged = {"quarantine"} if _day(inputs, "quarantine").empty else set()  # empty -> empty: no commit
            assert _versions(spark, inputs) == {t: v + (t not in unchanged) for t, v in versions.items()}
        scored = _day(inputs, "scored_sessions")
        assert scored["session_id"].is_unique and len(scored) == 200
        contents.append((scored, _day(inputs, "review_queue")))
    for scored, queue in contents[1:]:
        pd.testing.assert_frame_equal(scored, contents[0][0])
        pd.testing.assert_frame_equal(queue, contents[0][1])
    assert {k: _digest(warehouse / k[0] / f"dt={k[1]}") for k in before} == before
    counts = spark.sql(f"select dt, count(*) n from {tables.table_name(inputs, 'scored_sessions')} group by dt")
    expected = {str(neighbours[0]): 30, str(DAY): 200, str(neighbours[1]): 30}
    assert {r["dt"]: r["n"] for r in counts.collect()} == expected
