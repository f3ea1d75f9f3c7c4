"""Analysts query through a shared PostgreSQL catalog while the nightly job republishes a day.

Every answer must be one whole day of exactly one run, and no query may fail: Delta's snapshot
reads, one commit per table per run, a catalog two processes share.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import commands
import factories
from conftest import test_config as config_under
from test_metastore_postgres import PASSWORD_ENV, SparkProcess, new_database

DAY = dt.date(2026, 6, 1)
SESSIONS = 60
BIN = commands.BIN

QUERIER = """
import json, sys, time, traceback
from raksha.config import load_config
from raksha.platform.session import build_session
sets, stop_file, table = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
spark = build_session(load_config(sets=sets), "analyst")
print("SESSION", flush=True)
deadline = time.monotonic() + 900
query = f"select count(*) n, count(distinct run_id) runs, max(run_id) run from {table} where dt = '2026-06-01'"
import os
while time.monotonic() < deadline and not os.path.exists(stop_file):
    try:
        row = spark.sql(query).first()
        print("ANSWER", json.dumps([row["n"], row["runs"], row["run"]]), flush=True)
    except Exception as exc:
        print("FAILED", json.dumps(str(exc).splitlines()[0][:300]), flush=True)
    time.sleep(1.0)  # a query a second: a query each 0.2 s kept a core busy beside the job it watches
print("DONE", flush=True)
spark.stop()
"""


def test_queries_through_the_shared_catalog_see_whole_days_while_the_job_publishes(tmp_path, postgres_server):
    sets = [
        *postgres_server.config_sets(new_database()),
        f"catalog.postgres.password_env={PASSWORD_ENV}",
        "spark.master=local[1]",
        "spark.conf.spark.ui.enabled=false",
        "spark.conf.spark.sql.shuffle.partitions=2",
        "spark.conf.spark.driver.memory=1g",
    ]
    cfg = config_under(tmp_path, *sets)
    sessions = factories.sessions_frame(DAY, SESSIONS, seed=4)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions, seed=4), cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    paths = [f"paths.{k}={v}" for k, v in cfg.data["paths"].items()]
    all_sets = [*paths, *sets, f"catalog.database={cfg.get('catalog.database')}"]
    env = commands.environment(**{PASSWORD_ENV: postgres_server.password})  # short JVMs, as every command's

    def score() -> str:
        job = subprocess.run(
            [str(BIN / "raksha"), "score", "--date", DAY.isoformat(), *[a for s in all_sets for a in ("--set", s)]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert job.returncode == 0, job.stderr[-3000:]
        return next(line.split()[1].rstrip(":") for line in job.stdout.splitlines() if line.startswith("run "))

    first = score()  # the tables exist from here on
    stop_file = tmp_path / "stop"
    table = f"{cfg.get('catalog.database')}.scored_sessions"
    querier = SparkProcess(QUERIER, [json.dumps(all_sets), str(stop_file), table], env, tmp_path / "querier.log")
    answers, failures = [], []
    try:
        querier.expect("SESSION", timeout=180)
        runs = [score()]  # the job republishes the date while the analyst queries
        time.sleep(1)
        stop_file.write_text("stop")
        while True:
            line = querier.expect("", timeout=120)
            kind, _, payload = line.partition(" ")
            if kind == "ANSWER":
                answers.append(json.loads(payload))
            elif kind == "FAILED":
                failures.append(json.loads(payload))
            elif kind == "DONE":
                break
    finally:
        stop_file.write_text("stop")
        querier.stop()
    assert failures == []
    assert len(answers) >= 5
    assert all(n == SESSIONS and distinct == 1 for n, distinct, _ in answers), answers
    seen = [run for _, _, run in answers]
    assert set(seen) <= {first, *runs}
    assert runs[-1] in seen  # the analyst saw the job's publications while it ran
    assert seen == sorted(seen, key=[first, *runs].index)  # never an older day after a newer one
