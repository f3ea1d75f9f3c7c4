"""A verdict file read and checked row by row (pure: bytes in, pandas out; no Spark).

A verdict file has one row per reviewed session: ``session_id``, ``dt`` (the day the session was
scored, YYYY-MM-DD), ``verdict`` (fraud, legit or unsure; case and surrounding blanks ignored),
``analyst``, ``reviewed_at`` (ISO 8601; a time without an offset is UTC) and an optional ``note``.
Other columns are ignored. CSV files are UTF-8 (a byte-order mark is fine) with a header row;
Parquet files may hold ``dt`` as a date and ``reviewed_at`` as a timestamp.

Every row is checked; a row that fails is rejected with its line number (CSV: the line the record
starts on, the header being line 1; Parquet: the 1-based row) and every reason: a missing field, an
unknown verdict, a bad date or timestamp, a review time before the session's day or in the future.
Whether the session was scored that day is checked against ``scored_sessions`` by
``raksha.feedback.verdicts``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from raksha import contract

REQUIRED_COLUMNS: tuple[str, ...] = ("session_id", "dt", "verdict", "analyst", "reviewed_at")
OPTIONAL_COLUMNS: tuple[str, ...] = ("note",)
# the parsed rows of check_rows
PARSED_COLUMNS: tuple[str, ...] = ("line", "session_id", "dt", "dt_text", "verdict", "analyst", "reviewed_at", "note")
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


# --- reading a file ---


def parse_file(data: bytes, path: str) -> pd.DataFrame:
    """The rows of a file's bytes, by its extension (.csv, .parquet or .pq)."""
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


# --- checking rows: each field gives its value and its problem (None when there is none) ---


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _required(value: Any, name: str) -> tuple[str | None, str | None]:
    text = _text(value)
    return text, None if text is not None else f"missing {name}"


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


def _parse_verdict(value: Any) -> tuple[str | None, str | None]:
    """The verdict in lower case; an unknown one is kept as written, with its problem."""
    verdict, problem = _required(value, "verdict")
    if verdict is None:
        return None, problem
    if verdict.lower() not in contract.VERDICTS:
        return verdict, f"unknown verdict '{verdict}' (expected one of {', '.join(contract.VERDICTS)})"
    return verdict.lower(), None


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


def _review_time(value: Any, day: dt.date | None, now_utc: dt.datetime) -> tuple[dt.datetime | None, str | None]:
    """reviewed_at, which must lie between the start of the session's day and now (give or take the skew)."""
    reviewed_at, problem = _parse_time(value)
    if reviewed_at is None:
        return None, problem
    if reviewed_at > now_utc + FUTURE_TOLERANCE:
        return reviewed_at, f"reviewed_at {reviewed_at.isoformat()}Z is in the future"
    if day is not None and reviewed_at < dt.datetime.combine(day, dt.time()):
        return reviewed_at, f"reviewed_at {reviewed_at.isoformat()}Z is before the session's day {day}"
    return reviewed_at, None


def check_rows(raw: pd.DataFrame, now: dt.datetime) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Parse and check every row except against scored_sessions.

    Returns the parsed rows (``line``, session_id, dt as a date, dt_text as written, verdict,
    analyst, reviewed_at as a naive UTC datetime, note) and the reasons found so far per line.
    """
    now_utc = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    parsed, reasons = [], {}
    for row in raw.to_dict("records"):
        extra = f"{int(row['_extra_fields'])} more field(s) than the header has" if row.get("_extra_fields") else None
        session_id, no_session = _required(row.get("session_id"), "session_id")
        day, bad_day = _parse_day(row.get("dt"))
        verdict, bad_verdict = _parse_verdict(row.get("verdict"))
        analyst, no_analyst = _required(row.get("analyst"), "analyst")
        reviewed_at, bad_time = _review_time(row.get("reviewed_at"), day, now_utc)
        note = row.get("note")
        line = int(row["line"])
        parsed.append(
            {
                "line": line,
                "session_id": session_id,
                "dt": day,
                "dt_text": day.isoformat() if day is not None else _text(row.get("dt")),
                "verdict": verdict,
                "analyst": analyst,
                "reviewed_at": reviewed_at,
                "note": None if note is None or str(note) == "" else str(note),
            }
        )
        problems = [p for p in (extra, no_session, bad_day, bad_verdict, no_analyst, bad_time) if p]
        if problems:
            reasons[line] = problems
    return pd.DataFrame(parsed, columns=list(PARSED_COLUMNS)), reasons


def rejections(rows: pd.DataFrame, reasons: dict[int, list[str]]) -> list[Rejection]:
    """The rejected rows of ``check_rows``' result, by line, each with every reason."""
    by_line = rows.set_index("line")
    return [
        Rejection(line, by_line.at[line, "session_id"], by_line.at[line, "dt_text"], tuple(problems))
        for line, problems in sorted(reasons.items())
    ]
