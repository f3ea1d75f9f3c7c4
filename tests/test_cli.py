"""The commands as a scheduler and an analyst run them: separate processes, separate JVMs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import commands
import factories

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 5, 6)


def _sets(root: Path) -> list[str]:
    out = []
    for key, sub in (
        ("sessions", "raw/sessions"),
        ("actions", "raw/action_log"),
        ("labels", "raw/labels"),
        ("warehouse", "warehouse"),
        ("models", "models"),
        ("metastore", "metastore"),
    ):
        out += ["--set", f"paths.{key}={root / sub}"]
    return out + ["--set", "spark.master=local[2]"]


def test_spark_submit_job_then_a_new_session_queries_the_catalog(tmp_path):
    sessions = factories.sessions_frame(DAY, 120, seed=5)
    factories.write_partition(sessions, tmp_path / "raw/sessions", DAY)
    factories.write_partition(factories.actions_frame(sessions), tmp_path / "raw/action_log", DAY)
    factories.write_untrained_models(tmp_path / "models")

    job = commands.run(
        [
            str(commands.BIN / "spark-submit"),
            "--master",
            "local[2]",
            str(REPO / "jobs/score_daily.py"),
            "--date",
            DAY.isoformat(),
            *_sets(tmp_path),
        ],
        cwd=tmp_path,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "decisions (from the catalog)" in job.stdout

    query = f"select decision, count(*) as n from raksha.scored_sessions where dt = '{DAY}' group by decision"
    sql = commands.raksha("sql", query, *_sets(tmp_path), cwd=tmp_path)
    assert sql.returncode == 0, sql.stderr[-3000:]
    counts = {}
    for line in sql.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] in ("ALLOW", "REVIEW", "BLOCK"):
            counts[cells[0]] = int(cells[1])
    assert sum(counts.values()) == 120, sql.stdout


def test_missing_day_is_a_one_line_error_and_nonzero_exit(tmp_path):
    factories.write_untrained_models(tmp_path / "models")
    (tmp_path / "raw/sessions").mkdir(parents=True)
    result = commands.raksha("score", "--date", DAY.isoformat(), *_sets(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"raksha score: error: sessions {DAY}: no partition at {tmp_path / 'raw/sessions'}/dt={DAY}"]
    assert not (tmp_path / "warehouse/scored_sessions").exists()
