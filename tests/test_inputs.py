"""Input schemas are checked per file from each file's own footer, as Spark reads that file alone,
and a day written as thousands of files is checked without a Spark read per file."""

from __future__ import annotations

import datetime as dt
import time

import factories
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raksha import contract
from raksha.ingest import inputs

DAY = dt.date(2026, 6, 2)


def test_footer_schemas_are_what_spark_reads_from_each_file_alone(spark, tmp_path):
    sessions = factories.sessions_frame(DAY, 6, seed=1)
    written = {
        "pandas_utc.parquet": sessions,
        "pandas_naive.parquet": sessions.assign(session_start=sessions["session_start"].dt.tz_localize(None)),
        "int64.parquet": sessions.astype({c: "int64" for c in contract.BINARY_FEATURES}),
        "float32.parquet": sessions.astype({"touch_pressure": "float32"}),
        "string_typed.parquet": sessions.assign(touch_pressure=sessions["touch_pressure"].astype(str)),
        "no_user.parquet": sessions.drop(columns=["user_id"]),
    }
    files = []
    for name, frame in written.items():
        path = tmp_path / name
        frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
        files.append(path.as_uri())
    # written by Spark: its own schema in the footer (short, decimal and a timestamp Spark typed itself)
    by_spark = tmp_path / "by_spark"
    spark.createDataFrame(sessions.head(3)).selectExpr(
        "*", "cast(1 as short) as small", "cast(2.5 as decimal(10, 3)) as money"
    ).coalesce(1).write.parquet(str(by_spark))
    files += [p.as_uri() for p in sorted(by_spark.glob("part-*.parquet"))]

    found = inputs.footer_schemas(spark, files, "test")
    assert len(found) == len(files)  # all distinct
    for schema, file in found:
        assert schema.simpleString() == spark.read.parquet(file).schema.simpleString(), file  # nullability aside
    assert {f: s["session_start"].dataType.simpleString() for s, f in found if "pandas" in f} == {
        files[0]: "timestamp",
        files[1]: "timestamp_ntz",  # not adjusted to UTC: the contract refuses it, as Spark types it
    }


def test_a_file_with_a_footer_that_cannot_be_converted_is_named(spark, tmp_path):
    path = tmp_path / "nanos.parquet"
    pq.write_table(pa.table({"t": pa.array([1, 2], pa.timestamp("ns", tz="UTC"))}), path)
    with pytest.raises(inputs.InputError, match=r"^day: cannot read Parquet file .*nanos.parquet: .*NANOS"):
        inputs.footer_schemas(spark, [path.as_uri()], "day")


def test_a_day_of_2000_files_is_checked_per_file_and_read_whole(spark, tmp_path):
    sessions = factories.sessions_frame(DAY, 2000, seed=2)
    table = pa.Table.from_pandas(sessions, preserve_index=False)
    folder = tmp_path / "sessions" / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True)
    for i in range(2000):
        pq.write_table(table.slice(i, 1), folder / f"part-{i:05d}.parquet", coerce_timestamps="us")
    clock = time.monotonic()
    day = inputs.read_sessions(spark, str(tmp_path / "sessions"), DAY)
    checked = time.monotonic() - clock
    print(f"\n2,000 files: read and checked in {checked:.1f} s")
    assert inputs.check_readable(day, "sessions", DAY, str(folder)) == 2000
    got = day.select("session_id", "touch_pressure").toPandas().sort_values("session_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, sessions[["session_id", "touch_pressure"]], check_dtype=False)

    # one file among them without a required column is named, not read as nulls
    odd = folder / "part-01500.parquet"
    pq.write_table(table.slice(1500, 1).drop(["gyro_variance"]), odd, coerce_timestamps="us")
    with pytest.raises(inputs.InputError, match=rf"required column 'gyro_variance' is missing in .*{odd.name}"):
        inputs.read_sessions(spark, str(tmp_path / "sessions"), DAY)
