"""A small day scored again and again in one warm session, as the test suite and long-lived sessions do.

The nightly bench times one run in a fresh process. What a test, ``raksha baseline build`` or a notebook
pays is the fixed cost of a run in a session that ran others before it: planning, compiling, Delta's
commits. This prints, per run, its seconds, its Spark jobs, the classes Spark compiled for it and the
run's phases (run_log's ``timings_s``); its ``--set`` lines change the session's settings, to compare
them run against run.

    .venv/bin/python bench/warm_runs.py --runs 3
    .venv/bin/python bench/warm_runs.py --runs 3 --set spark.conf.spark.sql.codegen.cache.maxEntries=100

Each of ``--runs`` days is scored twice (a first run, then a rerun of the same date) into a configuration
of its own under a temporary folder, with the tests' settings (``tests/conftest.test_config``: local[2],
report and user baselines off unless ``--baselines``; the shared session's ``SESSION_SETS`` without its
``SESSION_TUNING``, which ``--set`` adds back; ``conf/base.yaml`` beneath) and untrained models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from settings import REPO

sys.path.insert(0, str(REPO / "tests"))

import factories  # noqa: E402 - the tests' own data and models
from conftest import SESSION_SETS, test_config  # noqa: E402

from raksha.pipeline.daily import run  # noqa: E402
from raksha.platform import tables  # noqa: E402
from raksha.platform.session import build_session  # noqa: E402

DAY = dt.date(2026, 6, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="days, each scored twice (default 3)")
    parser.add_argument("--sessions", type=int, default=40, help="sessions a day (default 40)")
    parser.add_argument("--baselines", action="store_true", help="with the user baselines on")
    parser.add_argument("--set", action="append", default=[], help="a setting of the session (key=value)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="raksha-warm-runs-"))
    spark = build_session(test_config(root / "session", *SESSION_SETS, *args.set), "raksha-warm-runs")
    try:
        compiled = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
        tracker = spark.sparkContext.statusTracker()
        run_sets = ["baseline.enabled=true"] if args.baselines else []
        for i in range(args.runs):
            cfg = test_config(root / f"day{i}", *run_sets)
            sessions = factories.sessions_frame(DAY, args.sessions, seed=i)
            factories.write_partition(sessions, cfg.path("sessions"), DAY)
            factories.write_partition(factories.actions_frame(sessions, seed=i), cfg.path("actions"), DAY)
            factories.write_untrained_models(cfg.path("models"))
            for label in ("first", "rerun"):
                jobs, compiles, clock = len(tracker.getJobIdsForGroup(None)), compiled.getCount(), time.monotonic()
                result = run(spark, cfg, DAY)
                seconds = time.monotonic() - clock
                row = (
                    spark.table(tables.table_name(cfg, "run_log"))
                    .where(f"run_id = '{result.run_id}'")
                    .select("timings_s")
                    .first()
                )
                phases = {k: round(v, 1) for k, v in row["timings_s"].items() if k != "total"}
                print(
                    f"day {i} {label:5s} {seconds:6.1f} s  {len(tracker.getJobIdsForGroup(None)) - jobs:3d} jobs  "
                    f"{compiled.getCount() - compiles:3d} compiled  {json.dumps(phases)}",
                    flush=True,
                )
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
