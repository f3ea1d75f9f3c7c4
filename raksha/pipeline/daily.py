"""The nightly job: score one day of sessions and publish its tables.

read -> validate -> sequence -> score (both models) -> decide -> audit -> publish -> report.
Write, audit, publish: the scored day is materialized once (persisted on the executors' local disk,
``session.DAY_STORAGE``, released at the end of the run, or on an error), audited there, and the same pass
counts the unknown and orphan actions; nothing is committed until the
counts reconcile (sessions read = scored + quarantined, no session twice). Then each table's day is replaced
by one Delta commit (``raksha.platform.tables``): scored_sessions, quarantine, review_queue, and run_log last,
so a run is published when its run_log row says so. Before that row, the nightly report
(``raksha.pipeline.report``) is written from the scored day still cached, and its drift warnings go into the
row. The run holds the date of every table it writes (``raksha.platform.locks``) from start to end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.baselines import nightly as baselines
from raksha.baselines import snapshots
from raksha.config import Config
from raksha.decide import privacy, review
from raksha.decide.decisions import decide, validate_policy
from raksha.errors import first_line
from raksha.features.sequences import session_sequences
from raksha.ingest import inputs, quality
from raksha.models import artifacts, runtimes
from raksha.pipeline import report
from raksha.platform import failpoints, locks, runs, session, tables
from raksha.platform.storage import Storage
from raksha.scoring import challenger, model_cache
from raksha.scoring.udfs import BroadcastModel, score_models

log = logging.getLogger(__name__)

PUBLISHED_TABLES = ("scored_sessions", "quarantine", "review_queue")  # then the user baselines, then run_log
WRITTEN_TABLES = (*PUBLISHED_TABLES, *snapshots.TABLES, "run_log")
PLACED_TABLES = (*WRITTEN_TABLES, "verdicts")  # what a run writes, and the verdicts it reads: where the config says
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
    versions: dict[str, int] = field(default_factory=dict)  # table -> the Delta version this run committed
    report: dict[str, str] = field(default_factory=dict)  # html, png, json -> where the nightly report is
    warnings: list[str] = field(default_factory=list)  # drift above 0.2, a report not written (also in run_log)
    drift_psi: dict[str, float] = field(default_factory=dict)  # column -> PSI against the reference
    baseline_as_of: dt.date | None = None  # the user-baseline snapshot the day was scored against


def with_sequences(flagged: DataFrame, actions: DataFrame, observation: Observation) -> DataFrame:
    """The valid sessions of ``flagged`` (the day read, with its ``quarantine_reasons``), each joined to its
    ordered action tokens (no actions: an empty sequence). The join takes every session read and every session
    of the action log, so the same pass counts into ``observation`` (ready once the frame has run), and the
    actions are read once: ``unknown_actions`` (not in the contract's list, or null), ``orphan_actions`` (of no
    session read, valid or not), ``duplicate_sessions`` (rows flagged as a duplicate session_id) and
    ``invalid_sessions`` (rows with any quarantine reason, duplicates included)."""
    read = F.col("_read").isNotNull()
    first_of_id = ~read | ~F.array_contains(quality.REASONS_COLUMN, quality.DUPLICATE)  # a duplicate's actions: once
    sequences = session_sequences(actions)
    joined = flagged.withColumn("_read", F.lit(True)).join(sequences, on="session_id", how="full_outer")
    counted = joined.observe(
        observation,
        F.coalesce(F.sum(F.when(first_of_id, F.col("unknown_action_count"))), F.lit(0)).alias("unknown_actions"),
        F.coalesce(F.sum(F.when(~read, F.col("action_count"))), F.lit(0)).alias("orphan_actions"),
        F.count(F.when(read & ~first_of_id, 1)).alias("duplicate_sessions"),
        F.count(F.when(read & (F.size(quality.REASONS_COLUMN) > 0), 1)).alias("invalid_sessions"),
    )
    valid, _ = quality.split_valid(counted.where(read))
    return (
        valid.drop("_read")
        .withColumn("action_tokens", F.coalesce("action_tokens", F.array().cast("array<int>")))
        .withColumn("action_count", F.coalesce("action_count", F.lit(0)))
        .withColumn("unknown_action_count", F.coalesce("unknown_action_count", F.lit(0)))
    )


def with_user_baselines(scored: DataFrame, user_baselines: baselines.Baselines | None) -> DataFrame:
    """The user-baseline score, its reasons and surprise (``raksha.baselines``); with baselines off, a
    null score and every user counted as having one (nothing to flag)."""
    if user_baselines is None:
        return scored.withColumn("user_baseline_score", F.lit(None).cast("double")).withColumn(
            "has_user_baseline", F.lit(True)
        )
    return user_baselines.score(scored)


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
    run_id = run_id or runs.new_run_id("score")
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    timings: dict[str, float] = {}
    log.info("run %s: scoring %s", run_id, day)
    failpoints.propagate(spark)
    validate_policy(spark, cfg)
    runtimes.configured(cfg)
    # before the day's work: a table registered elsewhere is refused, one the catalog lacks registered at its folder
    tables.place_tables(spark, cfg, PLACED_TABLES)
    # read on the driver, by URI (any Hadoop filesystem), verified, then broadcast
    store = Storage(spark)
    ae_version = artifacts.load_version(cfg.path("models"), contract.AE_MODEL, store=store)
    seq_version = artifacts.load_version(cfg.path("models"), contract.SEQ_MODEL, store=store)
    rival = challenger.load(cfg, store)
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
    timings["setup"] = time.monotonic() - clock  # the tables placed, the models' files read and verified
    with locks.hold(spark, cfg, [locks.date_key(t, day) for t in WRITTEN_TABLES], run_id):
        try:
            result = _run(spark, cfg, day, run_id, ae_version, seq_version, rival, timings)
        except Exception as exc:
            _log_failure(spark, cfg, day, run_id, base, exc, clock, timings)
            raise
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
            "table_versions": result.versions,
            "warnings": result.warnings,
            "drift_psi": result.drift_psi,
        }
        append_run_log(spark, cfg, day, row)
    written = [t for t in WRITTEN_TABLES if t in PUBLISHED_TABLES or t in result.versions or t == "run_log"]
    result.tables = {t: tables.table_name(cfg, t) for t in written}
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

    with contextlib.ExitStack() as cache:  # every frame kept below is released at the end, or on an error
        cache.enter_context(session.shuffle_partitions_for(spark, cfg, sessions_read))

        def kept(frame: DataFrame) -> DataFrame:
            frame = frame.persist(session.DAY_STORAGE)
            cache.callback(frame.unpersist)
            return frame

        # the input is validated twice when it holds invalid rows (scored here, quarantined below, without the
        # duplicate check's shuffle when the scoring pass found no duplicate), once when it holds none: keeping the
        # validated day instead moved its cost from the audit to the scoring job, no faster at 1M sessions
        read_counts = Observation("day read")
        counter = spark.sparkContext.accumulator({}, model_cache.CounterParam())
        threads = int(cfg.get("scoring.threads_per_worker"))
        windows = int(cfg.get("scoring.max_windows_per_session"))
        runtime = runtimes.configured(cfg)
        ae_model = BroadcastModel.of(spark, ae_version, runtime)
        seq_model = BroadcastModel.of(spark, seq_version, runtime)
        user_baselines = None
        if cfg.get("baseline.enabled"):
            clock = time.monotonic()
            user_baselines = baselines.load(spark, cfg, day, ae_version)
            timings["baselines_load"] = time.monotonic() - clock  # the snapshot found, the users' expectations kept

        scored = (
            with_sequences(quality.flag_sessions(sessions, day), actions, read_counts)
            .transform(lambda df: score_models(df, ae_model, seq_model, threads, counter, windows))
            .transform(lambda df: with_user_baselines(df, user_baselines))
            .transform(lambda df: challenger.score(df, spark, cfg, rival, (ae_version, seq_version), threads, counter))
            .transform(lambda df: decide(df, cfg, ae_version.risk_score_cut))
            .withColumn("dq_flags", quality.session_dq_flags(windows, user_baselines=True))
            .withColumn("ae_model_version", F.lit(ae_version.version))
            .withColumn("seq_model_version", F.lit(seq_version.version))
            .withColumn("run_id", F.lit(run_id))
            .withColumn("scored_at", F.lit(scored_at).cast("timestamp"))
            .withColumn("reasons", privacy.coarsen_reasons(F.col("reasons"), cfg))
            .withColumn(quality.REASONS_COLUMN, quality.model_output_reasons())
        )
        ok = F.size(quality.REASONS_COLUMN) == 0
        reference = Observation("user baseline reference")
        if user_baselines is not None:  # the day's reference, counted by the pass that builds the scored day
            scored = scored.observe(reference, *snapshots.reference_metrics(ok))
        clock = time.monotonic()
        # materialized once: the audit below and the commits read it, the models run once
        scored = kept(scored)
        stats = scored.agg(
            F.count("*").alias("rows"),
            F.sum(F.when(ok, 1).otherwise(0)).alias("scored"),
            F.count_distinct(F.xxhash64("session_id")).alias("distinct_hashes"),
            F.sum(F.when(ok & (F.col("action_count") == 0), 1).otherwise(0)).alias("sessions_without_actions"),
            F.sum(F.when(ok & ~F.col("has_user_baseline"), 1).otherwise(0)).alias("sessions_without_user_baseline"),
            *[F.sum(F.when(ok & (F.col("decision") == d), 1).otherwise(0)).alias(d) for d in contract.DECISIONS],
        ).first()
        timings["score"] = time.monotonic() - clock
        failpoints.hit("after_score")

        clock = time.monotonic()
        good = scored.where(ok).drop(quality.REASONS_COLUMN)
        observed = {k: int(v) for k, v in read_counts.get.items()}
        # the scoring pass counted the invalid rows and the duplicates: with no invalid row, nothing of the input
        # is quarantined and it is not validated again (an empty frame: Spark reads nothing for it); with no
        # duplicate, the quarantine checks each row on its own. A count gone wrong cannot lose a row: the counts
        # are reconciled below before anything is published
        invalid = observed["invalid_sessions"] > 0
        flagged = quality.flag_sessions(sessions, day, observed["duplicate_sessions"] > 0)
        _, bad = quality.split_valid(flagged if invalid else flagged.limit(0))
        rejected = scored.where(~ok)  # a model output that is not a number is never published as a score
        rejected_rows = int(stats["rows"]) - int(stats["scored"] or 0)  # counted by the scoring pass
        if rejected_rows == 0:  # none: an empty frame, so the quarantine of a clean day reads nothing again
            rejected = rejected.limit(0)
        quarantine = quarantine_rows(bad, run_id, scored_at, cfg).unionByName(
            quarantine_rows(rejected, run_id, scored_at, cfg)
        )
        quarantine = kept(quarantine)
        capacity, audit_rate = int(cfg.get("review.capacity")), float(cfg.get("review.audit_rate"))
        # the queue's jobs (its ranking, its counts, the overflow) read the day's candidates, kept apart: a few
        # percent of a usual day, where each of them read the whole scored day again from the disk. When most of
        # the day is flagged, that copy would be the day again: the queue reads the day
        decisions = {d: int(stats[d] or 0) for d in contract.DECISIONS}
        flagged_rows = sum(decisions[d] for d in contract.FLAGGED_DECISIONS)
        candidates = good.where(review.candidate(day, audit_rate))
        candidates = kept(candidates) if flagged_rows < int(stats["scored"] or 0) / 2 else candidates
        queue = kept(review.review_queue(candidates, day, capacity, audit_rate, run_id))
        # with no invalid input row the quarantine is the scored rows a model failed, which the scoring pass
        # counted on the same cached day: not counted again by a pass over the day
        quarantined = quarantine.count() if invalid else rejected_rows
        queue_stats = queue.agg(
            F.count_distinct("case_id").alias("cases"),
            F.sum(F.when(~F.col("audit"), 1).otherwise(0)).alias("sessions"),
            F.sum(F.when(F.col("audit"), 1).otherwise(0)).alias("audit"),
        ).first()
        counts = {
            "sessions_read": sessions_read,
            "sessions_scored": int(stats["scored"] or 0),
            "sessions_quarantined": quarantined,
            "actions_read": actions_read,
            "unknown_actions": observed["unknown_actions"],
            "orphan_actions": observed["orphan_actions"],
            "sessions_without_actions": int(stats["sessions_without_actions"] or 0),
            "sessions_without_user_baseline": int(stats["sessions_without_user_baseline"] or 0),
            "review_cases": int(queue_stats["cases"] or 0),
            "review_sessions": int(queue_stats["sessions"] or 0),
            "review_audit_sessions": int(queue_stats["audit"] or 0),
            "review_overflow_cases": review.overflow_cases(candidates, capacity),
        }
        compared = challenger.disagreements(good) if rival.configured else None
        if compared is not None:
            counts["challenger_disagreements"] = compared["disagreements"]
        timings["audit"] = time.monotonic() - clock
        distinct = int(stats["distinct_hashes"])  # 64-bit keys: a lighter aggregation than the ids (36 characters)
        if distinct != int(stats["rows"]):  # two ids may share a hash: only the ids can say a session came twice
            distinct = scored.select("session_id").distinct().count()
        check_reconciled(day, counts, int(stats["rows"]), distinct)

        failpoints.hit("before_publish")
        clock = time.monotonic()
        versions = {}
        for table, rows in (("scored_sessions", good), ("quarantine", quarantine), ("review_queue", queue)):
            versions[table] = tables.publish_day(spark, cfg, table, rows, day, run_id).version
        timings["publish"] = time.monotonic() - clock
        if user_baselines is not None:
            clock = time.monotonic()
            day_reference = snapshots.reference_of(reference.get)
            versions.update(baselines.update(spark, cfg, user_baselines, good, run_id, day_reference))
            timings["baselines"] = time.monotonic() - clock
        clock = time.monotonic()
        run_row = {"run_id": run_id, "counts": counts, "decisions": decisions}
        written = nightly_report(spark, cfg, day, good, run_row, ae_version, seq_version)
        timings["report"] = time.monotonic() - clock

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
    result = RunResult(run_id, day, counts, decisions, loads, challenger=compared, versions=versions)
    if user_baselines is not None:
        result.baseline_as_of = user_baselines.as_of
    result.report, result.warnings, result.drift_psi = written
    return result


def nightly_report(
    spark: SparkSession, cfg: Config, day: dt.date, good: DataFrame, run_row: dict, ae_version, seq_version
) -> tuple[dict[str, str], list[str], dict[str, float]]:
    """The day's report (``raksha.pipeline.report``), from the scored day still cached: the paths of its
    files, its warnings and the drift. A report that fails is a warning: the day is published already,
    and ``raksha report --date D`` writes it again."""
    if not cfg.get("report.enabled"):
        return {}, [], {}
    try:
        doc, paths = report.nightly(spark, cfg, day, good, run_row, ae_version, seq_version)
    except Exception as exc:  # noqa: BLE001 - the scored day stands; the report can be rebuilt
        first = first_line(exc)[:300]
        log.warning("run %s: the nightly report was not written: %s", run_row["run_id"], first)
        log.debug("run %s: the nightly report", run_row["run_id"], exc_info=True)
        return {}, [f"REPORT_NOT_WRITTEN: {first} (raksha report --date {day} writes it)"], {}
    return paths, list(doc["warnings"]), dict(doc["drift"]["psi"])


def check_reconciled(day: dt.date, counts: dict[str, int], scored_rows: int, distinct_sessions: int) -> None:
    """Nothing is published unless every session read is scored or quarantined, and none twice."""
    read, scored, quarantined = counts["sessions_read"], counts["sessions_scored"], counts["sessions_quarantined"]
    if read != scored + quarantined:
        raise ReconciliationError(f"sessions {day}: read {read} != scored {scored} + quarantined {quarantined}")
    if distinct_sessions != scored_rows:
        raise ReconciliationError(f"sessions {day}: a session_id was scored twice")


def append_run_log(spark: SparkSession, cfg: Config, day: dt.date, row: dict) -> None:
    """Commit one run_log row for ``day`` (the run's own commit, last of the run's commits)."""
    finished = dt.datetime.now(dt.UTC)
    full = {
        "message": None,
        "counts": {},
        "decisions": {},
        "model_loads": {},
        "timings_s": {},
        "table_versions": {},
        "warnings": [],
        "drift_psi": {},
        **row,
        "finished_at": finished.replace(tzinfo=None),
        "started_at": row["started_at"].replace(tzinfo=None),
        "duration_s": (finished - row["started_at"]).total_seconds(),
        "config_hash": cfg.digest(),
        "code_version": runs.code_version(),
        "spark_master": spark.sparkContext.master,
    }
    df = spark.createDataFrame([full], contract.RUN_LOG_SCHEMA)
    tables.append_day(spark, cfg, "run_log", df, day, row["run_id"])


def _log_failure(spark, cfg, day, run_id, base, exc, clock, timings) -> None:
    """Best effort: record the failed run in run_log; never hides the original error."""
    try:
        timings["total"] = time.monotonic() - clock
        row = {
            **base,
            "run_id": run_id,
            "status": "FAILED",
            "message": first_line(exc)[:500],
            "timings_s": timings,
        }
        append_run_log(spark, cfg, day, row)
    except Exception as logged:  # noqa: BLE001 - the original error is what matters
        log.warning("run %s: could not record the failure in run_log: %s", run_id, first_line(logged))
        log.debug("run %s: recording the failure in run_log", run_id, exc_info=True)
