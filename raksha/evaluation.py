"""Measuring the models and the review queue against ground truth.

``queue_precision`` rebuilds each day's review queue from ``scored_sessions`` at a capacity
of a share of the day's sessions (the same ranking as the nightly job, no audit sample),
joins the labels written by ``generate``, and reports precision overall and, per attack
kind, how many attacks there were, how many the queue holds, and that recall.

``evaluate`` (``raksha evaluate``) scores the models of a window of scored days against a ground
truth: the labels written by ``generate`` (``truth="labels"``) or the analysts' current verdicts
(``truth="verdicts"``: fraud is positive, legit negative, unsure and unreviewed sessions are left
out; the sessions analysts review are mostly the queued ones, so these numbers describe the
reviewed sessions, not all of them). It reports

- ROC-AUC and PR-AUC (average precision) of each model's raw output, ``ae_error`` (autoencoder)
  and ``seq_risk_max`` (sequence model), of the combined ``risk_score``, and of a baseline on
  the same sessions: scikit-learn's IsolationForest (fixed random_state) trained on the 30
  behavioural features of the window's scored sessions (at most ``baseline_max_rows``, a
  deterministic hash sample; missing values filled with 0 as for the autoencoder), scored in
  Spark; ROC-AUC also per attack kind (that kind's attacks against the negatives);
- precision and recall per attack kind at the current decisions (REVIEW or BLOCK; BLOCK alone)
  and at a queue capacity of ``capacity_share`` of each day's sessions (the queue of
  ``queue_precision``).

The metrics are computed with scikit-learn on pandas: Spark collects only the needed columns
of the evaluated sessions (day, id, three scores, the baseline's score, decision, queued, truth),
about 100 bytes a session, which is fine up to a few million sessions on a driver with 2 GB.
The IsolationForest trains on the driver (the sample) and scores in Spark (mapInPandas).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide import review
from raksha.ingest import inputs
from raksha.platform import tables
from raksha.platform.storage import Storage, local_path

log = logging.getLogger(__name__)

TRUTHS: tuple[str, ...] = ("labels", "verdicts")
# score column -> what it is; higher means more suspicious for every one
MODEL_SCORES: dict[str, str] = {
    "ae_error": "autoencoder",
    "seq_risk_max": "sequence model",
    "risk_score": "combined",
}
BASELINE = "isolation_forest"
BASELINE_MAX_ROWS = 200_000
BASELINE_SEED = 0
BASELINE_TREES = 100
SAMPLE_BUCKETS = 1_000_000


# --- the review queue at a capacity ---


def _scored_table(spark: SparkSession, cfg: Config) -> DataFrame:
    name = tables.table_name(cfg, "scored_sessions")
    if not spark.catalog.tableExists(name):
        raise inputs.InputError(f"{name}: no such table (score a day first: raksha score --date D)")
    return spark.table(name)


def capacity_queue(scored: DataFrame, day: dt.date, sessions: int, capacity_share: float) -> DataFrame:
    """session_id of the day's review queue at ``capacity_share`` of its sessions (no audit sample)."""
    capacity = max(1, math.ceil(capacity_share * sessions))
    return review.review_queue(scored, day, capacity, 0.0, "evaluation").select("session_id")


def queue_precision(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, capacity_share: float = 0.01
) -> tuple[pd.DataFrame, dict[str, float]]:
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
    per_day = pd.DataFrame(rows)
    by_kind = per_day.groupby("kind")[["sessions", "queued"]].sum()
    by_kind["recall"] = by_kind["queued"] / by_kind["sessions"]
    queued = int(by_kind["queued"].sum())
    attacks_queued = int(by_kind.drop(index="normal", errors="ignore")["queued"].sum())
    by_kind["share_of_queue"] = by_kind["queued"] / max(queued, 1)
    summary = {
        "sessions": int(by_kind["sessions"].sum()),
        "queued": queued,
        "precision": attacks_queued / max(queued, 1),
        "capacity_share": capacity_share,
    }
    return by_kind.reset_index(), summary


def print_queue_precision(by_kind: pd.DataFrame, summary: dict[str, float], start: dt.date, end: dt.date) -> None:
    print(f"review queue vs ground truth, {start} .. {end}, capacity {summary['capacity_share']:.1%} of sessions")
    print(f"  {summary['queued']} sessions queued of {summary['sessions']}; precision {summary['precision']:.3f}")
    print(f"  {'kind':<20} {'sessions':>9} {'queued':>7} {'recall':>7} {'share of queue':>15}")
    for row in by_kind.sort_values("kind").itertuples():
        print(f"  {row.kind:<20} {row.sessions:>9} {row.queued:>7} {row.recall:>7.3f} {row.share_of_queue:>15.3f}")


# --- metrics (pure pandas / numpy) ---


def _auc(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(np.unique(y)) < 2:  # undefined with one class
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(y, score)), "pr_auc": float(average_precision_score(y, score))}


def score_metrics(frame: pd.DataFrame, scores: list[str]) -> dict[str, dict[str, float | None]]:
    """ROC-AUC and PR-AUC of each score column against ``is_attack`` (None when one class only)."""
    y = frame["is_attack"].to_numpy()
    return {name: _auc(y, frame[name].to_numpy(dtype="float64")) for name in scores}


def auc_by_kind(frame: pd.DataFrame, scores: list[str]) -> dict[str, dict[str, float | None]]:
    """ROC-AUC of each score for each attack kind: that kind's attacks against every negative."""
    negatives = frame["is_attack"] == 0
    out = {}
    for kind in sorted(frame.loc[~negatives, "kind"].unique()):
        subset = frame[negatives | (frame["kind"] == kind)]
        y = subset["is_attack"].to_numpy()
        out[kind] = {name: _auc(y, subset[name].to_numpy(dtype="float64"))["roc_auc"] for name in scores}
    return out


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def outcome_by_kind(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per kind (negatives included, then all attacks): sessions, flagged, blocked, queued and their recall."""
    flagged = frame["decision"].isin(review.FLAGGED)
    blocked = frame["decision"] == "BLOCK"
    queued = frame["queued"].astype(bool)
    groups = [(kind, frame["kind"] == kind) for kind in sorted(frame["kind"].unique())]
    groups.append(("all attacks", frame["is_attack"] == 1))
    rows = []
    for kind, mask in groups:
        n = int(mask.sum())
        counts = {"flagged": int((mask & flagged).sum()), "blocked": int((mask & blocked).sum())}
        counts["queued"] = int((mask & queued).sum())
        rows.append(
            {
                "kind": kind,
                "sessions": n,
                **counts,
                "recall_at_decisions": _share(counts["flagged"], n),
                "recall_blocked": _share(counts["blocked"], n),
                "recall_at_capacity": _share(counts["queued"], n),
            }
        )
    return rows


def precision(frame: pd.DataFrame, picked: pd.Series) -> dict[str, Any]:
    n = int(picked.sum())
    attacks = int((picked & (frame["is_attack"] == 1)).sum())
    return {"sessions": n, "attacks": attacks, "precision": _share(attacks, n)}


# --- ground truth ---


def labels_truth(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, is_attack, kind (attack kind, or ``normal``) from the generated labels."""
    labels = inputs.read_window(spark, cfg.path("labels"), start, end, "labels", contract.LABELS_SCHEMA)
    return labels.select(
        "dt",
        "session_id",
        F.col("is_attack").cast("int").alias("is_attack"),
        F.when(F.col("is_attack") == 1, F.coalesce("attack_kind", F.lit("attack")))
        .otherwise(F.lit("normal"))
        .alias("kind"),
    )


def verdicts_truth(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """dt, session_id, is_attack, kind (``fraud`` or ``legit``) from the current verdicts; unsure left out."""
    from raksha.feedback import verdicts

    current = verdicts.read_verdicts(spark, cfg, start, end)
    return current.where(F.col("verdict").isin("fraud", "legit")).select(
        "dt",
        "session_id",
        (F.col("verdict") == "fraud").cast("int").alias("is_attack"),
        F.col("verdict").alias("kind"),
    )


# --- the IsolationForest baseline ---


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The 30 features in the contract's order, missing values filled with 0 (as the autoencoder's input)."""
    return frame[list(contract.FEATURES)].astype("float64").fillna(0.0).to_numpy()


def fit_baseline(training: pd.DataFrame, seed: int = BASELINE_SEED, trees: int = BASELINE_TREES):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=trees, random_state=seed).fit(feature_matrix(training))


def baseline_scores(forest, frame: pd.DataFrame) -> np.ndarray:
    """Higher is more anomalous (the negated IsolationForest score)."""
    return -forest.score_samples(feature_matrix(frame))


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
    what was trained. The sample is the rows with the smallest hash of (seed, dt, session_id).
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
) -> dict[str, Any]:
    """The models, the combined score, the queue and the baseline on the window against ``truth`` (a dict)."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    if not 0.0 < capacity_share <= 1.0:
        raise ValueError(f"capacity share must lie in (0, 1], got {capacity_share}")
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}, got '{truth}'")
    if baseline_max_rows < 1:
        raise ValueError(f"baseline rows must be >= 1, got {baseline_max_rows}")

    needed = ["dt", "session_id", "user_id", "decision", *MODEL_SCORES]
    scored = (
        _scored_table(spark, cfg)
        .where(F.col("dt").between(start.isoformat(), end.isoformat()))
        .select(*needed)
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
            .select("dt", "session_id", "decision", *MODEL_SCORES, BASELINE, "queued", "is_attack", "kind")
            .toPandas()
        )
        versions = scored_versions(spark, cfg, start, end)
        truth_rows = truth_df.count()
        unsure = 0
        if truth == "verdicts":
            from raksha.feedback.verdicts import read_verdicts

            unsure = read_verdicts(spark, cfg, start, end).where(F.col("verdict") == "unsure").count()
    finally:
        for frame_ in persisted:
            frame_.unpersist()

    frame["queued"] = frame["queued"].notna()  # True or null from the left join
    if frame[BASELINE].isna().any():  # every scored session has raw features; a gap is a bug
        raise RuntimeError(f"baseline: {int(frame[BASELINE].isna().sum())} evaluated sessions have no score")
    if frame.empty:
        raise inputs.InputError(f"no scored session of {start} .. {end} has a ground truth in {truth}")
    scores = [*MODEL_SCORES, BASELINE]
    flagged = frame["decision"].isin(review.FLAGGED)
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "truth": truth,
        "capacity_share": capacity_share,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": cfg.digest(),
        "model_versions": versions,
        "sessions": {
            "scored": int(sum(per_day.values())),
            "evaluated": len(frame),
            "attacks": int(frame["is_attack"].sum()),
            "truth_rows": int(truth_rows),
            "truth_rows_not_scored": int(truth_rows - len(frame)),
            "unsure_left_out": int(unsure),
            "per_day": {d: int(n) for d, n in sorted(per_day.items())},
        },
        "scores": score_metrics(frame, scores),
        "roc_auc_by_kind": auc_by_kind(frame, scores),
        "at_decisions": precision(frame, flagged),
        "at_capacity": {
            "cases_per_day": {d: max(1, math.ceil(capacity_share * n)) for d, n in sorted(per_day.items())},
            **precision(frame, frame["queued"]),
        },
        "by_kind": outcome_by_kind(frame),
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


def default_report_path(cfg: Config, start: dt.date, end: dt.date, truth: str) -> str:
    """``{paths.warehouse}/../reports/evaluation-{start}-{end}-{truth}.json`` (a rerun replaces it)."""
    warehouse = cfg.path("warehouse").rstrip("/")
    parent = warehouse.rsplit("/", 1)[0]
    return f"{parent}/reports/evaluation-{start.isoformat()}-{end.isoformat()}-{truth}.json"


def write_report(spark: SparkSession, report: dict[str, Any], path: str) -> str:
    payload = (json.dumps(report, indent=2, sort_keys=False) + "\n").encode()
    local = local_path(path)
    if local is not None:
        target = Path(local).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(payload)
        tmp.replace(target)  # a reader sees the old report or the new one
        return str(target)
    storage = Storage(spark)
    storage.delete(path)
    if not storage.create_exclusive(path, payload):
        raise OSError(f"could not write the report to {path}")
    return path


def _fmt(value: float | None, width: int = 8) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def print_evaluation(report: dict[str, Any], path: str | None = None) -> None:
    s = report["sessions"]
    window = report["window"]
    truth = "generated labels" if report["truth"] == "labels" else "analysts' verdicts (fraud vs legit)"
    print(f"evaluation {window['start']} .. {window['end']} against {truth}")
    print(
        f"  {s['evaluated']} sessions evaluated ({s['attacks']} positive) of {s['scored']} scored; "
        f"{s['truth_rows_not_scored']} ground-truth rows have no scored session"
    )
    versions = report["model_versions"]
    print(f"  models: {', '.join(versions['ae_model_version'])} / {', '.join(versions['seq_model_version'])}")
    print(f"  {'score':<34} {'ROC-AUC':>8} {'PR-AUC':>8}")
    names = {**{k: f"{v} ({k})" for k, v in MODEL_SCORES.items()}, BASELINE: "baseline: IsolationForest"}
    for name, label in names.items():
        metrics = report["scores"][name]
        print(f"  {label:<34} {_fmt(metrics['roc_auc'])} {_fmt(metrics['pr_auc'])}")
    b = report["baseline"]
    print(
        f"  (baseline: {b['n_estimators']} trees, random_state {b['random_state']}, trained on "
        f"{b['training_rows']} of {b['training_pool']} sessions, the 30 features, missing = 0)"
    )
    if report["roc_auc_by_kind"]:
        print(f"  ROC-AUC by kind {'':<17} " + " ".join(f"{n[:12]:>12}" for n in names))
        for kind, aucs in report["roc_auc_by_kind"].items():
            print(f"  {kind:<34} " + " ".join(_fmt(aucs[n], 12) for n in names))
    d, c = report["at_decisions"], report["at_capacity"]
    print(f"  current decisions: {d['sessions']} sessions REVIEW or BLOCK, precision {_fmt(d['precision'], 0)}")
    print(
        f"  queue at capacity {report['capacity_share']:.1%} of each day's sessions: {c['sessions']} sessions "
        f"queued, precision {_fmt(c['precision'], 0)}"
    )
    header = ("sessions", "flagged", "recall", "blocked", "recall", "queued", "recall")
    print(f"  {'kind':<20} " + " ".join(f"{h:>8}" for h in header) + "   (recall: flagged / blocked / at capacity)")
    for row in report["by_kind"]:
        print(
            f"  {row['kind']:<20} {row['sessions']:>8} {row['flagged']:>8} {_fmt(row['recall_at_decisions'])} "
            f"{row['blocked']:>8} {_fmt(row['recall_blocked'])} {row['queued']:>8} {_fmt(row['recall_at_capacity'])}"
        )
    if path:
        print(f"  written: {path}")


def run_evaluation(
    spark: SparkSession,
    cfg: Config,
    start: dt.date,
    end: dt.date,
    capacity_share: float = 0.01,
    truth: str = "labels",
    out: str | None = None,
    baseline_max_rows: int = BASELINE_MAX_ROWS,
) -> tuple[dict[str, Any], str]:
    """``evaluate``, write the JSON (``out`` or the default path), print the table; returns both."""
    report = evaluate(spark, cfg, start, end, capacity_share, truth, baseline_max_rows)
    path = write_report(spark, report, out or default_report_path(cfg, start, end, truth))
    print_evaluation(report, path)
    return report, path
