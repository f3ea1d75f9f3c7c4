"""One local SparkSession for the whole test run, and per-test configurations under tmp_path."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from raksha.config import Config, load_config


def test_config(root: Path, *sets: str) -> Config:
    """A configuration whose every path lies under ``root`` and whose catalog database is new (the nightly
    report and the user baselines off unless ``sets`` turn them on)."""
    paths = {
        "sessions": root / "raw/sessions",
        "actions": root / "raw/action_log",
        "labels": root / "raw/labels",
        "warehouse": root / "warehouse",
        "models": root / "models",
        "metastore": root / "metastore",
    }
    base_sets = [f"paths.{k}={v}" for k, v in paths.items()]
    base_sets.append(f"catalog.database=t_{uuid.uuid4().hex[:10]}")
    # the nightly report costs seconds a run: on where a test asks (test_nightly_report; the command tests' processes)
    base_sets.append("report.enabled=false")
    # the user baselines cost two commits a run: on where a test asks (test_baselines, test_daily_job, the commands)
    base_sets.append("baseline.enabled=false")
    return load_config(sets=[*base_sets, *sets])


# The modules that take longest, longest first: seconds of test time in a clean run (`make test` at e707598,
# the two workers' times summed per module). `make test` hands whole modules to its two workers in collection
# order (--dist loadfile --no-loadscope-reorder; xdist's own order is by tests per module, which left the
# long one-test modules for the end): long ones first, and the many short ones fill both workers' ends
# evenly. Two clean runs an hour apart: 30:09 of pytest in this order, 31:13 in xdist's. A module not
# listed keeps its place after these.
LONGEST_MODULES = {
    "test_faults": 320,
    "test_bad_inputs": 290,
    "test_catalog_concurrency": 220,
    "test_baselines": 188,
    "test_cycle": 178,
    "test_history": 161,
    "test_cli": 157,
    "test_daily_job": 154,
    "test_alert_budget": 144,
    "test_servers": 140,
    "test_cluster": 137,
    "test_evaluation": 127,
    "test_exports": 94,
    "test_runtimes": 93,
    "test_nightly_report": 86,
    "test_verdicts": 83,
    "test_review": 76,
    "test_parity": 69,
    "test_metastore_postgres": 43,
    "test_notebooks": 39,
    "test_challenger": 33,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of the longest modules first (``LONGEST_MODULES``); a stable sort keeps each module's order."""
    items.sort(key=lambda item: -LONGEST_MODULES.get(item.path.stem, 0))


# the shared session's settings (bench/warm_runs.py starts its session with these too)
SESSION_SETS = [
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=4",
    "spark.conf.spark.sql.execution.arrow.maxRecordsPerBatch=50",
    # a worker's session serves half the suite (its cached and checkpointed frames with it): 2g ran out
    # of heap in test_cycle's evaluate after some 150 tests
    "spark.conf.spark.driver.memory=4g",
    "spark.conf.spark.ui.enabled=false",
]
# and its tuning for a session that lives the whole run (bench/warm_runs.py compares with and without)
SESSION_TUNING = [
    # the session compiles every test's plans: keep them all (a run's ~220 classes, compiled once, not per test)
    "spark.conf.spark.sql.codegen.cache.maxEntries=4000",
]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from raksha.platform.session import build_session

    cfg = test_config(tmp_path_factory.mktemp("spark"), *SESSION_SETS, *SESSION_TUNING)
    session = build_session(cfg, "raksha-tests")
    yield session
    session.stop()


@pytest.fixture
def in_process(spark, monkeypatch):
    """Commands and jobs on the test session (their own would start a second SparkContext); stop() kept from it."""
    monkeypatch.setattr("raksha.platform.session.build_session", lambda cfg, app=None: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)


@pytest.fixture
def cfg(tmp_path) -> Config:
    return test_config(tmp_path)


@pytest.fixture(scope="session")
def postgres_server():
    """A local PostgreSQL for the run (raksha.platform.local_postgres): 127.0.0.1, a free port; stopped at the end.

    Yields its ``ServerInfo`` (host, port, user, password; ``config_sets(database)`` points a config at
    a database of it). Its folder is under /tmp itself: as root, the server runs as an unprivileged user,
    who cannot enter pytest's own folders. Teardown checks that no process of that server remains.
    """
    import os
    import shutil
    import tempfile

    from raksha.platform import local_postgres

    root = Path(tempfile.mkdtemp(prefix="raksha-pg-tests-"))
    os.chmod(root, 0o711)
    server_dir = root / "server"
    try:
        # a throwaway server: no waiting for the disk (commits, the shutdown checkpoint)
        fast = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        with local_postgres.running(server_dir, settings=fast) as server:
            yield server
        left = _processes_mentioning(str(server_dir))
        assert not left, f"PostgreSQL processes left running: {left}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (the postmaster names its data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
