"""Analysts' verdicts: ``raksha label --file verdicts.csv|parquet`` lands them in the ``verdicts`` table.

A verdict file has one row per reviewed session: ``session_id``, ``dt`` (the day the session was
scored, YYYY-MM-DD), ``verdict`` (fraud, legit or unsure; case and surrounding blanks ignored),
``analyst``, ``reviewed_at`` (ISO 8601; a time without an offset is UTC) and an optional ``note``.
Other columns are ignored. CSV files are UTF-8 (a byte-order mark is fine) with a header row;
Parquet files may hold ``dt`` as a date and ``reviewed_at`` as a timestamp.

Every row is checked; a row that fails is rejected with its line number (CSV: the line the record
starts on, the header being line 1; Parquet: the 1-based row) and every reason: a missing field, an
unknown verdict, a bad date or timestamp, a review time before the session's day or in the future,
or a session that is not in ``scored_sessions`` for that dt. The valid rows land anyway; the report
says what landed and what was rejected.

The table holds one row per session and dt: the current verdict, with its lineage (file, line,
the ``raksha label`` run and when it landed). The latest ``reviewed_at`` wins, whatever the order
the files arrive in; at equal times the order is fraud, unsure, legit (a tie never clears a fraud
verdict), then analyst and note, so the result depends only on the verdicts themselves. A verdict
identical to the current one changes nothing, so landing the same file twice leaves every file of
the table as it was.

The verdicts land by one Delta MERGE on (dt, session_id) for the whole file: a new session is
inserted, a current verdict is replaced only by one that wins the order above, so a reader sees
the table before the file or after it, never half of it. The run holds the verdicts table's lock
for each day in the file (``raksha.platform.locks``): a second ``raksha label`` touching one of those days
is refused, naming the holder.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract
from raksha.config import Config
from raksha.platform import locks, runs, tables
from raksha.platform.storage import Storage, local_path

log = logging.getLogger(__name__)

TABLE = "verdicts"
REQUIRED_COLUMNS: tuple[str, ...] = ("session_id", "dt", "verdict", "analyst", "reviewed_at")
OPTIONAL_COLUMNS: tuple[str, ...] = ("note",)
# at equal reviewed_at: fraud first, then unsure, then legit
TIE_ORDER = {"fraud": 0, "unsure": 1, "legit": 2}
FUTURE_TOLERANCE = dt.timedelta(minutes=10)  # clock skew between the analysts' tools and this machine
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class VerdictFileError(RuntimeError):
    """The file as a whole cannot be read as verdicts (nothing lands)."""


@dataclass(frozen=True)
class Rejection:
    line: int
    session_id: str | None
    dt: str | None
    reasons: tuple[str, ...]


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


# --- reading a file ---


def read_verdict_file(spark: SparkSession, path: str) -> pd.DataFrame:
    """The file's rows as Python values, with ``line``; a file-level problem is a VerdictFileError."""
    storage = Storage(spark)
    if not storage.exists(path):
        raise VerdictFileError(f"verdicts file {path}: no such file")
    if storage.is_dir(path):
        raise VerdictFileError(f"verdicts file {path}: is a folder, expected one .csv or .parquet file")
    data = storage.read_bytes(path)
    lower = path.lower()
    if lower.endswith(".csv"):
        return parse_csv(data, path)
    if lower.endswith((".parquet", ".pq")):
        return parse_parquet(data, path)
    raise VerdictFileError(f"verdicts file {path}: unknown format, expected a .csv or .parquet file")


def _columns(header: list[str], path: str) -> list[str]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise VerdictFileError(f"verdicts file {path}: missing column(s) {', '.join(missing)} (header: {header})")
    return names


def parse_csv(data: bytes, path: str) -> pd.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VerdictFileError(f"verdicts file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise VerdictFileError(f"verdicts file {path}: empty file, expected a header row")
        names = _columns(header, path)
        rows = []
        while True:
            line = reader.line_num + 1  # the line this record starts on
            record = next(reader, None)
            if record is None:
                break
            if not any(cell.strip() for cell in record):
                continue  # blank line
            row: dict[str, Any] = {"line": line}
            for name, cell in zip(names, record, strict=False):
                if name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS:
                    row[name] = cell
            if len(record) > len(names):
                row["_extra_fields"] = len(record) - len(names)
            rows.append(row)
    except csv.Error as exc:
        raise VerdictFileError(f"verdicts file {path}: line {reader.line_num}: {exc}") from None
    return _frame(rows)


def parse_parquet(data: bytes, path: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise VerdictFileError(f"verdicts file {path}: cannot read Parquet: {str(exc).splitlines()[0]}") from None
    by_name = {name.strip().lower(): name for name in table.column_names}
    _columns(list(by_name), path)
    values = {c: table.column(by_name[c]).to_pylist() for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in by_name}
    rows = [{"line": i + 1, **{c: v[i] for c, v in values.items()}} for i in range(table.num_rows)]
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["line", *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "_extra_fields"]
    frame = pd.DataFrame(rows, columns=columns).astype(object)
    return frame.where(frame.notna(), None)


# --- checking rows ---


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parse_day(value: Any) -> tuple[dt.date | None, str | None]:
    if isinstance(value, dt.datetime):
        return None, f"bad dt '{value}' (expected a date YYYY-MM-DD, not a timestamp)"
    if isinstance(value, dt.date):
        return value, None
    text = _text(value)
    if text is None:
        return None, "missing dt"
    if _DATE.match(text):
        try:
            return dt.date.fromisoformat(text), None
        except ValueError:
            pass
    return None, f"bad dt '{text}' (expected a date YYYY-MM-DD)"


def _parse_time(value: Any) -> tuple[dt.datetime | None, str | None]:
    """A UTC timestamp (naive, microseconds), from a datetime or ISO 8601 text."""
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        return None, f"bad reviewed_at '{value}' (expected a timestamp, e.g. 2026-11-02T09:30:00Z)"
    else:
        text = _text(value)
        if text is None:
            return None, "missing reviewed_at"
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            return None, f"bad reviewed_at '{text}' (expected an ISO 8601 timestamp, e.g. 2026-11-02T09:30:00Z)"
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(stamp, pd.Timestamp):
        stamp = stamp.floor("us").to_pydatetime()
    return stamp, None


def check_rows(raw: pd.DataFrame, now: dt.datetime) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Parse and check every row except against scored_sessions.

    Returns the parsed rows (``line``, session_id, dt as a date, dt_text as written, verdict,
    analyst, reviewed_at as a naive UTC datetime, note) and the reasons found so far per line.
    """
    now_utc = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    parsed, reasons = [], {}
    for row in raw.to_dict("records"):
        problems: list[str] = []
        if row.get("_extra_fields"):
            problems.append(f"{int(row['_extra_fields'])} more field(s) than the header has")
        session_id = _text(row.get("session_id"))
        if session_id is None:
            problems.append("missing session_id")
        day, problem = _parse_day(row.get("dt"))
        if problem:
            problems.append(problem)
        verdict = _text(row.get("verdict"))
        if verdict is None:
            problems.append("missing verdict")
        elif verdict.lower() not in contract.VERDICTS:
            problems.append(f"unknown verdict '{verdict}' (expected one of {', '.join(contract.VERDICTS)})")
        else:
            verdict = verdict.lower()
        analyst = _text(row.get("analyst"))
        if analyst is None:
            problems.append("missing analyst")
        reviewed_at, problem = _parse_time(row.get("reviewed_at"))
        if problem:
            problems.append(problem)
        elif reviewed_at > now_utc + FUTURE_TOLERANCE:
            problems.append(f"reviewed_at {reviewed_at.isoformat()}Z is in the future")
        elif day is not None and reviewed_at < dt.datetime.combine(day, dt.time()):
            problems.append(f"reviewed_at {reviewed_at.isoformat()}Z is before the session's day {day}")
        note = row.get("note")
        parsed.append(
            {
                "line": int(row["line"]),
                "session_id": session_id,
                "dt": day,
                "dt_text": day.isoformat() if day is not None else _text(row.get("dt")),
                "verdict": verdict,
                "analyst": analyst,
                "reviewed_at": reviewed_at,
                "note": None if note is None or str(note) == "" else str(note),
            }
        )
        if problems:
            reasons[int(row["line"])] = problems
    columns = ["line", "session_id", "dt", "dt_text", "verdict", "analyst", "reviewed_at", "note"]
    return pd.DataFrame(parsed, columns=columns), reasons


def unscored(spark: SparkSession, cfg: Config, rows: pd.DataFrame) -> dict[int, str]:
    """Reasons for the rows whose session is not in scored_sessions for their dt (by line)."""
    keys = rows.dropna(subset=["session_id", "dt"])
    if keys.empty:
        return {}
    pairs = sorted({(d.isoformat(), s) for d, s in zip(keys["dt"], keys["session_id"], strict=True)})
    days = sorted({d for d, _ in pairs})
    name = tables.table_name(cfg, "scored_sessions")
    found: set[tuple[str, str]] = set()
    scored_days: set[str] = set()
    if spark.catalog.tableExists(name):
        scored = spark.table(name).where(F.col("dt").isin(days)).select("dt", "session_id")
        wanted = spark.createDataFrame(pairs, "dt string, session_id string")
        found = {
            (r["dt"], r["session_id"]) for r in scored.join(wanted.hint("broadcast"), ["dt", "session_id"]).collect()
        }
        first, last = min(keys["dt"]), max(keys["dt"])
        scored_days = tables.published_days(spark, cfg, "scored_sessions", first, last)
    out = {}
    for line, day, session_id in zip(keys["line"], keys["dt"], keys["session_id"], strict=True):
        iso = day.isoformat()
        if iso not in scored_days:
            out[int(line)] = f"no scored_sessions for dt {iso} (score that day first)"
        elif (iso, session_id) not in found:
            out[int(line)] = f"session {session_id} is not in scored_sessions for dt {iso}"
    return out


# --- the latest verdict wins ---


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


# --- the table ---


def existing_rows(spark: SparkSession, cfg: Config, incoming: pd.DataFrame) -> pd.DataFrame:
    """The table's current rows for the (dt, session_id) pairs of ``incoming``, with dt as a date."""
    columns = ["dt", *[f.name for f in contract.VERDICTS_SCHEMA.fields]]
    if not tables.exists(spark, cfg, TABLE) or incoming.empty:
        return pd.DataFrame(columns=columns)
    pairs = sorted({(d.isoformat(), s) for d, s in zip(incoming["dt"], incoming["session_id"], strict=True)})
    wanted = spark.createDataFrame(pairs, "dt string, session_id string")
    days = sorted({d for d, _ in pairs})
    rows = (
        spark.table(tables.table_name(cfg, TABLE))
        .where(F.col("dt").isin(days))
        .join(wanted.hint("broadcast"), ["dt", "session_id"])
        .select(*columns)
        .toPandas()
    )
    rows["dt"] = [dt.date.fromisoformat(d) for d in rows["dt"]]
    return rows


def _tie(side: str) -> str:
    cases = " ".join(f"WHEN '{v}' THEN {rank}" for v, rank in TIE_ORDER.items())
    return f"(CASE {side}.verdict {cases} END)"


# The incoming verdict replaces the table's only when it comes first in the order of merge_verdicts.
WINS = (
    "s.reviewed_at > t.reviewed_at OR (s.reviewed_at = t.reviewed_at AND ("
    f"{_tie('s')} < {_tie('t')} OR ({_tie('s')} = {_tie('t')} AND ("
    "s.analyst < t.analyst OR (s.analyst = t.analyst AND coalesce(s.note, '') < coalesce(t.note, ''))))))"
)


def _merge(spark: SparkSession, cfg: Config, run_id: str, winners: pd.DataFrame) -> None:
    """One MERGE on (dt, session_id) of the winning incoming rows (one per session and day)."""
    out = winners[["dt", *[f.name for f in contract.VERDICTS_SCHEMA.fields]]].copy()
    out["dt"] = [d.isoformat() for d in out["dt"]]
    out["reviewed_at"] = pd.to_datetime(out["reviewed_at"]).astype("datetime64[us]")
    out["ingested_at"] = pd.to_datetime(out["ingested_at"]).astype("datetime64[us]")
    out["source_line"] = out["source_line"].astype("int32")
    schema = T.StructType([T.StructField("dt", T.StringType(), False), *contract.VERDICTS_SCHEMA.fields])
    source = spark.createDataFrame(out, schema)
    days = sorted({dt.date.fromisoformat(d) for d in out["dt"]})
    in_days = ", ".join(f"'{d.isoformat()}'" for d in days)
    with tables.committing(spark, cfg, TABLE, run_id, days) as name:
        (
            DeltaTable.forName(spark, name)
            .alias("t")
            .merge(source.alias("s"), f"t.dt IN ({in_days}) AND t.dt = s.dt AND t.session_id = s.session_id")
            .whenMatchedUpdateAll(condition=WINS)
            .whenNotMatchedInsertAll()
            .execute()
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def source_name(path: str) -> str:
    local = local_path(path)
    return os.path.abspath(local) if local is not None else path


def label(spark: SparkSession, cfg: Config, path: str, now: dt.datetime | None = None) -> LabelReport:
    """Check the file's rows, land the valid ones in the verdicts table, return the report."""
    now = now or _now()
    run_id = runs.new_run_id("label", now)
    name = tables.table_name(cfg, TABLE)
    report = LabelReport(file=path, table=name, run_id=run_id)
    raw = read_verdict_file(spark, path)
    rows, reasons = check_rows(raw, now)
    for line, reason in unscored(spark, cfg, rows).items():
        reasons.setdefault(line, []).append(reason)
    report.rows_read = len(rows)
    by_line = rows.set_index("line")
    report.rejected = [
        Rejection(line, by_line.at[line, "session_id"], by_line.at[line, "dt_text"], tuple(problems))
        for line, problems in sorted(reasons.items())
    ]
    valid = rows[~rows["line"].isin(reasons)].drop(columns="dt_text")
    report.valid_rows = len(valid)
    if valid.empty:
        return report
    valid["source_file"] = source_name(path)
    valid["source_line"] = valid["line"].astype("int32")
    valid["run_id"] = run_id
    valid["ingested_at"] = pd.Timestamp(now.astimezone(dt.UTC).replace(tzinfo=None)).floor("us")
    days = sorted(set(valid["dt"]))
    with locks.hold(spark, cfg, [locks.date_key(TABLE, d) for d in days], run_id):
        existing = existing_rows(spark, cfg, valid)
        winners = []
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
            report.days[day.isoformat()] = counts
            winners.append(won.assign(dt=day))
        changed = pd.concat(winners, ignore_index=True)
        if not changed.empty:  # the same file twice: nothing wins, no commit
            _merge(spark, cfg, run_id, changed)
            log.info("verdicts: %s", report.days)
    return report


def write_rejections(report: LabelReport, path: str) -> None:
    report.rejected_frame().to_csv(path, index=False)


def print_label_report(report: LabelReport, limit: int = 100) -> None:
    print(
        f"{report.file}: {report.rows_read} rows read, {report.valid_rows} valid, {len(report.rejected)} rejected"
        f" (run {report.run_id})"
    )
    if report.valid_rows:
        if report.new or report.changed:
            print(f"  the valid rows landed in {report.table} (the latest verdict per session wins):")
        else:
            print(f"  nothing changed: {report.table} holds these verdicts or later ones already")
        for day, counts in report.days.items():
            print(
                f"    dt={day}: {counts['rows']} rows: {counts['new']} new sessions, {counts['changed']} changed, "
                f"{counts['no_effect']} rows already current or older"
            )
    if report.rejected:
        print(f"  rejected rows (line: reasons){'; the valid rows landed all the same' if report.valid_rows else ''}:")
        for rejection in report.rejected[:limit]:
            where = f" [session {rejection.session_id}, dt {rejection.dt}]" if rejection.session_id else ""
            print(f"    line {rejection.line}{where}: {'; '.join(rejection.reasons)}")
        if len(report.rejected) > limit:
            print(f"    ... and {len(report.rejected) - limit} more (--rejects FILE writes them all)")


def read_verdicts(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> DataFrame:
    """The current verdicts of the window (dt, session_id, verdict, ...)."""
    name = tables.table_name(cfg, TABLE)
    if not spark.catalog.tableExists(name):
        raise RuntimeError(f"{name}: no such table (land verdicts with `raksha label --file ...` first)")
    return spark.table(name).where(F.col("dt").between(start.isoformat(), end.isoformat()))
