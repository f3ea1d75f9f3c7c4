"""What the retraining exports select, how their staged rows must reconcile, and their manifests
(pure: the configuration, counts and pandas; the Spark side is ``raksha.feedback.exports``).

The counts come from Spark as small frames (one row per day, selection reason or label and source,
and model versions) and plain dictionaries (verdicts and audit rows per verdict); everything the
export decides from them, and every figure its manifests hold, is computed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from raksha import contract
from raksha.config import Config

BEHAVIOR_TABLE = contract.RETRAIN_BEHAVIOR
SEQUENCES_TABLE = contract.RETRAIN_SEQUENCES
EXPORT_TABLES = (BEHAVIOR_TABLE, SEQUENCES_TABLE)
LEGIT_VERDICT = "legit_verdict"
UNFLAGGED_LOW_SCORE = "unflagged_low_score"
SOURCE_VERDICT = "verdict"
SOURCE_AUDIT = "audit"
# the columns each export's summary counts its rows by (besides dt), and the one it reconciles on
SUMMARY_BY: dict[str, list[str]] = {BEHAVIOR_TABLE: ["selection_reason"], SEQUENCES_TABLE: ["label", "source"]}
RECONCILED_BY = {BEHAVIOR_TABLE: "by_selection_reason", SEQUENCES_TABLE: "by_source"}
VERSION_COLUMNS = ("ae_model_version", "seq_model_version")


class ExportError(RuntimeError):
    """The window cannot be exported as asked (nothing is published)."""


class ExportReconciliationError(ExportError):
    """The staged rows do not add up to what scored_sessions, the verdicts and the queue say."""


@dataclass
class ExportResult:
    run_id: str
    start: dt.date
    end: dt.date
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> manifest
    manifest_paths: dict[str, str] = field(default_factory=dict)


def audit_weight(audit_rate: float) -> float | None:
    """What one audited session weighs: the ALLOW sessions it stands for (None at a rate of 0)."""
    return 1.0 / audit_rate if audit_rate > 0 else None


def selection_rules(cfg: Config) -> dict[str, Any]:
    audit_rate = float(cfg.get("review.audit_rate"))
    return {
        BEHAVIOR_TABLE: {
            LEGIT_VERDICT: "current verdict is legit",
            UNFLAGGED_LOW_SCORE: "no verdict, decision = 'ALLOW', ae_is_anomaly = 0 and risk_score < "
            "exports.behavior_max_risk_score",
            "exports.behavior_max_risk_score": float(cfg.get("exports.behavior_max_risk_score")),
            "never": "current verdict fraud or unsure",
        },
        SEQUENCES_TABLE: {
            SOURCE_VERDICT: "current verdict fraud (label 1) or legit (label 0), weight 1.0",
            SOURCE_AUDIT: "review_queue audit = true with a fraud or legit verdict, weight 1 / review.audit_rate",
            "review.audit_rate": audit_rate,
            "audit_weight": audit_weight(audit_rate),
            "left_out": "unsure verdicts; audited sessions without a verdict",
        },
    }


def expected_counts(
    verdict_counts: Mapping[str, int], audit_counts: Mapping[str, int], unflagged: int
) -> dict[str, dict[str, int]]:
    """What each export must hold per selection reason or source, from the window's counts.

    ``verdict_counts``: the window's scored sessions per current verdict; ``audit_counts``: its
    audited sessions per current verdict (``none`` without one); ``unflagged``: its sessions without
    a verdict that were allowed, not anomalies and under the risk-score cut.
    """
    audit_labelled = audit_counts.get("fraud", 0) + audit_counts.get("legit", 0)
    return {
        BEHAVIOR_TABLE: {LEGIT_VERDICT: verdict_counts.get("legit", 0), UNFLAGGED_LOW_SCORE: unflagged},
        SEQUENCES_TABLE: {
            SOURCE_AUDIT: audit_labelled,
            SOURCE_VERDICT: verdict_counts.get("fraud", 0) + verdict_counts.get("legit", 0) - audit_labelled,
        },
    }


def check_audit_weight(expected: Mapping[str, Mapping[str, int]], audit_rate: float) -> None:
    if expected[SEQUENCES_TABLE][SOURCE_AUDIT] and audit_rate == 0.0:
        raise ExportError(
            "exports: the window holds labelled audit sessions but review.audit_rate is 0: "
            "set it to the rate the audit sample was drawn at (their weight is 1 / review.audit_rate)"
        )


def _counts(groups: pd.DataFrame, column: str) -> dict[str, int]:
    per = groups.groupby(column, sort=True, dropna=False)["rows"].sum()
    return {str(key): int(n) for key, n in per.items()}


def summary(groups: pd.DataFrame, sessions: int, window: Sequence[dt.date], by: Sequence[str]) -> dict[str, Any]:
    """Counts of the rows about to be published: rows, distinct sessions, per day and per ``by`` column.

    ``groups``: the staged rows counted (``rows``) per dt, the ``by`` columns and the model
    versions, with the sum of their ``weight`` when they have one; ``sessions``: their distinct sessions.
    """
    per_day = {d.isoformat(): 0 for d in window}
    per_day.update(_counts(groups, "dt"))
    out: dict[str, Any] = {"rows": int(groups["rows"].sum()), "sessions": int(sessions), "per_day": per_day}
    for column in by:
        out[f"by_{column}"] = _counts(groups, column)
    if "weight" in groups.columns:
        weights = groups.groupby("source", sort=True, dropna=False)["weight"].sum()
        out["weight_by_source"] = {str(source): float(w) for source, w in weights.items()}
    return out


def model_versions(groups: pd.DataFrame) -> dict[str, list[str]]:
    """The model versions that scored the staged rows, each sorted."""
    return {column: sorted(set(groups[column])) for column in VERSION_COLUMNS}


def reconcile(
    staged: Mapping[str, Mapping[str, Any]],
    expected: Mapping[str, Mapping[str, int]],
    start: dt.date,
    end: dt.date,
) -> None:
    """Refuse staged rows that hold a session twice or do not add up to the expected counts."""
    for table in EXPORT_TABLES:
        counted = staged[table]
        if counted["rows"] != counted["sessions"]:
            raise ExportReconciliationError(f"{table} {start} .. {end}: a session was exported twice")
        got = {k: counted[RECONCILED_BY[table]].get(k, 0) for k in expected[table]}
        if got != expected[table]:
            raise ExportReconciliationError(
                f"{table} {start} .. {end}: staged {got} != expected {expected[table]} "
                "(input sessions or actions changed since the days were scored?)"
            )


def manifests(
    cfg: Config,
    result: ExportResult,
    now: dt.datetime,
    names: Mapping[str, str],
    staged: Mapping[str, Mapping[str, Any]],
    versions: Mapping[str, Mapping[str, list[str]]],
    verdict_counts: Mapping[str, int],
    audit_counts: Mapping[str, int],
) -> dict[str, dict[str, Any]]:
    """Each export's manifest: the window, the run, the staged counts, the versions, the rules, what was left out.

    ``names``: the tables' catalog names; ``staged`` and ``versions``: ``summary`` and
    ``model_versions`` of each table's staged rows.
    """
    rules = selection_rules(cfg)
    common = {
        "start_date": result.start.isoformat(),
        "end_date": result.end.isoformat(),
        "run_id": result.run_id,
        "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": cfg.digest(),
    }

    def head(table: str) -> dict[str, Any]:
        return {
            "table": names[table],
            **common,
            **staged[table],
            "model_versions": versions[table],
            "selection": rules[table],
        }

    return {
        BEHAVIOR_TABLE: {
            **head(BEHAVIOR_TABLE),
            "left_out": {
                "fraud_verdicts": verdict_counts.get("fraud", 0),
                "unsure_verdicts": verdict_counts.get("unsure", 0),
            },
            "privacy": {
                "user_id": "HMAC-SHA256 pseudonym (key from $" + str(cfg.get("privacy.pseudonym_key_env")) + ")",
                "location_decimals": cfg.get("privacy.location_decimals"),
                "keep_network_ids": bool(cfg.get("privacy.keep_network_ids")),
            },
        },
        SEQUENCES_TABLE: {
            **head(SEQUENCES_TABLE),
            "left_out": {
                "unsure_verdicts": verdict_counts.get("unsure", 0),
                "audit_unlabelled": audit_counts.get("none", 0),
                "audit_unsure": audit_counts.get("unsure", 0),
            },
            "audit_sessions": sum(audit_counts.values()),
        },
    }
