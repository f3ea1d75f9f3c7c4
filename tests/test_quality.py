from __future__ import annotations

import datetime as dt
import math

import factories
import pandas as pd
from pyspark.sql import functions as F

from raksha import contract
from raksha.ingest import quality

DAY = dt.date(2026, 2, 3)


def _flag(
    spark, frame: pd.DataFrame, set_values: dict[tuple[int, str], float] | None = None, duplicates: bool = True
) -> dict[str, list[str]]:
    df = spark.createDataFrame(frame[[f.name for f in contract.SESSIONS_SCHEMA.fields]], contract.SESSIONS_SCHEMA)
    # NaN and infinities set in Spark: pandas -> Spark conversion would turn NaN into null
    for (row, column), value in (set_values or {}).items():
        hit = F.col("session_id") == frame.loc[row, "session_id"]
        df = df.withColumn(column, F.when(hit, F.lit(value)).otherwise(F.col(column)))
    rows = quality.flag_sessions(df, DAY, duplicates).collect()
    return {r["session_id"]: r[quality.REASONS_COLUMN] for r in rows}


def test_each_bad_row_gets_its_reason_and_good_rows_none(spark):
    frame = factories.sessions_frame(DAY, 8, seed=4)
    frame["session_start"] = frame["session_start"].dt.tz_localize(None)
    frame.loc[1, "battery_level"] = 1.5
    frame.loc[2, "charging_state"] = 2
    frame.loc[3, "session_start"] = pd.Timestamp("2026-02-04 00:00:00")
    frame.loc[5, "time_of_day_sin"] = -0.5  # signed feature: in range
    frame.loc[6, "touch_area"] = None  # null is missing, not corrupt
    reasons = _flag(spark, frame, {(0, "touch_pressure"): math.nan, (4, "gps_latitude"): math.inf})
    ids = list(frame["session_id"])
    assert reasons[ids[0]] == ["NOT_FINITE:touch_pressure"]
    assert reasons[ids[1]] == ["OUT_OF_RANGE:battery_level"]
    assert reasons[ids[2]] == ["NOT_BINARY:charging_state"]
    assert reasons[ids[3]] == ["SESSION_START_OUTSIDE_DATE"]
    assert reasons[ids[4]] == ["NOT_FINITE:gps_latitude"]
    assert reasons[ids[5]] == [] and reasons[ids[6]] == [] and reasons[ids[7]] == []
    # a day known to hold no duplicate (the nightly job's quarantine) is checked row by row, with the same reasons
    without_window = _flag(spark, frame, {(0, "touch_pressure"): math.nan, (4, "gps_latitude"): math.inf}, False)
    assert without_window == reasons


def test_duplicate_session_id_keeps_the_earliest_row(spark):
    frame = factories.sessions_frame(DAY, 3, seed=5)
    frame["session_start"] = frame["session_start"].dt.tz_localize(None)
    dup = frame.iloc[[1]].copy()
    dup["session_start"] = frame.loc[1, "session_start"] - pd.Timedelta(minutes=1)
    dup["device_id"] = "other-device"
    frame = pd.concat([frame, dup], ignore_index=True)
    df = spark.createDataFrame(frame, contract.SESSIONS_SCHEMA)
    flagged = quality.flag_sessions(df, DAY)
    valid, bad = quality.split_valid(flagged)
    kept = valid.where(f"session_id = '{frame.loc[1, 'session_id']}'").collect()
    assert len(kept) == 1 and kept[0]["device_id"] == "other-device"
    assert [r[quality.REASONS_COLUMN] for r in bad.collect()] == [["DUPLICATE_SESSION_ID"]]
    assert valid.count() + bad.count() == len(frame)
