"""The nightly job: score one day of sessions and publish its tables.

read -> validate -> sequence -> score (both models) -> decide -> stage -> audit -> publish.
Nothing is published until every staged table is written and the counts reconcile:
sessions read = scored + quarantined.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import raksha
from raksha import (
    artifacts,
    challenger,
    contract,
    failpoints,
    inputs,
    locks,
    model_cache,
    privacy,
    quality,
    review,
    runtimes,
    tables,
)
from raksha.config import Config
from raksha.decisions import decide, validate_policy
from raksha.scoring import BroadcastModel, score_models
from raksha.sequences import session_sequences

log = logging.getLogger(__name__)

PUBLISHED_TABLES = ("scored_sessions", "quarantine", "review_queue")
EMPTY_DAY_MESSAGE = "empty day: no sessions; the date now holds zero rows"


class ReconciliationError(RuntimeError):
    """Counts in and out of the job disagree; nothing was published."""


@dataclass
class RunResult:
    run_id: str
    day: dt.date
    counts: dict[str, int]
    decisions: dict[str, int]
    model_loads: dict[str, int]
    tables: dict[str, str] = field(default_factory=dict)
    challenger: dict | None = None  # champion vs challenger disagreements, when a challenger ran


def new_run_id(day: dt.date) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{day:%Y%m%d}-{stamp}-{secrets.token_hex(3)}"


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{raksha.__version__}+{sha}"
    except (OSError, subprocess.SubprocessError):
        return raksha.__version__


def with_sequences(valid: DataFrame, actions: DataFrame) -> DataFrame:
    """Join each valid session to its ordered action tokens; no actions -> empty sequence."""
    return (
        valid.join(session_sequences(actions), on="session_id", how="left")
        .withColumn("action_tokens", F.coalesce("action_tokens", F.array().cast("array<int>")))
        .withColumn("action_count", F.coalesce("action_count", F.lit(0)))
        .withColumn("unknown_action_count", F.coalesce("unknown_action_count", F.lit(0)))
    )


def quarantine_rows(bad: DataFrame, run_id: str, at: dt.datetime, cfg: Config) -> DataFrame:
    """Quarantine rows from rows carrying ``quarantine_reasons`` (location and network coarsened)."""
    record_columns = [privacy.coarsen_column(c, cfg) for c in bad.columns if c != quality.REASONS_COLUMN]
    return bad.select(
        "session_id",
        "user_id",
        "session_start",
        F.col(quality.REASONS_COLUMN)[0].alias("reason"),
        F.col(quality.REASONS_COLUMN).alias("reasons"),
        F.to_json(F.struct(*record_columns), {"ignoreNullFields": "false"}).alias("record"),
        F.lit(run_id).alias("run_id"),
        F.lit(at).cast("timestamp").alias("quarantined_at"),
    )


def run(spark: SparkSession, cfg: Config, day: dt.date, run_id: str | None = None) -> RunResult:
    """Score ``day`` and publish scored_sessions, quarantine, review_queue and a run_log row."""
    run_id = run_id or new_run_id(day)
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    timings: dict[str, float] = {}
    log.info("run %s: scoring %s", run_id, day)
    failpoints.propagate(spark)
    validate_policy(spark, cfg)
    runtimes.configured(cfg)
    ae_version = artifacts.load_version(cfg.path("models"), contract.AE_MODEL)
    seq_version = artifacts.load_version(cfg.path("models"), contract.SEQ_MODEL)
    rival = challenger.load(cfg)
    base = {
        "started_at": started,
        "ae_model_version": ae_version.version,
        "seq_model_version": seq_version.version,
        "model_checksums": {
            **{f"{v.name}/{f}": s for v in (ae_version, seq_version) for f, s in v.checksums.items()},
            **rival.checksums(),
        },
        "ae_threshold": ae_version.threshold,
    }
    with locks.date_lock(spark, cfg, day, run_id):
        for dead in tables.discard_abandoned_staging(spark, cfg, day, run_id):
            log.warning("run %s: removed the staging of run %s, which died before finishing", run_id, dead)
        try:
            result = _run(spark, cfg, day, run_id, ae_version, seq_version, rival, timings)
        except Exception as exc:
            _log_failure(spark, cfg, day, run_id, base, exc, clock, timings)
            raise
        finally:
            tables.discard_staging(spark, cfg, run_id)
    for pruned in tables.prune_superseded(spark, cfg, dt.datetime.now(dt.UTC)):
        log.info("run %s: removed superseded days of run %s (older than the retention)", run_id, pruned)
    timings["total"] = time.monotonic() - clock
    row = {
        **base,
        "run_id": run_id,
        "status": "SUCCEEDED",
        "message": EMPTY_DAY_MESSAGE if result.counts["sessions_read"] == 0 else None,
        "counts": result.counts,
        "decisions": result.decisions,
        "model_loads": result.model_loads,
        "timings_s": timings,
    }
    _append_run_log(spark, cfg, day, row)
    result.tables = {t: tables.table_name(cfg, t) for t in (*PUBLISHED_TABLES, "run_log")}
    log.info("run %s: done in %.1f s: %s", run_id, timings["total"], result.decisions)
    return result


def _run(spark, cfg, day, run_id, ae_version, seq_version, rival, timings) -> RunResult:
    clock = time.monotonic()
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sessions = inputs.read_sessions(spark, cfg.path("sessions"), day)
    actions = inputs.read_actions(spark, cfg.path("actions"), day)
    sessions_read = inputs.check_readable(sessions, "sessions", day, cfg.path("sessions"))
    actions_read = inputs.check_readable(actions, "actions", day, cfg.path("actions"))
    timings["read"] = time.monotonic() - clock

    valid, bad = quality.split_valid(quality.flag_sessions(sessions, day))
    counter = spark.sparkContext.accumulator({}, model_cache.CounterParam())
    threads = int(cfg.get("scoring.threads_per_worker"))
    runtime = runtimes.configured(cfg)
    ae_model = BroadcastModel.of(spark, ae_version, runtime)
    seq_model = BroadcastModel.of(spark, seq_version, runtime)

    scored = (
        with_sequences(valid, actions)
        .transform(lambda df: score_models(df, ae_model, seq_model, threads, counter))
        .transform(lambda df: challenger.score(df, spark, cfg, rival, (ae_version, seq_version), threads, counter))
        .transform(lambda df: decide(df, cfg, ae_version.risk_score_cut))
        .withColumn("dq_flags", quality.session_dq_flags())
        .withColumn("ae_model_version", F.lit(ae_version.version))
        .withColumn("seq_model_version", F.lit(seq_version.version))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("scored_at", F.lit(scored_at).cast("timestamp"))
        .withColumn("reasons", privacy.coarsen_reasons(F.col("reasons"), cfg))
        .withColumn(quality.REASONS_COLUMN, quality.model_output_reasons())
    )
    clock = time.monotonic()
    not_a_number = tables.stage_scored(spark, cfg, run_id, scored, day, F.size(quality.REASONS_COLUMN) == 0)
    rejected = not_a_number.withColumn(quality.REASONS_COLUMN, quality.model_output_reasons())
    quarantined_rows = quarantine_rows(bad, run_id, scored_at, cfg).unionByName(
        quarantine_rows(rejected, run_id, scored_at, cfg)
    )
    tables.stage(cfg, run_id, "quarantine", quarantined_rows, day)
    timings["score_and_stage"] = time.monotonic() - clock
    failpoints.hit("after_stage")

    clock = time.monotonic()
    staged = tables.read_staged(spark, cfg, run_id, "scored_sessions", day)
    capacity = int(cfg.get("review.capacity"))
    queue = review.review_queue(staged, day, capacity, float(cfg.get("review.audit_rate")), run_id)
    tables.stage(cfg, run_id, "review_queue", queue, day)
    stats = staged.agg(
        F.count("*").alias("scored"),
        F.count_distinct("session_id").alias("distinct_scored"),
        F.sum(F.when(F.col("action_count") == 0, 1).otherwise(0)).alias("sessions_without_actions"),
        F.sum("unknown_action_count").alias("unknown_actions_in_scored"),
    ).first()
    quarantined = tables.read_staged(spark, cfg, run_id, "quarantine", day).count()
    queue_stats = (
        tables.read_staged(spark, cfg, run_id, "review_queue", day)
        .agg(
            F.count_distinct("case_id").alias("cases"),
            F.sum(F.when(~F.col("audit"), 1).otherwise(0)).alias("sessions"),
            F.sum(F.when(F.col("audit"), 1).otherwise(0)).alias("audit"),
        )
        .first()
    )
    decisions = {d: 0 for d in contract.DECISIONS}
    decisions.update({r["decision"]: r["count"] for r in staged.groupBy("decision").count().collect()})
    known = F.col("action").isin(*contract.ACTIONS)
    orphan_actions = actions.join(sessions.select("session_id"), on="session_id", how="left_anti").count()
    counts = {
        "sessions_read": sessions_read,
        "sessions_scored": int(stats["scored"]),
        "sessions_quarantined": quarantined,
        "actions_read": actions_read,
        "unknown_actions": actions.filter(~known | F.col("action").isNull()).count(),
        "orphan_actions": orphan_actions,
        "sessions_without_actions": int(stats["sessions_without_actions"] or 0),
        "review_cases": int(queue_stats["cases"] or 0),
        "review_sessions": int(queue_stats["sessions"] or 0),
        "review_audit_sessions": int(queue_stats["audit"] or 0),
        "review_overflow_cases": review.overflow_cases(staged, capacity),
    }
    compared = challenger.disagreements(staged) if rival.configured else None
    if compared is not None:
        counts["challenger_disagreements"] = compared["disagreements"]
    timings["audit"] = time.monotonic() - clock
    if sessions_read != counts["sessions_scored"] + quarantined:
        raise ReconciliationError(
            f"sessions {day}: read {sessions_read} != scored {counts['sessions_scored']} + quarantined {quarantined}"
        )
    if stats["distinct_scored"] != stats["scored"]:
        raise ReconciliationError(f"sessions {day}: a session_id was scored twice")

    failpoints.hit("before_publish")
    clock = time.monotonic()
    for table in PUBLISHED_TABLES:
        tables.publish(spark, cfg, run_id, table, day)
    timings["publish"] = time.monotonic() - clock

    loads = {}
    models = [contract.AE_MODEL, contract.SEQ_MODEL]
    models += [f"{challenger.PREFIX}{v.name}" for v in (rival.behavior, rival.sequence) if v is not None]
    for model in models:
        summary = model_cache.summarize(counter.value, model)
        log.info(
            "model %s: loaded %d times in %d Python workers over %d batches",
            model,
            summary["loads"],
            summary["workers"],
            summary["batches"],
        )
        loads.update({f"{model}.{k}": v for k, v in summary.items()})
    return RunResult(run_id, day, counts, decisions, loads, challenger=compared)


def _append_run_log(spark: SparkSession, cfg: Config, day: dt.date, row: dict) -> None:
    finished = dt.datetime.now(dt.UTC)
    full = {
        "message": None,
        "counts": {},
        "decisions": {},
        "model_loads": {},
        "timings_s": {},
        **row,
        "finished_at": finished.replace(tzinfo=None),
        "started_at": row["started_at"].replace(tzinfo=None),
        "duration_s": (finished - row["started_at"]).total_seconds(),
        "config_hash": cfg.digest(),
        "code_version": code_version(),
        "spark_master": spark.sparkContext.master,
    }
    df = spark.createDataFrame([full], contract.RUN_LOG_SCHEMA)
    tables.append(spark, cfg, row["run_id"], "run_log", df, day)


def _log_failure(spark, cfg, day, run_id, base, exc, clock, timings) -> None:
    """Best effort: record the failed run in run_log; never hides the original error."""
    try:
        timings["total"] = time.monotonic() - clock
        row = {
            **base,
            "run_id": run_id,
            "status": "FAILED",
            "message": str(exc).splitlines()[0][:500],
            "timings_s": timings,
        }
        _append_run_log(spark, cfg, day, row)
    except Exception:  # noqa: BLE001 - the original error is what matters
        log.warning("run %s: could not record the failure in run_log", run_id, exc_info=True)
