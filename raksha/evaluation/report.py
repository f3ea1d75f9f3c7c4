"""The report of an evaluation: the JSON file (``default_report_path``, ``write_report``), the
printed tables of ``raksha evaluate`` and ``raksha queue-precision``, and ``run_evaluation``, the
command's one call (evaluate the window, write the JSON, print)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.evaluation.metrics import BASELINE, MODEL_SCORES
from raksha.evaluation.window import evaluate
from raksha.platform.storage import Storage


def print_queue_precision(by_kind: pd.DataFrame, summary: dict[str, float], start: dt.date, end: dt.date) -> None:
    """What ``raksha queue-precision`` prints."""
    print(f"review queue vs ground truth, {start} .. {end}, capacity {summary['capacity_share']:.1%} of sessions")
    print(f"  {summary['queued']} sessions queued of {summary['sessions']}; precision {summary['precision']:.3f}")
    print(f"  {'kind':<20} {'sessions':>9} {'queued':>7} {'recall':>7} {'share of queue':>15}")
    for row in by_kind.sort_values("kind").itertuples():
        print(f"  {row.kind:<20} {row.sessions:>9} {row.queued:>7} {row.recall:>7.3f} {row.share_of_queue:>15.3f}")


def default_report_path(cfg: Config, start: dt.date, end: dt.date, truth: str) -> str:
    """``{paths.warehouse}/../reports/evaluation-{start}-{end}-{truth}.json`` (a rerun replaces it)."""
    warehouse = cfg.path("warehouse").rstrip("/")
    parent = warehouse.rsplit("/", 1)[0]
    return f"{parent}/reports/evaluation-{start.isoformat()}-{end.isoformat()}-{truth}.json"


def write_report(spark: SparkSession, report: dict[str, Any], path: str) -> str:
    """The report as indented JSON at ``path`` (local or any Hadoop filesystem)."""
    return Storage(spark).write_json(path, report)


def _fmt(value: float | None, width: int = 8) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def print_evaluation(report: dict[str, Any], path: str | None = None) -> None:
    """The report as the table ``raksha evaluate`` prints."""
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
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, out: str | None = None, **options: Any
) -> tuple[dict[str, Any], str]:
    """``window.evaluate`` with ``options`` (its keyword arguments: capacity_share, truth,
    baseline_max_rows, baseline_seed), write the JSON (``out`` or the default path), print the
    table; returns both."""
    report = evaluate(spark, cfg, start, end, **options)
    path = write_report(spark, report, out or default_report_path(cfg, start, end, report["truth"]))
    print_evaluation(report, path)
    return report, path
