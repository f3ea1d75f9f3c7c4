"""Short human summaries printed at the end of a command."""

from __future__ import annotations

from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.platform import tables


def print_run_summary(spark: SparkSession, cfg: Config, result) -> None:
    """Where the day's tables are and how many sessions got each decision (read from the catalog)."""
    day = result.day.isoformat()
    scored = tables.table_name(cfg, "scored_sessions")
    rows = spark.sql(
        f"SELECT decision, count(*) AS sessions FROM {scored} WHERE dt = '{day}' GROUP BY decision ORDER BY decision"
    ).collect()
    counts = result.counts
    print(f"run {result.run_id}: {day}")
    print(
        f"  sessions read {counts['sessions_read']}, scored {counts['sessions_scored']}, "
        f"quarantined {counts['sessions_quarantined']}"
    )
    print(
        f"  review queue: {counts['review_cases']} cases ({counts['review_sessions']} sessions, "
        f"{counts['review_overflow_cases']} cases over capacity) + {counts['review_audit_sessions']} audit sessions"
    )
    if "user_baselines" in result.versions:
        against = f"the snapshot of {result.baseline_as_of}" if result.baseline_as_of else "no snapshot (the first day)"
        print(
            f"  user baselines: scored against {against}; {counts.get('sessions_without_user_baseline', 0)} "
            f"sessions of users without one (NO_USER_BASELINE); the snapshot of {day} written"
        )
    print("  decisions (from the catalog):")
    for row in rows:
        print(f"    {row['decision']:<7} {row['sessions']}")
    if result.challenger is not None:
        _print_challenger(result.challenger)
    print("  tables (Delta; read them as Delta tables, e.g. with the deltalake package):")
    for table, name in result.tables.items():
        print(f"    {name:<32} {tables.table_location(cfg, table)}")
    if result.report:
        print(f"  report:  {result.report['html']} (and report.png, report.json beside it)")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    print(f"  catalog: {cfg.path('metastore')} (database {cfg.get('catalog.database')})")
    print(f"  query:   raksha sql \"select decision, count(*) from {scored} where dt = '{day}' group by decision\"")


def _print_challenger(compared: dict) -> None:
    """Where the challenger would have decided differently (it never decides)."""
    print(
        f"  challenger: {compared['disagreements']} of {compared['sessions_compared']} sessions decided differently"
        " (champion -> challenger):"
    )
    for pair, n in compared["pairs"].items():
        print(f"    {pair:<15} {n}")
    for row in compared["examples"]:
        print(
            f"    e.g. {row['session_id']}: {row['decision']} (risk {row['risk_score']:.1f}) -> "
            f"{row['challenger_decision']} (risk {row['challenger_risk_score']:.1f})"
        )
