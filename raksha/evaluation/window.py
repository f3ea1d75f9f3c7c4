"""The window of scored days and its ground truth read with Spark, and the evaluation built from them.

``queue_precision`` rebuilds each day's review queue from ``scored_sessions`` at a capacity
of a share of the day's sessions (the same ranking as the nightly job, no audit sample),
joins the labels written by ``generate``, and reports precision overall and, per attack
kind, how many attacks there were, how many the queue holds, and that recall.

``evaluate`` (``raksha evaluate``) scores the models of a window of scored days against a ground
truth: the labels written by ``generate`` (``truth="labels"``) or the analysts' current verdicts
(``truth="verdicts"``: fraud is positive, legit negative, unsure and unreviewed sessions are left
out; the sessions analysts review are mostly the queued ones, so these numbers describe the
reviewed sessions, not all of them). It reports

- ROC-AUC and PR-AUC (average precision) of each score (``metrics.SCORES``): the notebook
  autoencoder's ``ae_error``, its standardised form ``ae_std_error``, the per-user baseline's
  ``user_baseline_score``, a baseline computed here, the sequence model's ``seq_risk_max`` and the
  combined ``risk_score``; both also per attack kind (that kind's attacks against the negatives).
  The baseline is scikit-learn's IsolationForest (fixed random_state) trained on the 30
  behavioural features of the window's scored sessions (at most ``baseline_max_rows``, a
  deterministic hash sample; missing values filled with 0 as for the autoencoder), scored in
  Spark. A score added after the table's first days (``metrics.OPTIONAL_SCORES``) is reported not
  available when the table has no such column or it is null on every evaluated session, and is
  evaluated on the sessions that have it otherwise (the report says how many);
- each score's queues at 1% and 3% of each day's sessions, per session and per case
  (``queues``): precision, and recall per attack kind;
- precision and recall per attack kind at the current decisions (REVIEW or BLOCK; BLOCK alone)
  and at a queue capacity of ``capacity_share`` of each day's sessions (the queue of
  ``queue_precision``);
- with the generated labels, the benign oddities (``queues.oddity_report``): how often normal
  sessions with each oddity are flagged and queued against those without one.

Nothing of the size of the window reaches the driver: Spark reduces the evaluated sessions to
counts by kind and, per score, two passes over the distinct score values range-partitioned by
score (``aggregates``); the driver gets rows of the order of the kinds, days and partitions and
computes the numbers from them (``metrics``, pure). ROC-AUC and PR-AUC stay exact (scikit-learn's
on the same sessions). The IsolationForest trains on the driver on its sample, at most
``baseline_max_rows`` sessions (the one collection of session rows, bounded by that), and scores
in Spark (mapInPandas).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide import review
from raksha.evaluation import aggregates
from raksha.evaluation.metrics import (
    BASELINE,
    BASELINE_SEED,
    BASELINE_TREES,
    MODEL_SCORES,
    OPTIONAL_SCORES,
    SCORES,
    baseline_scores,
    capacity_cases,
    fit_baseline,
    queue_summary,
)
from raksha.evaluation.queues import QUEUE_SHARES
from raksha.ingest import inputs
from raksha.platform import tables

log = logging.getLogger(__name__)

TRUTHS: tuple[str, ...] = ("labels", "verdicts")
BASELINE_MAX_ROWS = 200_000
SAMPLE_BUCKETS = 1_000_000


# --- the review queue at a capacity ---


def _scored_table(spark: SparkSession, cfg: Config) -> DataFrame:
    name = tables.table_name(cfg, "scored_sessions")
    if not spark.catalog.tableExists(name):
        raise inputs.InputError(f"{name}: no such table (score a day first: raksha score --date D)")
    return spark.table(name)


def capacity_queue(scored: DataFrame, day: dt.date, sessions: int, capacity_share: float) -> DataFrame:
    """session_id of the day's review queue at ``capacity_share`` of its sessions (no audit sample)."""
    capacity = capacity_cases(capacity_share, sessions)
    return review.review_queue(scored, day, capacity, 0.0, "evaluation").select("session_id")


def queue_precision(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, capacity_share: float = 0.01
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Each day's review queue at ``capacity_share`` against the generated labels (``metrics.queue_summary``)."""
    scored_table = _scored_table(spark, cfg)
    rows = []
    for day in inputs.days(start, end):
        scored = scored_table.where(F.col("dt") == day.isoformat()).drop("dt")
        n = scored.count()
        if n == 0:
            raise inputs.InputError(f"scored_sessions {day}: no rows (score the day first)")
        queue = capacity_queue(scored, day, n, capacity_share)
        labels = inputs.read_day(spark, cfg.path("labels"), day, "labels", contract.LABELS_SCHEMA)
        joined = (
            scored.select("session_id")
            .join(labels.select("session_id", "attack_kind"), on="session_id", how="left")
            .join(queue.withColumn("queued", F.lit(True)), on="session_id", how="left")
            .groupBy(F.coalesce("attack_kind", F.lit("normal")).alias("kind"))
            .agg(F.count("*").alias("sessions"), F.count("queued").alias("queued"))
        )
        rows += [{"dt": day.isoformat(), **r.asDict()} for r in joined.collect()]
    return queue_summary(pd.DataFrame(rows), capacity_share)


# --- ground truth ---


def labels_truth(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, is_attack, kind (attack kind, or ``normal``), oddity (a normal session's
    benign oddity, else null) from the generated labels."""
    labels = inputs.read_window(spark, cfg.path("labels"), start, end, "labels", contract.LABELS_SCHEMA)
    return labels.select(
        "dt",
        "session_id",
        F.col("is_attack").cast("int").alias("is_attack"),
        F.when(F.col("is_attack") == 1, F.coalesce("attack_kind", F.lit("attack")))
        .otherwise(F.lit("normal"))
        .alias("kind"),
        F.when(F.col("is_attack") == 0, F.col("benign_oddity")).alias("oddity"),
    )


def verdicts_truth(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, is_attack, kind (``fraud`` or ``legit``), oddity (null: verdicts name none) from
    the current verdicts; unsure left out."""
    from raksha.feedback import verdicts

    current = verdicts.read_verdicts(spark, cfg, start, end)
    return current.where(F.col("verdict").isin("fraud", "legit")).select(
        "dt",
        "session_id",
        (F.col("verdict") == "fraud").cast("int").alias("is_attack"),
        F.col("verdict").alias("kind"),
        F.lit(None).cast("string").alias("oddity"),
    )


# --- the IsolationForest baseline ---


def session_features(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, keys: DataFrame) -> DataFrame:
    """The raw features of the sessions in ``keys`` (dt, session_id), one row each.

    A duplicated session_id keeps the row the nightly job scores: the earliest session_start,
    then the smallest hash of the row.
    """
    raw = inputs.read_window(spark, cfg.path("sessions"), start, end, "sessions", contract.SESSIONS_SCHEMA)
    columns = ["dt", "session_id", "session_start", *contract.FEATURES]
    row_hash = F.xxhash64(*[F.col(c) for c in raw.columns if c != "dt"])
    keep = Window.partitionBy("dt", "session_id").orderBy(F.col("session_start").asc_nulls_last(), "_row_hash")
    return (
        raw.select(*columns, row_hash.alias("_row_hash"))
        .join(keys, ["dt", "session_id"], "left_semi")
        .withColumn("_keep", F.row_number().over(keep))
        .where(F.col("_keep") == 1)
        .select("dt", "session_id", *contract.FEATURES)
    )


def baseline(
    spark: SparkSession, features: DataFrame, to_score: DataFrame, max_rows: int, seed: int
) -> tuple[DataFrame, dict[str, Any]]:
    """Train the IsolationForest on at most ``max_rows`` of ``features``; score ``to_score`` with it.

    Both hold dt, session_id and the 30 features; returns (dt, session_id, isolation_forest) and
    what was trained. The sample is the rows with the smallest hash of (seed, dt, session_id); it is
    the one set of session rows brought to the driver, at most ``max_rows`` of them (all of
    ``features`` only when they are no more), whatever the window's size.
    """
    pool = features.count()
    training = features
    if pool > max_rows:
        bucket = F.pmod(F.xxhash64(F.lit(seed), F.col("dt"), F.col("session_id")), F.lit(SAMPLE_BUCKETS))
        training = features.withColumn("_bucket", bucket).orderBy("_bucket", "dt", "session_id").limit(max_rows)
    sample = training.select("dt", "session_id", *contract.FEATURES).toPandas()
    sample = sample.sort_values(["dt", "session_id"], kind="mergesort").reset_index(drop=True)
    if sample.empty:
        raise inputs.InputError("baseline: no sessions to train the IsolationForest on")
    forest = fit_baseline(sample, seed)
    model = spark.sparkContext.broadcast(forest)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        forest = model.value
        for batch in batches:
            yield pd.DataFrame(
                {"dt": batch["dt"], "session_id": batch["session_id"], BASELINE: baseline_scores(forest, batch)}
            )

    scored = to_score.mapInPandas(score, f"dt string, session_id string, {BASELINE} double")
    info = {
        "model": "sklearn.ensemble.IsolationForest",
        "n_estimators": BASELINE_TREES,
        "random_state": seed,
        "features": list(contract.FEATURES),
        "missing_values": "filled with 0",
        "training_pool": int(pool),
        "training_rows": len(sample),
        "max_training_rows": max_rows,
    }
    return scored, info


# --- evaluate ---


def evaluate(
    spark: SparkSession,
    cfg: Config,
    start: dt.date,
    end: dt.date,
    capacity_share: float = 0.01,
    truth: str = "labels",
    baseline_max_rows: int = BASELINE_MAX_ROWS,
    baseline_seed: int = BASELINE_SEED,
    queue_shares: Sequence[float] = QUEUE_SHARES,
) -> dict[str, Any]:
    """The models, the combined score, the queues and the baseline on the window against ``truth`` (a dict)."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    if not 0.0 < capacity_share <= 1.0:
        raise ValueError(f"capacity share must lie in (0, 1], got {capacity_share}")
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}, got '{truth}'")
    if baseline_max_rows < 1:
        raise ValueError(f"baseline rows must be >= 1, got {baseline_max_rows}")
    if not queue_shares or not all(0.0 < share <= 1.0 for share in queue_shares):
        raise ValueError(f"queue shares must lie in (0, 1], got {list(queue_shares)}")

    table = _scored_table(spark, cfg)
    absent = [name for name in MODEL_SCORES if name not in table.columns]
    if required := [name for name in absent if name not in OPTIONAL_SCORES]:
        raise inputs.InputError(f"{tables.table_name(cfg, 'scored_sessions')}: no column {', '.join(required)}")
    if absent:
        log.info("evaluate: %s not in scored_sessions: reported not available", ", ".join(absent))
    present = [name for name in MODEL_SCORES if name not in absent]
    scores = [*present, *(F.lit(None).cast("double").alias(name) for name in absent)]
    scored = (
        table.where(F.col("dt").between(start.isoformat(), end.isoformat()))
        .select("dt", "session_id", "user_id", "decision", *scores)
        .persist()
    )
    persisted = [scored]
    try:
        per_day = {r["dt"]: r["n"] for r in scored.groupBy("dt").agg(F.count("*").alias("n")).collect()}
        for day in inputs.days(start, end):
            if not per_day.get(day.isoformat()):
                raise inputs.InputError(f"scored_sessions {day}: no rows (score the day first)")
        queue = None
        for day in inputs.days(start, end):
            scored_day = scored.where(F.col("dt") == day.isoformat()).drop("dt")
            day_queue = capacity_queue(scored_day, day, per_day[day.isoformat()], capacity_share)
            day_queue = day_queue.withColumn("dt", F.lit(day.isoformat()))
            queue = day_queue if queue is None else queue.unionByName(day_queue)
        assert queue is not None

        truth_df = labels_truth(spark, cfg, start, end) if truth == "labels" else verdicts_truth(spark, cfg, start, end)
        evaluated = scored.join(truth_df, ["dt", "session_id"], "inner")
        features = session_features(spark, cfg, start, end, scored.select("dt", "session_id")).persist()
        persisted.append(features)
        to_score = features.join(evaluated.select("dt", "session_id"), ["dt", "session_id"], "left_semi")
        forest_scores, baseline_info = baseline(spark, features, to_score, baseline_max_rows, baseline_seed)
        frame = (
            evaluated.join(queue.withColumn("queued", F.lit(True)), ["dt", "session_id"], "left")
            .join(forest_scores, ["dt", "session_id"], "left")
            .select("dt", "session_id", "user_id", "decision", *MODEL_SCORES, BASELINE, "queued", *truth_df.columns[2:])
            .persist()
        )  # queued: true or null from the left join; read once per aggregate below, so scored once
        persisted.append(frame)
        counts = aggregates.kind_counts(frame, SCORES)
        for name in SCORES:  # every scored session has the first scores and raw features; a gap is a bug
            if name in OPTIONAL_SCORES:
                continue
            if gaps := int(counts[aggregates.missing(name)].sum()):
                subject = "baseline" if name == BASELINE else name
                raise RuntimeError(f"{subject}: {gaps} evaluated sessions have no score")
        evaluated_rows = int(counts["sessions"].sum())
        if not evaluated_rows:
            raise inputs.InputError(f"no scored session of {start} .. {end} has a ground truth in {truth}")
        numbers = aggregates.evaluated_metrics(frame, counts, per_day, capacity_share, absent, queue_shares)
        versions = scored_versions(spark, cfg, start, end)
        truth_rows = truth_df.count()
        unsure = 0
        if truth == "verdicts":
            from raksha.feedback.verdicts import read_verdicts

            unsure = read_verdicts(spark, cfg, start, end).where(F.col("verdict") == "unsure").count()
    finally:
        for frame_ in persisted:
            frame_.unpersist()

    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "truth": truth,
        "capacity_share": capacity_share,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": cfg.digest(),
        "model_versions": versions,
        "sessions": {
            "scored": int(sum(per_day.values())),
            "evaluated": evaluated_rows,
            "attacks": int(counts.loc[counts["is_attack"] == 1, "sessions"].sum()),
            "truth_rows": int(truth_rows),
            "truth_rows_not_scored": int(truth_rows - evaluated_rows),
            "unsure_left_out": int(unsure),
            "per_day": {d: int(n) for d, n in sorted(per_day.items())},
        },
        **numbers,
        "baseline": baseline_info,
    }


def scored_versions(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> dict[str, list[str]]:
    rows = (
        _scored_table(spark, cfg)
        .where(F.col("dt").between(start.isoformat(), end.isoformat()))
        .select("ae_model_version", "seq_model_version")
        .distinct()
        .collect()
    )
    return {
        "ae_model_version": sorted({r["ae_model_version"] for r in rows}),
        "seq_model_version": sorted({r["seq_model_version"] for r in rows}),
    }
