"""Generated days written as the inputs a bank delivers: ``{root}/dt=YYYY-MM-DD/part-00000.parquet``
for sessions, actions and labels, typed by the contract's schemas; ``generate`` (``raksha generate``)."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import types as T

from raksha import contract
from raksha.synthetic.day import DayData, generate_day
from raksha.synthetic.labels import ODDITIES

log = logging.getLogger(__name__)

_ARROW_TYPES = {
    T.StringType(): pa.string(),
    T.TimestampType(): pa.timestamp("us", tz="UTC"),
    T.DoubleType(): pa.float64(),
    T.IntegerType(): pa.int32(),
}


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The pyarrow schema of a contract schema (string, timestamp[us, UTC], float64, int32)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[f.dataType], nullable=f.nullable) for f in schema.fields])


def _write(frame: pd.DataFrame, schema: T.StructType, root: str, day: dt.date) -> None:
    write_table(pa.Table.from_pandas(frame, schema=arrow_schema(schema), preserve_index=False), root, day)


def write_table(table: pa.Table, root: str | Path, day: dt.date) -> None:
    """Replace ``{root}/dt=day/`` with ``table`` as one Parquet file, swapping a finished folder in."""
    folder = Path(root) / f"dt={day.isoformat()}"
    staging = Path(root) / f".dt={day.isoformat()}.{uuid.uuid4().hex[:8]}.tmp"  # hidden from readers
    staging.mkdir(parents=True)
    try:
        pq.write_table(table, staging / "part-00000.parquet", coerce_timestamps="us")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_day(data: DayData, day: dt.date, sessions_root: str, actions_root: str, labels_root: str) -> None:
    """``{root}/dt=YYYY-MM-DD/part-00000.parquet`` for sessions, actions and labels (replacing the day)."""
    _write(data.sessions, contract.SESSIONS_SCHEMA, sessions_root, day)
    _write(data.actions, contract.ACTIONS_SCHEMA, actions_root, day)
    _write(data.labels, contract.LABELS_SCHEMA, labels_root, day)


def generate(
    start_date: dt.date,
    days: int,
    sessions_per_day: int,
    attack_rate: float,
    seed: int,
    sessions_root: str,
    actions_root: str,
    labels_root: str,
    users_per_1000_sessions: int = 250,
) -> dict[str, object]:
    """Generate and write ``days`` days from ``start_date``.

    Returns a summary: days, sessions, actions, attacks, the count of each attack kind and of each
    benign oddity, and the seconds it took.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    summary: dict[str, object] = {"days": days, "sessions": 0, "actions": 0, "attacks": 0}
    kinds = dict.fromkeys(contract.ATTACK_KINDS, 0)
    oddities = dict.fromkeys(ODDITIES, 0)
    clock = time.monotonic()
    for offset in range(days):
        day = start_date + dt.timedelta(days=offset)
        data = generate_day(day, sessions_per_day, attack_rate, seed, users_per_1000_sessions)
        write_day(data, day, sessions_root, actions_root, labels_root)
        summary["sessions"] += len(data.sessions)
        summary["actions"] += len(data.actions)
        summary["attacks"] += int(data.labels["is_attack"].sum())
        for name, count in data.labels["attack_kind"].value_counts().items():
            kinds[name] += int(count)
        for name, count in data.labels["benign_oddity"].value_counts().items():
            oddities[name] += int(count)
        log.info("generated %s: %d sessions, %d actions", day, len(data.sessions), len(data.actions))
    return {**summary, **kinds, "benign_oddities": oddities, "seconds": round(time.monotonic() - clock, 1)}
