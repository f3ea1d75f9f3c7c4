"""The nightly job on a real Spark standalone cluster (two workers on 127.0.0.1) through ``raksha
submit``, equal to local mode row for row. ``make cluster-test`` runs only this; ``make test`` too."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import commands
import numpy as np
import pandas as pd
import pytest
import standalone
from conftest import test_config as config_under
from factories import read_table_day

from raksha.config import REPO_ROOT
from raksha.pipeline.daily import run
from raksha.synthetic.write import generate

pytestmark = pytest.mark.cluster

DAY = dt.date(2026, 11, 3)
SESSIONS = 1500
# the columns that must equal the notebooks' computation (DESIGN.md section 5), to 1e-6
PARITY = ["ae_error", "ae_threshold", "ae_risk_percent", "seq_risk", "seq_risk_max", "risk_score"]
EXACT = ["decision", "ae_is_anomaly", "seq_is_block", "seq_risk_max_at", "action_count", "unknown_action_count"]
QUEUE = ["session_id", "case_rank", "case_id", "case_sessions", "rank_in_case", "audit", "decision"]


def _reasons(column: pd.Series) -> list[str]:
    return [json.dumps([dict(r) for r in reasons], sort_keys=True, default=str) for reasons in column]


def _task_executors(events: Path) -> dict[str, int]:
    """Tasks finished per executor id, from the application's event log."""
    counts: dict[str, int] = {}
    for file in events.rglob("events_*"):
        for line in file.read_text().splitlines():
            event = json.loads(line)
            if event.get("Event") == "SparkListenerTaskEnd":
                executor = event["Task Info"]["Executor ID"]
                counts[executor] = counts.get(executor, 0) + 1
    return counts


def test_score_on_a_standalone_cluster_equals_local_mode(spark, tmp_path):
    root = tmp_path
    raw = {"sessions": root / "raw/sessions", "actions": root / "raw/action_log", "labels": root / "raw/labels"}
    generate(DAY, 1, SESSIONS, 0.03, 17, *(str(p) for p in raw.values()))
    shipped_models = f"paths.models={REPO_ROOT / 'models'}"

    local = config_under(root / "local", shipped_models, *(f"paths.{k}={v}" for k, v in raw.items()))
    run(spark, local, DAY)

    remote = config_under(root / "remote", shipped_models, *(f"paths.{k}={v}" for k, v in raw.items()))
    sets = [a for key in remote.get("paths") for a in ("--set", f"paths.{key}={remote.path(key)}")]
    sets += ["--set", f"catalog.database={remote.get('catalog.database')}"]
    sets += ["--set", f"baseline.enabled={str(remote.get('baseline.enabled')).lower()}"]  # as the local run
    events = root / "events"
    events.mkdir()
    cluster_root = root / "cluster"
    try:
        with standalone.standalone(cluster_root, workers=2, cores=1, memory="1536m") as cluster:
            spark_options = ["--executor-memory", "1g", "--conf", "spark.eventLog.enabled=true"]
            spark_options += ["--conf", f"spark.executor.extraJavaOptions={commands.SHORT_JVM_OPTIONS}"]
            spark_options += ["--conf", f"spark.eventLog.dir=file:{events}", "--conf", "spark.eventLog.compress=false"]
            command = [str(commands.BIN / "raksha"), "submit", "--master", cluster.master_url]
            command += [*spark_options, "--", "score", "--date", DAY.isoformat(), *sets]
            # run from outside the checkout, as a scheduler would
            done = subprocess.run(
                command, cwd=root, env=commands.environment(), capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            assert "spark-submit line:" in done.stdout and "--archives" in done.stdout
            assert "INFO" not in done.stderr.replace("INFO raksha", ""), "the driver's console shows Spark's INFO log"
            apps = cluster.state()["completedapps"]
            assert len(apps) == 1 and apps[0]["state"] == "FINISHED"
            by_worker = cluster.executors_by_worker(apps[0]["id"])
    finally:
        left = standalone.processes_under(cluster_root)
    assert not left, f"processes left running after the cluster stopped: {left}"

    # tasks ran on executors of both workers
    tasks = _task_executors(events)
    per_worker = {w: sum(tasks.get(e, 0) for e in executors) for w, executors in by_worker.items()}
    assert all(n > 0 for n in per_worker.values()) and len(per_worker) == 2, (per_worker, tasks)

    # the published day equals local mode, row for row
    mine = read_table_day(remote, "scored_sessions", DAY).sort_values("session_id").reset_index(drop=True)
    theirs = read_table_day(local, "scored_sessions", DAY).sort_values("session_id").reset_index(drop=True)
    assert len(mine) == len(theirs) == SESSIONS
    assert mine["session_id"].tolist() == theirs["session_id"].tolist()
    for column in PARITY:
        np.testing.assert_allclose(mine[column], theirs[column], atol=1e-6, err_msg=column)
    for column in EXACT:
        assert mine[column].tolist() == theirs[column].tolist(), column
    assert _reasons(mine["reasons"]) == _reasons(theirs["reasons"])
    assert mine["dq_flags"].map(list).tolist() == theirs["dq_flags"].map(list).tolist()

    queue_mine = read_table_day(remote, "review_queue", DAY)[QUEUE].sort_values("session_id").reset_index(drop=True)
    queue_theirs = read_table_day(local, "review_queue", DAY)[QUEUE].sort_values("session_id").reset_index(drop=True)
    assert len(queue_mine) > 0
    pd.testing.assert_frame_equal(queue_mine, queue_theirs)
