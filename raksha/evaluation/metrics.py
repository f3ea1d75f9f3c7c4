"""The numbers of an evaluation, from aggregates of its sessions (numpy, pandas; no Spark).

The evaluated sessions hold one row each: ``is_attack`` (0/1 ground truth), ``kind`` (the attack
kind, ``normal``, or ``fraud`` / ``legit`` with verdicts as truth), ``decision``, ``queued`` (in the
review queue at the capacity), and one column per score, higher meaning more suspicious. They do
not reach the driver: Spark (``aggregates``) reduces them to

- counts by (kind, is_attack) of the sessions, the flagged ones (REVIEW or BLOCK), the blocked and
  the queued ones: precision and recall by kind come from these (``outcome_by_kind``, ``precision``);
- for each score, rank rows ``(score, negatives, positives of each attack kind)``, one per distinct
  score value, sorted by score descending and cut into partitions. ROC-AUC, PR-AUC and ROC-AUC by
  kind come from two passes over the partitions: each one's totals (``partition_totals``), the
  running totals ranked above each (``partition_offsets``, on the driver), then each one's sums
  given its offset (``partition_sums``), added up by ``ranking_metrics``.

The ranking metrics are scikit-learn's ``roc_auc_score`` and ``average_precision_score``, not an
approximation: tied scores are one threshold (one rank row), as in ``roc_curve`` and
``precision_recall_curve``. ROC-AUC, the trapezoids under the curve, is the integer sum of
``negatives * (2 * positives ranked above + positives)`` over the rank rows divided once by
``2 * P * N``; average precision is the sum of ``positives * precision`` over the rank rows with
positives (precision of every row down to this one) divided by ``P``.

``frame_metrics`` computes the same numbers on an in-memory frame of sessions (one partition). The
IsolationForest baseline is fitted and applied here on frames of the 30 behavioural features; the
window reads them with Spark (``window``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
SCORES: tuple[str, ...] = (*MODEL_SCORES, BASELINE)  # the report's scores, in its order
KIND_COUNTS: tuple[str, ...] = ("sessions", "flagged", "blocked", "queued")  # per (kind, is_attack)


# --- counts by kind: precision and recall ---


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def kind_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """kind, is_attack and the ``KIND_COUNTS`` of an in-memory frame of sessions (as ``aggregates.kind_counts``)."""
    flags = pd.DataFrame(
        {
            "kind": frame["kind"],
            "is_attack": frame["is_attack"].astype("int64"),
            "sessions": 1,
            "flagged": frame["decision"].isin(contract.FLAGGED_DECISIONS).astype("int64"),
            "blocked": frame["decision"].eq("BLOCK").astype("int64"),
            "queued": frame["queued"].eq(True).astype("int64"),
        },
        index=frame.index,
    )
    return flags.groupby(["kind", "is_attack"], as_index=False)[list(KIND_COUNTS)].sum()


def attack_kinds(counts: pd.DataFrame) -> list[str]:
    """The kinds of the positives, sorted: the rows of ``roc_auc_by_kind`` and the rank rows' columns."""
    positives = counts[(counts["is_attack"] == 1) & (counts["sessions"] > 0)]
    return sorted(str(kind) for kind in positives["kind"].unique())


def outcome_by_kind(counts: pd.DataFrame) -> list[dict[str, Any]]:
    """Per kind (negatives included, then all attacks): sessions, flagged, blocked, queued and their recall."""
    groups = [(str(kind), counts["kind"] == kind) for kind in sorted(counts["kind"].unique())]
    groups.append(("all attacks", counts["is_attack"] == 1))
    rows = []
    for kind, mask in groups:
        n, flagged, blocked, queued = (int(counts.loc[mask, column].sum()) for column in KIND_COUNTS)
        rows.append(
            {
                "kind": kind,
                "sessions": n,
                "flagged": flagged,
                "blocked": blocked,
                "queued": queued,
                "recall_at_decisions": _share(flagged, n),
                "recall_blocked": _share(blocked, n),
                "recall_at_capacity": _share(queued, n),
            }
        )
    return rows


def precision(counts: pd.DataFrame, picked: str) -> dict[str, Any]:
    """Sessions counted in the column ``picked`` (flagged, queued), how many are attacks, that precision."""
    n = int(counts[picked].sum())
    attacks = int(counts.loc[counts["is_attack"] == 1, picked].sum())
    return {"sessions": n, "attacks": attacks, "precision": _share(attacks, n)}


# --- ROC-AUC, PR-AUC from rank rows ---

RankRow = Sequence[Any]  # (score, negatives, positives of each attack kind): one per distinct score
Offset = tuple[int, tuple[int, ...]]  # negatives, positives by kind ranked above a partition


@dataclass(frozen=True)
class PartitionTotals:
    """A partition of rank rows: its highest and lowest score (None when empty), negatives, positives by kind."""

    first: float | None
    last: float | None
    negatives: int
    positives: tuple[int, ...]


@dataclass(frozen=True)
class PartitionSums:
    """A partition's share of the ranking metrics, given what is ranked above it (see the module's docstring)."""

    roc: int
    roc_by_kind: tuple[int, ...]
    precision: float


def partition_totals(rows: Iterable[RankRow], kinds: int) -> PartitionTotals:
    """Pass 1 on one partition; checks that its scores strictly decrease (one row per distinct score, sorted)."""
    first: float | None = None
    last: float | None = None
    negatives = 0
    positives = [0] * kinds
    for row in rows:
        score = float(row[0])
        if len(row) != 2 + kinds or math.isnan(score) or (last is not None and not score < last):
            raise ValueError(f"rank rows must be (score, negatives, {kinds} positives), one per score, descending")
        first = score if first is None else first
        last = score
        negatives += int(row[1])
        for k in range(kinds):
            positives[k] += int(row[2 + k])
    return PartitionTotals(first, last, negatives, tuple(positives))


def partition_offsets(totals: Sequence[PartitionTotals], kinds: int) -> list[Offset]:
    """What is ranked above each partition (``totals`` in partition order); checks that every non-empty
    partition's scores lie below those of the partitions before it."""
    offsets = []
    negatives, positives = 0, (0,) * kinds
    floor: float | None = None
    for part in totals:
        offsets.append((negatives, positives))
        if part.first is not None:
            if floor is not None and not part.first < floor:
                raise ValueError(f"partitions out of order: a score {part.first} after {floor}")
            floor = part.last
        negatives += part.negatives
        positives = tuple(p + q for p, q in zip(positives, part.positives, strict=True))
    return offsets


def partition_sums(rows: Iterable[RankRow], offset: Offset) -> PartitionSums:
    """Pass 2 on one partition, given what the partitions before it rank above it."""
    false_positives, above = offset
    true_by_kind = list(above)
    true_positives = sum(true_by_kind)
    roc = 0
    roc_by_kind = [0] * len(true_by_kind)
    terms: list[float] = []
    for row in rows:
        negatives = int(row[1])
        positives = [int(p) for p in row[2:]]
        both = sum(positives)
        roc += negatives * (2 * true_positives + both)
        for k, p in enumerate(positives):
            roc_by_kind[k] += negatives * (2 * true_by_kind[k] + p)
            true_by_kind[k] += p
        true_positives += both
        false_positives += negatives
        if both:
            terms.append(both * true_positives / (true_positives + false_positives))
    return PartitionSums(roc, tuple(roc_by_kind), math.fsum(terms))


def ranking_metrics(
    totals: Sequence[PartitionTotals], sums: Sequence[PartitionSums], kinds: Sequence[str]
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC of all attacks, ROC-AUC of each kind's (against every negative); None where
    one class is missing (undefined)."""
    negatives = sum(part.negatives for part in totals)
    by_kind = [sum(part.positives[k] for part in totals) for k in range(len(kinds))]
    positives = sum(by_kind)

    def roc(numerator: int, p: int) -> float | None:
        return numerator / (2 * p * negatives) if p and negatives else None  # int / int: rounded once

    return {
        "roc_auc": roc(sum(part.roc for part in sums), positives),
        "pr_auc": math.fsum(part.precision for part in sums) / positives if positives and negatives else None,
        "roc_auc_by_kind": {
            kind: roc(sum(part.roc_by_kind[k] for part in sums), by_kind[k]) for k, kind in enumerate(kinds)
        },
    }


def partitioned_ranking(partitions: Sequence[Sequence[RankRow]], kinds: Sequence[str]) -> dict[str, Any]:
    """``ranking_metrics`` of rank rows cut into partitions in memory: the two passes as Spark runs them."""
    totals = [partition_totals(rows, len(kinds)) for rows in partitions]
    offsets = partition_offsets(totals, len(kinds))
    sums = [partition_sums(rows, offset) for rows, offset in zip(partitions, offsets, strict=True)]
    return ranking_metrics(totals, sums, kinds)


def rank_rows(frame: pd.DataFrame, score: str, kinds: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rank rows of an in-memory frame of sessions, highest score first."""
    values = frame[score].to_numpy(dtype="float64") + 0.0  # -0.0 is 0.0, one threshold (as in Spark)
    if np.isnan(values).any():
        raise ValueError(f"{score}: {int(np.isnan(values).sum())} sessions have no score")
    truth = frame["is_attack"].to_numpy()
    kind = frame["kind"].to_numpy()
    columns = {"negatives": (truth == 0).astype("int64")}
    for k, name in enumerate(kinds):
        columns[f"positives_{k}"] = ((truth == 1) & (kind == name)).astype("int64")
    grouped = pd.DataFrame(columns).groupby(values).sum().sort_index(ascending=False)
    return [(float(s), *(int(v) for v in row)) for s, row in zip(grouped.index, grouped.to_numpy(), strict=True)]


# --- the report's numbers ---


def report_metrics(
    counts: pd.DataFrame,
    rankings: dict[str, dict[str, Any]],
    sessions_per_day: dict[str, int],
    capacity_share: float,
) -> dict[str, Any]:
    """The report's numbers from the counts by kind and each score's ``ranking_metrics``: ROC-AUC and
    PR-AUC (overall and by kind), precision at the current decisions and at the queue capacity,
    outcome by kind."""
    return {
        "scores": {name: {"roc_auc": r["roc_auc"], "pr_auc": r["pr_auc"]} for name, r in rankings.items()},
        "roc_auc_by_kind": {
            kind: {name: r["roc_auc_by_kind"][kind] for name, r in rankings.items()} for kind in attack_kinds(counts)
        },
        "at_decisions": precision(counts, "flagged"),
        "at_capacity": {
            "cases_per_day": {d: capacity_cases(capacity_share, n) for d, n in sorted(sessions_per_day.items())},
            **precision(counts, "queued"),
        },
        "by_kind": outcome_by_kind(counts),
    }


def frame_metrics(
    frame: pd.DataFrame, sessions_per_day: dict[str, int], capacity_share: float, scores: Sequence[str] = SCORES
) -> dict[str, Any]:
    """``report_metrics`` of an in-memory frame of sessions (its rank rows as one partition)."""
    counts = kind_counts(frame)
    kinds = attack_kinds(counts)
    rankings = {name: partitioned_ranking([rank_rows(frame, name, kinds)], kinds) for name in scores}
    return report_metrics(counts, rankings, sessions_per_day, capacity_share)


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
