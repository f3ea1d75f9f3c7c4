"""The report of an evaluation: the JSON file (``default_report_path``, ``write_report``), the
printed tables of ``raksha evaluate`` and ``raksha queue-precision``, and ``run_evaluation``, the
command's one call (evaluate the window, write the JSON, print)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.evaluation.metrics import SCORE_NAMES
from raksha.evaluation.queues import ODDITY_LIMIT, share_label
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
    _print_ranking(report)
    b = report["baseline"]
    print(
        f"  (baseline: {b['n_estimators']} trees, random_state {b['random_state']}, trained on "
        f"{b['training_rows']} of {b['training_pool']} sessions, the 30 features, missing = 0)"
    )
    _print_queues(report)
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
    _print_oddities(report.get("benign_oddities"))
    if path:
        print(f"  written: {path}")


def _label(name: str) -> str:
    return f"{SCORE_NAMES.get(name, name)} ({name})"


def _pair(first: float | None, second: float | None, width: int) -> str:
    if first is None and second is None:
        return f"{'n/a':>{width}}"
    text = "/".join("n/a" if v is None else f"{v:.3f}" for v in (first, second))
    return f"{text:>{width}}"


def _print_ranking(report: dict[str, Any]) -> None:
    """ROC-AUC/PR-AUC of each score, overall and by attack kind; a score not available says why."""
    kinds = list(report["roc_auc_by_kind"])
    print("  ranking: ROC-AUC/PR-AUC, all attacks and each kind against the negatives")
    print(f"  {'score':<46} {'sessions':>8} {'all':>12} " + " ".join(f"{k[:18]:>18}" for k in kinds))
    for name, entry in report["scores"].items():
        if not entry.get("available", True):
            print(f"  {_label(name):<46} not available: {entry.get('why', '')}")
            continue
        cells = [
            _pair(report["roc_auc_by_kind"][k][name], report.get("pr_auc_by_kind", {}).get(k, {}).get(name), 18)
            for k in kinds
        ]
        sessions = entry.get("sessions", report["sessions"]["evaluated"])
        print(f"  {_label(name):<46} {sessions:>8} {_pair(entry['roc_auc'], entry['pr_auc'], 12)} " + " ".join(cells))


def _print_queues(report: dict[str, Any]) -> None:
    """Each score's queues at each share, per session and per case: precision, recall by kind."""
    queues = report.get("queues")
    if not queues:
        return
    kinds = list(report["roc_auc_by_kind"])
    shares = " and ".join(share_label(s) for s in queues["shares"])
    print(
        f"  queues of {shares} of each day's sessions ranked by each score alone (decisions ignored); "
        "case: one per user, precision = cases holding an attack"
    )
    head = f"  {'score':<46} {'queue':<12} {'cases':>6} {'prec':>6} {'sessions':>8} {'prec':>6} {'recall':>6} "
    print(head + " ".join(f"{k[:18]:>18}" for k in kinds))
    for name, by_share in queues["scores"].items():
        if by_share is None:
            continue
        label = _label(name)
        for share, numbers in by_share.items():
            for way in queues["ways"]:
                q = numbers[way]
                cases = "" if way == "per_session" else str(q["cases"])
                prec = "" if way == "per_session" else _fmt(q["precision"], 6)
                recall = " ".join(_fmt(q["recall_by_kind"].get(k), 18) for k in kinds)
                queue = f"{share_label(float(share))} {way.removeprefix('per_')}"
                print(
                    f"  {label:<46} {queue:<12} {cases:>6} {prec:>6} {q['sessions']:>8} "
                    f"{_fmt(q['session_precision'], 6)} {_fmt(q['recall'], 6)} {recall}"
                )
                label = ""


def _ratio(value: float | None) -> str:
    return f"{'n/a':>7}" if value is None else f"{value:>6.2f}x"


def _print_oddities(oddities: dict[str, Any] | None) -> None:
    """The benign oddities against the base rate (normal sessions without one)."""
    if not oddities:
        return
    queue = oddities["queue"]
    where = f"{share_label(queue['share'])} {queue['way'].removeprefix('per_')} queue of {queue['score']}"
    print(
        f"  benign oddities (normal sessions): flagged = REVIEW or BLOCK; queued = in the {where}; "
        "x = share over the base rate (normal sessions without an oddity)"
    )
    print(f"  {'oddity':<20} {'sessions':>8} {'flagged':>8} {'share':>7} {'x':>7} {'queued':>7} {'share':>7} {'x':>7}")
    for row in oddities["rows"]:
        mark = f"  above {ODDITY_LIMIT:g}x" if row["above_limit"] else ""
        print(
            f"  {row['oddity']:<20} {row['sessions']:>8} {row['flagged']:>8} {_fmt(row['flagged_share'], 7)} "
            f"{_ratio(row['flagged_ratio'])} {row['queued']:>7} {_fmt(row['queued_share'], 7)} "
            f"{_ratio(row['queued_ratio'])}{mark}"
        )


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
