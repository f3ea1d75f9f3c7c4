"""Which verdict is a session's current one (pure: pandas; the Delta MERGE is ``raksha.feedback.verdicts``).

The table holds one row per session and dt: the current verdict, with its lineage (file, line,
the ``raksha label`` run and when it landed). The latest ``reviewed_at`` wins, whatever the order
the files arrive in; at equal times the order is fraud, unsure, legit (a tie never clears a fraud
verdict), then analyst and note, so the result depends only on the verdicts themselves. A verdict
identical to the current one changes nothing, so landing the same file twice leaves every file of
the table as it was. ``merge_verdicts`` is that order on pandas; ``WINS`` the same order as the
MERGE's condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from raksha.feedback.verdict_file import Rejection

# at equal reviewed_at: fraud first, then unsure, then legit
TIE_ORDER = {"fraud": 0, "unsure": 1, "legit": 2}


@dataclass
class LabelReport:
    """What ``label`` did with a file: rows read, rejected (with reasons) and landed, per dt."""

    file: str
    table: str
    run_id: str
    rows_read: int = 0
    valid_rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # dt -> {"rows": valid rows, "new": sessions, "changed": sessions, "no_effect": rows}
    days: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def new(self) -> int:
        return sum(d["new"] for d in self.days.values())

    @property
    def changed(self) -> int:
        return sum(d["changed"] for d in self.days.values())

    def rejected_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(r.line, r.session_id, r.dt, "; ".join(r.reasons)) for r in self.rejected],
            columns=["line", "session_id", "dt", "reasons"],
        )


def merge_verdicts(existing: pd.DataFrame, incoming: pd.DataFrame) -> pd.DataFrame:
    """One row per session_id: the latest verdict of ``existing`` (the table's day) and ``incoming``.

    Order: reviewed_at (latest first), then fraud, unsure, legit, then analyst, then note; a row
    identical in these to one already in the table keeps the table's row (and its lineage), then
    the first by file and line. The result has an ``_origin`` column: 0 from existing, 1 incoming.
    """
    both = pd.concat([existing.assign(_origin=0), incoming.assign(_origin=1)], ignore_index=True).reset_index(drop=True)
    if both.empty:
        return both
    keys = pd.DataFrame(
        {
            "session_id": both["session_id"],
            "reviewed_at": pd.to_datetime(both["reviewed_at"]),
            "tie": both["verdict"].map(TIE_ORDER),
            "analyst": both["analyst"],
            "note": both["note"].fillna(""),
            "_origin": both["_origin"],
            "source_file": both["source_file"],
            "source_line": both["source_line"],
        }
    )
    order = keys.sort_values(
        ["session_id", "reviewed_at", "tie", "analyst", "note", "_origin", "source_file", "source_line"],
        ascending=[True, False, True, True, True, True, True, True],
        kind="mergesort",
    ).index
    return both.loc[order].drop_duplicates("session_id", keep="first").reset_index(drop=True)


def settle(existing: pd.DataFrame, valid: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The incoming rows that win, day by day, and what each day's rows did.

    ``existing``: the table's current rows for the sessions of ``valid`` (both with dt as a date).
    Returns the winners (with dt; none when the table holds these verdicts or later ones already)
    and, per dt, the valid rows, the new sessions, the changed sessions and the rows of no effect.
    """
    winners, days = [], {}
    for day, incoming in valid.groupby("dt", sort=True):
        current = existing[existing["dt"] == day]
        merged = merge_verdicts(current.drop(columns="dt"), incoming.drop(columns="dt"))
        won = merged[merged["_origin"] == 1]
        known = set(current["session_id"])
        counts = {
            "rows": len(incoming),
            "new": int((~won["session_id"].isin(known)).sum()),
            "changed": int(won["session_id"].isin(known).sum()),
        }
        counts["no_effect"] = counts["rows"] - counts["new"] - counts["changed"]
        days[day.isoformat()] = counts
        winners.append(won.assign(dt=day))
    if not winners:
        return valid.assign(_origin=1), days
    return pd.concat(winners, ignore_index=True), days


def _tie(side: str) -> str:
    cases = " ".join(f"WHEN '{v}' THEN {rank}" for v, rank in TIE_ORDER.items())
    return f"(CASE {side}.verdict {cases} END)"


# The incoming verdict (s) replaces the table's (t) only when it comes first in the order of merge_verdicts.
WINS = (
    "s.reviewed_at > t.reviewed_at OR (s.reviewed_at = t.reviewed_at AND ("
    f"{_tie('s')} < {_tie('t')} OR ({_tie('s')} = {_tie('t')} AND ("
    "s.analyst < t.analyst OR (s.analyst = t.analyst AND coalesce(s.note, '') < coalesce(t.note, ''))))))"
)
