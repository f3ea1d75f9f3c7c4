"""The nightly report's Spark side: a scored day counted on the executors, its references found, its
files written beside the run (``report_dir``: ``report.html``, ``report.png``, ``report.json``).

Every count and histogram is aggregated on the executors, in one pass over the day (``observe``):
decisions, data-quality flags, reason codes of the flagged sessions, the display bins of ae_error,
seq_risk_max and risk_score, and the drift bins of the 30 features, ae_error and seq_risk, each
partition counted by numpy in the Python workers (``day_counts``), the counts summed by Spark. The
driver receives a few hundred (metric, key, count) rows, never a day's sessions.
What the numbers say is ``report_doc`` (pure), how they are drawn ``report_page`` (pure), PSI
``drift`` (pure).

Drift is measured against the model version's reference: the one a trained version stores in its
manifest (``drift_reference``), or, for a version that carries none (imported from the notebooks,
shipped, or made before references were stored), the first day it scored (by run_log), binned
and kept at ``{paths.warehouse}/_drift_reference/{model}/{version}.json``; the report says which.
A column above PSI 0.2 is a warning in the log and in run_log's ``warnings``.

The nightly job calls ``nightly`` on its scored day, still cached on the executors, before it
commits its run_log row. ``raksha report --date D`` (``rebuild``) reads the published day from the
tables (the features from the day's valid input sessions) and writes the same files again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config, resolve_path
from raksha.decide.decisions import policy
from raksha.ingest import inputs, quality
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion
from raksha.pipeline import day_counts, drift, report_doc, report_page
from raksha.pipeline.report_doc import DayStats, DisplayBins, Reference
from raksha.platform import tables
from raksha.platform.storage import Storage

log = logging.getLogger(__name__)

MODEL_COLUMNS = {
    contract.AE_MODEL: (*contract.FEATURES, "ae_error"),  # the autoencoder's inputs and its score
    contract.SEQ_MODEL: ("seq_risk",),
}
VERSION_COLUMN = {contract.AE_MODEL: "ae_model_version", contract.SEQ_MODEL: "seq_model_version"}
REFERENCE_FOLDER = "_drift_reference"
EDGES_SAMPLE = 200_000  # sessions of a first scored day whose deciles make its reference's edges
EDGES_SEED = 20261105


def report_dir(cfg: Config, day: dt.date) -> str:
    """``report.dir`` (default ``{paths.warehouse}/../reports/nightly``) ``/{day}``: one folder per date."""
    configured = cfg.get("report.dir")
    if configured:
        root = resolve_path(str(configured)).rstrip("/")
    else:
        root = cfg.path("warehouse").rstrip("/").rsplit("/", 1)[0] + "/reports/nightly"
    return f"{root}/{day.isoformat()}"


def stored_reference_path(cfg: Config, model: str, version: str) -> str:
    return f"{cfg.path('warehouse').rstrip('/')}/{REFERENCE_FOLDER}/{model}/{version}.json"


def load_reference(store: Storage, cfg: Config, version: ModelVersion) -> Reference | None:
    """The version's training reference, else the first scored day stored for it, else None."""
    if version.drift_reference is not None:
        return Reference.from_json(version.drift_reference, version.name, version.version)
    path = stored_reference_path(cfg, version.name, version.version)
    if not store.exists(path):
        return None
    return Reference.from_json(json.loads(store.read_bytes(path)), version.name, version.version)


def store_reference(store: Storage, cfg: Config, ref: Reference) -> None:
    path = stored_reference_path(cfg, ref.model, ref.version)
    if not store.exists(path):  # the first day stays the reference
        store.write_json(path, ref.to_json())
        log.info(
            "%s %s carries no training reference: %s is its reference now (%s)", ref.model, ref.version, ref.date, path
        )


# --- counting a day on the executors ---


def percentile_edges(frame: DataFrame, columns: list[str], rows: int | None = None) -> dict[str, tuple[float, ...]]:
    """Reference edges of ``columns`` from a day: ``drift.edges_for`` (deciles; binary features fixed), as
    for a training reference, of at most ``EDGES_SAMPLE`` of its sessions (a seeded sample: the driver
    never holds a day); ``observe`` then counts every session in them. ``rows``: the frame's count, when
    the caller knows it (else it is counted)."""
    if rows is None:
        rows = frame.count()
    sample = frame if rows <= EDGES_SAMPLE else frame.sample(fraction=EDGES_SAMPLE / rows, seed=EDGES_SEED)
    values = sample.select(*[F.col(c).cast("double").alias(c) for c in columns]).toPandas()
    return {c: drift.edges_for(c, values[c].to_numpy(dtype="float64", na_value=np.nan)) for c in columns}


def observe(
    frame: DataFrame, drift_edges: Mapping[str, tuple[float, ...]], bins: Mapping[str, DisplayBins]
) -> DayStats:
    """Counts of a scored day in one Spark job: the columns it needs, counted per partition in the Python
    workers (``day_counts``), the partitions' (metric, key, count) rows summed."""
    empty = F.array().cast("array<string>")
    codes = F.coalesce(F.array_distinct(F.transform(F.col("reasons"), lambda r: r["code"])), empty)
    flagged = F.when(F.col("decision").isin(*contract.FLAGGED_DECISIONS), codes).otherwise(empty)
    numbers = sorted({*drift_edges, *bins})
    columns = [
        F.col("decision").alias(day_counts.DECISION),
        F.col("dq_flags").alias(day_counts.DQ_FLAGS),
        flagged.alias(day_counts.REASON_CODES),
        *[F.col(c).cast("double").alias(c) for c in numbers],
    ]
    plan = day_counts.Plan(dict(drift_edges), dict(bins))
    rows = (
        frame.select(*columns)
        .mapInArrow(plan.count_batches, day_counts.SCHEMA)
        .groupBy("metric", "key")
        .agg(F.sum("count").alias("count"))
        .collect()
    )
    counted: dict[str, dict[str, int]] = {}
    for row in rows:
        counted.setdefault(row["metric"], {})[row["key"]] = int(row["count"])
    return DayStats(
        decisions={d: counted.get("decision", {}).get(d, 0) for d in contract.DECISIONS},
        dq_flags=counted.get("dq_flag", {}),
        without_dq_flags=counted.get("dq_none", {}).get("1", 0),
        reasons=counted.get("reason", {}),
        histograms={c: [counted.get(f"hist:{c}", {}).get(str(i), 0) for i in range(b.count)] for c, b in bins.items()},
        drift={
            c: drift.from_counts(e, {int(k): n for k, n in counted.get(f"drift:{c}", {}).items()})
            for c, e in drift_edges.items()
        },
    )


# --- references ---


def _first_scored_day(spark: SparkSession, cfg: Config, version: ModelVersion, before: dt.date) -> dt.date | None:
    """The first date before ``before`` a successful run scored with ``version`` (from run_log)."""
    if not tables.exists(spark, cfg, "run_log"):
        return None
    first = (
        spark.table(tables.table_name(cfg, "run_log"))
        .where((F.col("dt") < before.isoformat()) & (F.col("status") == "SUCCEEDED"))
        .where(F.col(VERSION_COLUMN[version.name]) == version.version)
        .agg(F.min("dt"))
        .first()[0]
    )
    return None if first is None else dt.date.fromisoformat(first)


def references(
    spark: SparkSession,
    cfg: Config,
    frame: DataFrame,
    day: dt.date,
    run_id: str,
    versions: list[ModelVersion],
    rows: int | None = None,
) -> tuple[dict[str, Reference], dict[str, tuple[float, ...]]]:
    """Each version's reference and the drift edges of the day. A version without one whose first
    scored day was earlier gets that day's (stored now); else this day becomes its reference (``new``),
    its edges from one sample of the day for all such versions (``rows``: the day's sessions, if known)."""
    store = Storage(spark)
    found = {v.name: load_reference(store, cfg, v) for v in versions}
    for version in versions:
        first = None if found[version.name] is not None else _first_scored_day(spark, cfg, version, day)
        if first is not None:
            try:
                earlier, row = published_day(spark, cfg, first)
            except inputs.InputError as exc:  # its input is gone: this day stands in
                log.warning(
                    "%s %s: its first scored day %s cannot be read again (%s)",
                    version.name,
                    version.version,
                    first,
                    exc,
                )
                continue
            made, made_edges = references(spark, cfg, earlier, first, row["run_id"], [version])
            ref = made[version.name]
            ref.columns = observe(earlier, made_edges, {}).drift
            ref.new = False  # made from its own day, and stored
            store_reference(store, cfg, ref)
            found[version.name] = ref
    refs: dict[str, Reference] = {}
    edges: dict[str, tuple[float, ...]] = {}
    sampled: list[str] = []
    for version in versions:
        ref = found[version.name]
        if ref is None:  # this day is the reference: its columns are this day's bins (``document``)
            ref = Reference(version.name, version.version, "first_scored_day", {}, day.isoformat(), run_id, new=True)
            sampled += [c for c in MODEL_COLUMNS[version.name] if c not in sampled]
        refs[version.name] = ref
        edges.update({c: b.edges for c, b in ref.columns.items()})
    if sampled:
        edges.update(percentile_edges(frame, sampled, rows))
    return refs, edges


# --- the day's frame, run_log, the document, the files ---


def published_day(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[DataFrame, dict[str, Any]]:
    """The published scored sessions of ``day`` with their input features, and the run_log row of the run
    that published them."""
    scored = spark.table(tables.table_name(cfg, "scored_sessions")).where(F.col("dt") == day.isoformat())
    published = scored.select("run_id").limit(1).collect()
    runs = spark.table(tables.table_name(cfg, "run_log")).where(
        (F.col("dt") == day.isoformat()) & (F.col("status") == "SUCCEEDED")
    )
    if published:
        runs = runs.where(F.col("run_id") == published[0]["run_id"])
    run = runs.orderBy(F.col("started_at").desc()).limit(1).collect()
    if not run:
        raise inputs.InputError(f"report {day}: run_log holds no successful run of this date (score it first)")
    sessions = inputs.read_sessions(spark, cfg.path("sessions"), day)
    valid, _ = quality.split_valid(quality.flag_sessions(sessions, day))
    frame = scored.join(valid.select("session_id", *contract.FEATURES), on="session_id", how="inner")
    return frame, run[0].asDict(recursive=True)


def trend(spark: SparkSession, cfg: Config, day: dt.date, current: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The last ``report.trend_runs`` scored dates up to ``day``, each date's latest successful run
    (``current``, a run not yet in run_log, stands for its date)."""
    limit = int(cfg.get("report.trend_runs"))
    runs: dict[str, Mapping[str, Any]] = {}
    if tables.exists(spark, cfg, "run_log"):
        latest = (
            spark.table(tables.table_name(cfg, "run_log"))
            .where((F.col("dt") <= day.isoformat()) & (F.col("status") == "SUCCEEDED"))
            .groupBy("dt")
            .agg(F.max_by(F.struct("run_id", "counts", "decisions"), "started_at").alias("run"))
            .orderBy(F.col("dt").desc())
            .limit(limit)
            .collect()
        )
        runs.update({row["dt"]: row["run"].asDict() for row in latest})
    if current is not None:
        runs[day.isoformat()] = current
    return report_doc.trend_rows(runs, limit)


def document(
    spark: SparkSession,
    cfg: Config,
    day: dt.date,
    frame: DataFrame,
    run: Mapping[str, Any],
    ae: ModelVersion | None,
    seq: ModelVersion | None,
    built_by: str,
    in_run_log: bool,
    rows: int | None = None,
) -> tuple[dict[str, Any], list[Reference]]:
    """The report of ``day`` from its scored sessions (with their features, ``rows`` of them when the caller
    counted them) and its run's run_log row (``run``: run_id, counts, decisions, model versions); and the
    references made from this day."""
    versions = [v for v in (ae, seq) if v is not None]
    refs, edges = references(spark, cfg, frame, day, run["run_id"], versions, rows)
    ae_threshold = ae.threshold if ae is not None else run.get("ae_threshold")
    bins = report_doc.displays(ae_threshold)
    stats = observe(frame, edges, bins)
    made = [ref for ref in refs.values() if ref.new and stats.sessions > 0]
    for ref in refs.values():
        if ref.new:  # this day's shares in its own edges: the reference is this day
            ref.columns = {c: stats.drift[c] for c in MODEL_COLUMNS[ref.model]}
    block = float((seq.manifest.get("block_threshold") if seq is not None else None) or contract.SEQ_BLOCK_THRESHOLD)
    lines = report_doc.threshold_lines(
        policy(cfg)[0], ae_threshold, block, ae.risk_score_cut if ae is not None else None
    )
    models = {
        contract.AE_MODEL: {"version": ae.version if ae else run.get("ae_model_version"), "threshold": ae_threshold},
        contract.SEQ_MODEL: {"version": seq.version if seq else run.get("seq_model_version"), "block_threshold": block},
    }
    doc = report_doc.assemble(
        day,
        run,
        models,
        stats,
        bins,
        lines,
        refs,
        trend(spark, cfg, day, None if in_run_log else run),
        capacity=int(cfg.get("review.capacity")),
        top_reasons=int(cfg.get("report.top_reasons")),
        built_by=built_by,
    )
    for message in doc["warnings"]:
        log.warning("run %s, %s: %s (drift against the reference)", run["run_id"], day, message)
    return doc, made


def write(
    spark: SparkSession, cfg: Config, day: dt.date, doc: Mapping[str, Any], made: list[Reference]
) -> dict[str, str]:
    """Store the references made from this day (a version's first), then the three files; returns their paths."""
    store = Storage(spark)
    for ref in made:
        store_reference(store, cfg, ref)
    folder = report_dir(cfg, day)
    page, panels = report_page.render(doc)
    paths = {
        "html": store.write_bytes(f"{folder}/report.html", report_page.render_html(doc, panels).encode()),
        "png": store.write_bytes(f"{folder}/report.png", page),
        "json": store.write_json(f"{folder}/report.json", doc),
    }
    log.info("report of %s written: %s", day, paths["html"])
    return paths


def nightly(
    spark: SparkSession,
    cfg: Config,
    day: dt.date,
    good: DataFrame,
    run: Mapping[str, Any],
    ae: ModelVersion,
    seq: ModelVersion,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The nightly job's report, from its scored day (with the input features, as many sessions as the run
    scored), before its run_log row."""
    rows = int(run["counts"]["sessions_scored"])
    doc, made = document(spark, cfg, day, good, run, ae, seq, built_by="the nightly run", in_run_log=False, rows=rows)
    return doc, write(spark, cfg, day, doc, made)


def _version(store: Storage, cfg: Config, name: str, version: str | None) -> ModelVersion | None:
    if not version:
        return None
    try:
        return artifacts.load_version(cfg.path("models"), name, version, store)
    except artifacts.ArtifactError as exc:
        log.warning("report: %s (its thresholds and reference are left out)", exc)
        return None


def rebuild(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[dict[str, Any], dict[str, str]]:
    """``raksha report --date D``: the report of the published day, from the tables and the day's input."""
    frame, run = published_day(spark, cfg, day)
    store = Storage(spark)
    ae = _version(store, cfg, contract.AE_MODEL, run["ae_model_version"])
    seq = _version(store, cfg, contract.SEQ_MODEL, run["seq_model_version"])
    doc, made = document(spark, cfg, day, frame, run, ae, seq, built_by="raksha report", in_run_log=True)
    return doc, write(spark, cfg, day, doc, made)
