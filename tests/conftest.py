"""One local SparkSession for the whole test run, and per-test configurations under tmp_path."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from raksha.config import Config, load_config


def test_config(root: Path, *sets: str) -> Config:
    """A configuration whose every path lies under ``root`` and whose catalog database is new."""
    paths = {
        "sessions": root / "raw/sessions",
        "actions": root / "raw/action_log",
        "labels": root / "raw/labels",
        "warehouse": root / "warehouse",
        "models": root / "models",
        "staging": root / "staging",
        "metastore": root / "metastore",
    }
    base_sets = [f"paths.{k}={v}" for k, v in paths.items()]
    base_sets.append(f"catalog.database=t_{uuid.uuid4().hex[:10]}")
    return load_config(sets=[*base_sets, *sets])


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from raksha.spark_session import build_session

    root = tmp_path_factory.mktemp("spark")
    cfg = test_config(
        root,
        "spark.master=local[2]",
        "spark.conf.spark.sql.shuffle.partitions=4",
        "spark.conf.spark.sql.execution.arrow.maxRecordsPerBatch=50",
        "spark.conf.spark.driver.memory=2g",
        "spark.conf.spark.ui.enabled=false",
    )
    session = build_session(cfg, "raksha-tests")
    yield session
    session.stop()


@pytest.fixture
def cfg(tmp_path) -> Config:
    return test_config(tmp_path)
