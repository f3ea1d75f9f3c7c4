"""The numbers of an evaluation, computed on pandas frames (numpy, pandas, scikit-learn; no Spark).

A frame here holds one row per evaluated session: ``is_attack`` (0/1 ground truth), ``kind`` (the
attack kind, ``normal``, or ``fraud`` / ``legit`` with verdicts as truth), ``decision``,
``queued`` (in the review queue at the capacity), and one column per score, higher meaning more
suspicious. The IsolationForest baseline is fitted and applied here on frames of the 30
behavioural features; the window reads them with Spark (``window``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from raksha import contract

# score column -> what it is; higher means more suspicious for every one
MODEL_SCORES: dict[str, str] = {
    "ae_error": "autoencoder",
    "seq_risk_max": "sequence model",
    "risk_score": "combined",
}
BASELINE = "isolation_forest"
BASELINE_SEED = 0
BASELINE_TREES = 100


# --- ROC-AUC, PR-AUC ---


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


# --- precision and recall ---


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def outcome_by_kind(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per kind (negatives included, then all attacks): sessions, flagged, blocked, queued and their recall."""
    flagged = frame["decision"].isin(contract.FLAGGED_DECISIONS)
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


def frame_metrics(frame: pd.DataFrame, sessions_per_day: dict[str, int], capacity_share: float) -> dict[str, Any]:
    """The report's numbers from the evaluated sessions: each score's ROC-AUC and PR-AUC (overall and
    by kind), precision at the current decisions and at the queue capacity, outcome by kind."""
    scores = [*MODEL_SCORES, BASELINE]
    return {
        "scores": score_metrics(frame, scores),
        "roc_auc_by_kind": auc_by_kind(frame, scores),
        "at_decisions": precision(frame, frame["decision"].isin(contract.FLAGGED_DECISIONS)),
        "at_capacity": {
            "cases_per_day": {d: capacity_cases(capacity_share, n) for d, n in sorted(sessions_per_day.items())},
            **precision(frame, frame["queued"]),
        },
        "by_kind": outcome_by_kind(frame),
    }


# --- the review queue at a capacity ---


def capacity_cases(capacity_share: float, sessions: int) -> int:
    """Review cases a day at ``capacity_share`` of its sessions (at least one)."""
    return max(1, math.ceil(capacity_share * sessions))


def queue_summary(counts: pd.DataFrame, capacity_share: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per kind (``counts``: kind, sessions, queued, one row per day and kind) the sessions, how many
    the queue holds, that recall and the share of the queue; and the queue's precision overall."""
    by_kind = counts.groupby("kind")[["sessions", "queued"]].sum()
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


# --- the IsolationForest baseline ---


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The 30 features in the contract's order, missing values filled with 0 (as the autoencoder's input)."""
    return frame[list(contract.FEATURES)].astype("float64").fillna(0.0).to_numpy()


def fit_baseline(training: pd.DataFrame, seed: int = BASELINE_SEED, trees: int = BASELINE_TREES) -> Any:
    """scikit-learn's IsolationForest (``trees`` trees, ``random_state=seed``) on the rows' features."""
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=trees, random_state=seed).fit(feature_matrix(training))


def baseline_scores(forest: Any, frame: pd.DataFrame) -> np.ndarray:
    """Higher is more anomalous (the negated IsolationForest score)."""
    return -forest.score_samples(feature_matrix(frame))
