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

# score column of scored_sessions -> what it is; higher means more suspicious for every one
MODEL_SCORES: dict[str, str] = {
    "ae_error": "notebook autoencoder",
    "ae_std_error": "autoencoder, standardised",
    "user_baseline_score": "user baseline",
    "seq_risk_max": "sequence model",
    "risk_score": "combined",
}
# scores added after the first scored days: absent from an older table, null on older days
OPTIONAL_SCORES: frozenset[str] = frozenset({"ae_std_error", "user_baseline_score"})
BASELINE = "isolation_forest"
BASELINE_SEED = 0
BASELINE_TREES = 100
SCORE_NAMES: dict[str, str] = {**MODEL_SCORES, BASELINE: "IsolationForest baseline"}
# the report's scores, in its order: the behavioural ones, the baseline, the sequence, the combined
SCORES: tuple[str, ...] = ("ae_error", "ae_std_error", "user_baseline_score", BASELINE, "seq_risk_max", "risk_score")
assert set(SCORES) == set(SCORE_NAMES)
KIND_COUNTS: tuple[str, ...] = ("sessions", "flagged", "blocked", "queued")  # per (kind, is_attack, oddity)
NOT_IN_TABLE = "not in scored_sessions"
ALL_NULL = "null on every evaluated session"


# --- counts by kind: precision and recall ---


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def missing(score: str) -> str:
    """The column of the counts by kind with the sessions that have no ``score`` (null or NaN)."""
    return f"missing_{score}"


def kind_counts(frame: pd.DataFrame, scores: Sequence[str] = ()) -> pd.DataFrame:
    """kind, is_attack, oddity (the benign oddity of a normal session, else None), the ``KIND_COUNTS``
    and ``missing(score)`` of each of ``scores`` of an in-memory frame of sessions (as ``aggregates.kind_counts``)."""
    oddity = frame["oddity"].astype(object) if "oddity" in frame else pd.Series(None, index=frame.index, dtype=object)
    flags = pd.DataFrame(
        {
            "kind": frame["kind"],
            "is_attack": frame["is_attack"].astype("int64"),
            "oddity": oddity.where(oddity.notna(), "\0"),  # a key pandas groups (restored to None below)
            "sessions": 1,
            "flagged": frame["decision"].isin(contract.FLAGGED_DECISIONS).astype("int64"),
            "blocked": frame["decision"].eq("BLOCK").astype("int64"),
            "queued": frame["queued"].eq(True).astype("int64"),
            **{missing(s): frame[s].isna().astype("int64") for s in scores},
        },
        index=frame.index,
    )
    columns = [*KIND_COUNTS, *(missing(s) for s in scores)]
    counts = flags.groupby(["kind", "is_attack", "oddity"], as_index=False)[columns].sum()
    counts["oddity"] = counts["oddity"].astype(object).where(counts["oddity"] != "\0", None)
    return counts


def score_availability(counts: pd.DataFrame, scores: Sequence[str], absent: Iterable[str] = ()) -> dict[str, Any]:
    """Per score: available, the evaluated sessions that have it, and why not when it is not (absent
    from the table, or null on every evaluated session). ``counts`` holds ``missing(score)`` of the present ones."""
    absent = set(absent)
    total = int(counts["sessions"].sum())
    out: dict[str, Any] = {}
    for name in scores:
        have = 0 if name in absent else total - int(counts[missing(name)].sum())
        entry: dict[str, Any] = {"available": have > 0, "sessions": have}
        if not have:
            entry["why"] = NOT_IN_TABLE if name in absent else ALL_NULL
        out[name] = entry
    return out


def with_score(counts: pd.DataFrame, score: str) -> pd.DataFrame:
    """The counts by kind of the sessions that have ``score`` (its sessions less its missing ones)."""
    have = counts.copy()
    if missing(score) in have:
        have["sessions"] = have["sessions"] - have[missing(score)]
    return have


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
    precision_by_kind: tuple[float, ...]


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
    terms_by_kind: list[list[float]] = [[] for _ in true_by_kind]
    for row in rows:
        negatives = int(row[1])
        positives = [int(p) for p in row[2:]]
        both = sum(positives)
        roc += negatives * (2 * true_positives + both)
        false_positives += negatives
        for k, p in enumerate(positives):
            roc_by_kind[k] += negatives * (2 * true_by_kind[k] + p)
            true_by_kind[k] += p
            if p:  # this kind's attacks against the negatives: the other kinds are not in its ranking
                terms_by_kind[k].append(p * true_by_kind[k] / (true_by_kind[k] + false_positives))
        true_positives += both
        if both:
            terms.append(both * true_positives / (true_positives + false_positives))
    return PartitionSums(roc, tuple(roc_by_kind), math.fsum(terms), tuple(math.fsum(t) for t in terms_by_kind))


def ranking_metrics(
    totals: Sequence[PartitionTotals], sums: Sequence[PartitionSums], kinds: Sequence[str]
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC of all attacks, and of each kind's (against every negative); None where
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
        "pr_auc_by_kind": {
            kind: math.fsum(part.precision_by_kind[k] for part in sums) / by_kind[k]
            if by_kind[k] and negatives
            else None
            for k, kind in enumerate(kinds)
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
    available: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's numbers from the counts by kind and each available score's ``ranking_metrics``:
    per score (``available``: ``score_availability``; every score of ``rankings`` when not given)
    whether it is available, the sessions that have it, ROC-AUC and PR-AUC, and both by kind (None
    for a score not available); precision at the current decisions and at the queue capacity,
    outcome by kind."""
    if available is None:
        total = int(counts["sessions"].sum())
        available = {name: {"available": True, "sessions": total} for name in rankings}
    none: dict[str, Any] = {"roc_auc": None, "pr_auc": None, "roc_auc_by_kind": {}, "pr_auc_by_kind": {}}
    ranked = {name: rankings.get(name, none) for name in available}
    kinds = attack_kinds(counts)
    return {
        "scores": {
            name: {**available[name], "roc_auc": r["roc_auc"], "pr_auc": r["pr_auc"]} for name, r in ranked.items()
        },
        **{
            f"{metric}_by_kind": {
                kind: {name: r[f"{metric}_by_kind"].get(kind) for name, r in ranked.items()} for kind in kinds
            }
            for metric in ("roc_auc", "pr_auc")
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
    """``report_metrics`` of an in-memory frame of sessions (its rank rows as one partition); a score
    not a column of ``frame`` or null on every row is not available, one null on some rows is ranked
    on the rows that have it."""
    present = [name for name in scores if name in frame]
    counts = kind_counts(frame, present)
    kinds = attack_kinds(counts)
    available = score_availability(counts, scores, absent=[name for name in scores if name not in frame])
    rankings = {
        name: partitioned_ranking([rank_rows(frame[frame[name].notna()], name, kinds)], kinds)
        for name in scores
        if available[name]["available"]
    }
    return report_metrics(counts, rankings, sessions_per_day, capacity_share, available)


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
