"""What each score's review queue would hold, and how often benign oddities are flagged (pure numbers).

A score's queues are built for each day at shares of that day's sessions (``QUEUE_SHARES``: 1% and
3%) in two ways:

- ``per_session``: the day's top ``capacity_cases(share, sessions)`` sessions by the score (ties by
  session_id): precision is the share of them that are attacks;
- ``per_case``: cases built as ``raksha.decide.review.queued_sessions`` builds the analysts' queue
  (one case per user, ranked by the case's highest score, the top ``capacity_cases(share, sessions)``
  cases, each holding its sessions scored at least the last queued case's), ranked by the score
  instead of risk_score, every session a candidate (decisions ignored: the queue the score alone
  would make). Case precision is the share of queued cases that hold at least one attack session;
  session precision that of the sessions the queued cases hold.

Recall per attack kind is the share of that kind's sessions (among those that have the score) the
queue holds. Spark (``aggregates.queue_counts``) reduces the queues to one row per (score, share,
way): the cases, the attack cases, the sessions, the attacks, the sessions of each attack kind and
the normal sessions of each benign oddity they hold; the functions here turn those rows and the
counts by kind into the report.

Benign oddities (generated labels only): normal sessions with something unusual but harmless (a new
phone, travel, a low battery at night, missing sensors). For each oddity and for the normal sessions
without one (the base rate), the share flagged (REVIEW or BLOCK) and the share in the 1% per-case
queue of risk_score (``ODDITY_QUEUE``, at the smallest share), and each oddity's ratio to the base rate: a change that
flags every traveller shows as a travel ratio far above 1 (``ODDITY_LIMIT`` marks the ones flagged
at more than 3x the base rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from raksha.evaluation.metrics import capacity_cases, with_score

QUEUE_SHARES: tuple[float, ...] = (0.01, 0.03)
WAYS: tuple[str, ...] = ("per_session", "per_case")
ODDITY_QUEUE: tuple[str, str] = ("risk_score", "per_case")  # the queue of the oddity table, at its smallest share
ODDITY_LIMIT = 3.0  # an oddity flagged at more than this times the base rate is marked
BASE = "none"  # the row of the normal sessions without an oddity
HELD: tuple[str, ...] = ("cases", "attack_cases", "sessions", "attacks")  # per (score, share, way)


def share_key(share: float) -> str:
    """A share as the report's key: 0.01 -> '0.01'."""
    return f"{share:g}"


def share_label(share: float) -> str:
    """A share as printed: 0.01 -> '1%'."""
    return f"{share * 100:g}%"


def kind_column(kind: str) -> str:
    """The column of ``held`` with the sessions of an attack kind a queue holds."""
    return f"kind={kind}"


def oddity_column(oddity: str) -> str:
    """The column of ``held`` with the normal sessions of a benign oddity (``BASE``: none) a queue holds."""
    return f"oddity={oddity}"


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def capacities(shares: Sequence[float], sessions_per_day: dict[str, int]) -> dict[str, dict[str, int]]:
    """Cases a day at each share of the day's sessions (at least one): share key -> day -> cases."""
    return {
        share_key(share): {day: capacity_cases(share, n) for day, n in sorted(sessions_per_day.items()) if n}
        for share in shares
    }


def oddities(counts: pd.DataFrame) -> list[str]:
    """The benign oddities of the normal sessions of ``counts``, sorted (none without generated labels)."""
    normal = counts[(counts["is_attack"] == 0) & counts["oddity"].notna()]
    return sorted(str(o) for o in normal["oddity"].unique())


def queue_numbers(row: dict[str, Any], attacks_by_kind: dict[str, int]) -> dict[str, Any]:
    """One queue's numbers from its ``held`` row and the attacks of each kind that have the score."""
    cases, attack_cases, sessions, attacks = (int(row.get(c, 0)) for c in HELD)
    return {
        "cases": cases,
        "attack_cases": attack_cases,
        "precision": _share(attack_cases, cases),
        "sessions": sessions,
        "attacks": attacks,
        "session_precision": _share(attacks, sessions),
        "recall": _share(attacks, sum(attacks_by_kind.values())),
        "recall_by_kind": {k: _share(int(row.get(kind_column(k), 0)), n) for k, n in attacks_by_kind.items()},
    }


def _held_rows(held: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(str(r["score"]), str(r["share"]), str(r["way"])): r for r in held.to_dict("records")}


def queue_report(
    held: pd.DataFrame,
    counts: pd.DataFrame,
    kinds: Sequence[str],
    available: dict[str, Any],
    capacity: dict[str, dict[str, dict[str, int]]],
) -> dict[str, Any]:
    """Per score (in ``available``'s order; None for one not available), per share key, the cases a
    day (``capacity``: score -> share key -> day -> cases) and the numbers of both ways' queues
    (``queue_numbers``; a queue without a row in ``held`` held nothing)."""
    rows = _held_rows(held)
    shares = sorted({share for by_share in capacity.values() for share in by_share}, key=float)
    report: dict[str, Any] = {"shares": [float(s) for s in shares], "ways": list(WAYS), "scores": {}}
    for name, entry in available.items():
        if not entry["available"]:
            report["scores"][name] = None
            continue
        have = with_score(counts, name)
        attacks = have[have["is_attack"] == 1]
        by_kind = {k: int(attacks.loc[attacks["kind"] == k, "sessions"].sum()) for k in kinds}
        report["scores"][name] = {
            share: {
                "cases_per_day": capacity[name][share],
                **{way: queue_numbers(rows.get((name, share, way), {}), by_kind) for way in WAYS},
            }
            for share in capacity[name]
        }
    return report


def oddity_report(
    counts: pd.DataFrame, held: pd.DataFrame, share: float = QUEUE_SHARES[0], limit: float = ODDITY_LIMIT
) -> dict[str, Any] | None:
    """The benign oddities against the base rate (None when the truth has none: verdicts): per oddity
    and for ``BASE``, the normal sessions, the flagged ones and those in the ``ODDITY_QUEUE`` at
    ``share``, both shares of the sessions, their ratio to the base's share (None when the base's is
    0), and whether the flagged ratio is above ``limit``."""
    kinds = oddities(counts)
    if not kinds:
        return None
    normal = counts[counts["is_attack"] == 0]
    score, way = ODDITY_QUEUE
    queue = _held_rows(held).get((score, share_key(share), way), {})
    rows: list[dict[str, Any]] = []
    for oddity in (BASE, *kinds):
        mask = normal["oddity"].isna() if oddity == BASE else normal["oddity"] == oddity
        sessions, flagged = (int(normal.loc[mask, c].sum()) for c in ("sessions", "flagged"))
        queued = int(queue.get(oddity_column(oddity), 0))
        rows.append(
            {
                "oddity": oddity,
                "sessions": sessions,
                "flagged": flagged,
                "flagged_share": _share(flagged, sessions),
                "queued": queued,
                "queued_share": _share(queued, sessions),
            }
        )
    base = rows[0]
    for row in rows:
        for what in ("flagged", "queued"):
            mine, theirs = row[f"{what}_share"], base[f"{what}_share"]
            row[f"{what}_ratio"] = mine / theirs if mine is not None and theirs else None
        row["above_limit"] = row["flagged_ratio"] is not None and row["flagged_ratio"] > limit
    return {
        "base": BASE,
        "flagged": "decision REVIEW or BLOCK",
        "queue": {"score": score, "share": share, "way": way},
        "limit": limit,
        "rows": rows,
    }
