"""Bad input through the whole job: a clear error before anything is published, or a quarantined
row with its reason; counts in always reconcile with counts out (sessions read = scored +
quarantined)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import factories
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import test_config as config_under
from deltalake import DeltaTable
from pyspark.sql import functions as F

from raksha import contract
from raksha.ingest import inputs
from raksha.pipeline import daily
from raksha.pipeline.daily import EMPTY_DAY_MESSAGE, PUBLISHED_TABLES, run
from raksha.platform import tables

DAY = dt.date(2026, 8, 12)

# row -> (what is wrong with it, the quarantine reason it must get)
ROW_CASES = {
    0: ("null session_id", "MISSING_SESSION_ID"),
    1: ("duplicate of row 2, later session_start", "DUPLICATE_SESSION_ID"),
    3: ("NaN feature", "NOT_FINITE:touch_pressure"),
    4: ("infinite feature", "NOT_FINITE:swipe_velocity"),
    5: ("outside the physical range", "OUT_OF_RANGE:battery_level"),
    6: ("binary feature not 0/1", "NOT_BINARY:charging_state"),
    7: ("session_start on the next day", "SESSION_START_OUTSIDE_DATE"),
    8: ("no session_start", "MISSING_SESSION_START"),
}
N = 40


def _bad_day() -> tuple[pd.DataFrame, pd.DataFrame]:
    sessions = factories.sessions_frame(DAY, N, seed=4)
    sessions["session_start"] = pd.Timestamp(f"{DAY} 10:00", tz="UTC") + pd.to_timedelta(np.arange(N), unit="min")
    sessions.loc[0, "session_id"] = None
    sessions.loc[1, "session_id"] = sessions.loc[2, "session_id"]
    sessions.loc[1, "session_start"] = pd.Timestamp(f"{DAY} 23:00", tz="UTC")
    sessions.loc[3, "touch_pressure"] = np.nan  # kept a NaN (not a null) by _write_with_nan
    sessions.loc[4, "swipe_velocity"] = np.inf
    sessions.loc[5, "battery_level"] = 1.7
    sessions.loc[6, "charging_state"] = 2
    sessions.loc[7, "session_start"] = pd.Timestamp(f"{DAY + dt.timedelta(days=1)} 00:00:01", tz="UTC")
    sessions.loc[8, "session_start"] = pd.NaT
    sessions.loc[9, "gyro_variance"] = None  # a missing value: filled, scored, flagged
    with_actions = sessions.iloc[:-2]  # the last two sessions have no actions
    actions = factories.actions_frame(with_actions.dropna(subset=["session_id"]), seed=4)
    orphan = actions.iloc[:3].assign(session_id="no-such-session")
    unknown = actions.iloc[3:4].assign(action="SCAN_QR")
    actions = pd.concat([actions.drop(index=3), unknown, orphan], ignore_index=True)
    return sessions, actions


def _write_with_nan(frame: pd.DataFrame, path: Path) -> None:
    """As an app writing NaN would: pandas alone turns NaN into null, so set the column by hand."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    column = table.schema.get_field_index("touch_pressure")
    table = table.set_column(column, "touch_pressure", pa.array(frame["touch_pressure"].to_numpy()))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, coerce_timestamps="us")


@pytest.fixture(scope="module")
def bad_day(spark, tmp_path_factory):
    cfg = config_under(tmp_path_factory.mktemp("bad"))
    sessions, actions = _bad_day()
    _write_with_nan(sessions, Path(cfg.path("sessions")) / f"dt={DAY}" / "part-0.parquet")
    factories.write_partition(actions, cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    result = run(spark, cfg, DAY)
    quarantine = factories.read_table_day(cfg, "quarantine", DAY)
    scored = factories.read_table_day(cfg, "scored_sessions", DAY)
    return result, quarantine, scored, sessions


@pytest.mark.parametrize("row", sorted(ROW_CASES), ids=[ROW_CASES[r][0] for r in sorted(ROW_CASES)])
def test_bad_row_is_quarantined_with_its_reason(bad_day, row):
    _, quarantine, scored, sessions = bad_day
    reason = ROW_CASES[row][1]
    hits = quarantine[quarantine["reason"] == reason]
    assert len(hits) == 1, quarantine[["session_id", "reason"]]
    record = json.loads(hits["record"].iloc[0])
    expected_start = sessions.loc[row, "session_start"]
    if pd.isna(expected_start):
        assert record["session_start"] is None
    else:
        assert pd.Timestamp(record["session_start"]).tz_localize(None) == expected_start.tz_localize(None)
    if row != 1:  # the kept duplicate is scored; every other bad row is not
        assert sessions.loc[row, "session_id"] not in set(scored["session_id"])


def test_duplicate_keeps_the_earliest_row(bad_day):
    _, _, scored, sessions = bad_day
    kept = scored[scored["session_id"] == sessions.loc[2, "session_id"]]
    assert len(kept) == 1


def test_counts_reconcile_and_soft_problems_are_counted_not_errors(bad_day):
    result, quarantine, scored, sessions = bad_day
    counts = result.counts
    assert counts["sessions_read"] == N == counts["sessions_scored"] + counts["sessions_quarantined"]
    assert counts["sessions_quarantined"] == len(quarantine) == len(ROW_CASES)
    assert len(scored) == N - len(ROW_CASES) and scored["session_id"].is_unique
    assert counts["orphan_actions"] == 3 and counts["unknown_actions"] == 1
    assert counts["sessions_without_actions"] == 2
    flags = dict(zip(scored["session_id"], scored["dq_flags"].map(list), strict=True))
    assert "NO_ACTIONS" in flags[sessions.loc[N - 1, "session_id"]]
    assert "MISSING_FEATURES_FILLED" in flags[sessions.loc[9, "session_id"]]
    assert sum("UNKNOWN_ACTIONS" in f for f in flags.values()) == 1


def test_location_and_network_are_coarsened_in_quarantine_records(bad_day):
    _, quarantine, _, _ = bad_day
    for record in quarantine["record"].map(json.loads):
        assert record["wifi_id_hash"] is None
        assert record["gps_latitude"] is None or round(record["gps_latitude"], 1) == record["gps_latitude"]


def _publish_a_day(spark, cfg) -> tuple[pd.DataFrame, dict[str, tuple[int, pd.DataFrame]]]:
    sessions = factories.sessions_frame(DAY, 20, seed=6)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions), cfg.path("actions"), DAY)
    factories.write_untrained_models(cfg.path("models"))
    run(spark, cfg, DAY)
    return sessions, _snapshot(cfg)


@pytest.fixture
def published(spark, cfg):
    """A day already published, to check that a failed run leaves it as it was (a test of its own: it
    publishes again, or it reads the run_log rows its failure wrote)."""
    return _publish_a_day(spark, cfg)


@pytest.fixture(scope="module")
def _published_once(spark, tmp_path_factory):
    cfg = config_under(tmp_path_factory.mktemp("published"))
    return cfg, *_publish_a_day(spark, cfg)


@pytest.fixture
def unreadable(_published_once):
    """(cfg, sessions, before): a day published once for the tests whose bad input stops the run at its
    read; each replaces the day's sessions file, and gets the day's good file back after it."""
    cfg, sessions, before = _published_once
    yield cfg, sessions, before
    _replace_sessions(cfg, sessions)


def _snapshot(cfg) -> dict[str, tuple[int, pd.DataFrame]]:
    """Each published table's current Delta version and its rows of DAY."""
    out = {}
    for table in PUBLISHED_TABLES:
        version = DeltaTable(str(Path(cfg.path("warehouse")) / table)).version()
        rows = factories.read_table_day(cfg, table, DAY)
        out[table] = (version, rows.sort_values("session_id").reset_index(drop=True))
    return out


def _replace_sessions(cfg, frame: pd.DataFrame | None, raw: bytes | None = None) -> Path:
    folder = Path(cfg.path("sessions")) / f"dt={DAY}"
    for old in folder.glob("*.parquet"):
        old.unlink()
    if raw is not None:
        path = folder / "part-0.parquet"
        path.write_bytes(raw)
        return path
    return factories.write_partition(frame, cfg.path("sessions"), DAY)


def _unchanged(cfg, before: dict[str, tuple[int, pd.DataFrame]]) -> None:
    """No table got a new version and the published day holds the same rows."""
    after = _snapshot(cfg)
    for table, (version, rows) in before.items():
        assert after[table][0] == version, table
        pd.testing.assert_frame_equal(after[table][1], rows)


def test_missing_required_column_fails_naming_dataset_date_file_and_column(spark, unreadable):
    cfg, sessions, before = unreadable
    path = _replace_sessions(cfg, sessions.drop(columns=["gyro_variance"]))
    with pytest.raises(
        inputs.InputError, match=rf"sessions {DAY}: required column 'gyro_variance' is missing in .*{path.name}"
    ):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)


def test_missing_column_in_one_file_of_several_is_not_read_as_nulls(spark, unreadable):
    cfg, sessions, before = unreadable
    _replace_sessions(cfg, sessions.iloc[:10])
    other = factories.write_partition(
        sessions.iloc[10:].drop(columns=["user_id"]), cfg.path("sessions"), DAY, "part-1.parquet"
    )
    with pytest.raises(inputs.InputError, match=rf"required column 'user_id' is missing in .*{other.name}"):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)


def test_type_that_cannot_be_cast_safely_fails(spark, unreadable):
    cfg, sessions, before = unreadable
    _replace_sessions(cfg, sessions.assign(touch_pressure=sessions["touch_pressure"].astype(str)))
    with pytest.raises(
        inputs.InputError, match=r"column 'touch_pressure' has type string in .*part-0.parquet, expected double"
    ):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)


def test_int64_integer_columns_are_accepted_and_a_type_that_would_lose_is_refused(spark, cfg, published):
    sessions, before = published
    # a binary feature written as double: a cast to int could drop a fraction, so the run stops
    _replace_sessions(cfg, sessions.assign(charging_state=sessions["charging_state"].astype("float64")))
    with pytest.raises(
        inputs.InputError, match=r"column 'charging_state' has type double in .*part-0.parquet, expected int"
    ):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)
    # every integer column as int64 (the binary features, the actions' seq_no): scored as int32 was
    path = _replace_sessions(cfg, sessions.astype({c: "int64" for c in contract.BINARY_FEATURES}))
    actions = factories.actions_frame(sessions).astype({"seq_no": "int64"})
    actions_path = factories.write_partition(actions, cfg.path("actions"), DAY)  # replaces the int32 file
    assert pq.read_schema(path).field("charging_state").type == pa.int64()
    assert pq.read_schema(actions_path).field("seq_no").type == pa.int64()
    result = run(spark, cfg, DAY)
    assert result.counts["sessions_scored"] == len(sessions) and result.counts["sessions_quarantined"] == 0
    volatile = ["run_id", "scored_at"]
    after = factories.read_table_day(cfg, "scored_sessions", DAY).sort_values("session_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after.drop(columns=volatile), before["scored_sessions"][1].drop(columns=volatile))


def test_corrupt_file_fails_naming_it(spark, unreadable):
    cfg, _, before = unreadable
    path = _replace_sessions(cfg, None, raw=b"PAR1 this is not parquet PAR1")
    with pytest.raises(inputs.InputError, match=rf"sessions {DAY}: cannot read Parquet file .*{path.name}"):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)


def test_missing_day_is_an_error_never_an_empty_success(spark, cfg):
    factories.write_untrained_models(cfg.path("models"))
    with pytest.raises(inputs.InputError, match=rf"sessions {DAY}: no partition at "):
        run(spark, cfg, DAY)


def test_empty_day_succeeds_with_zero_rows_replacing_the_previous_day(spark, cfg, published):
    sessions, _ = published
    ids = {"session_id": "string", "user_id": "string", "device_id": "string"}  # typed, as a producer writes
    _replace_sessions(cfg, sessions.iloc[:0].astype(ids))
    result = run(spark, cfg, DAY)
    assert result.counts["sessions_read"] == 0 == result.counts["sessions_scored"]
    name = tables.table_name(cfg, "scored_sessions")
    assert spark.sql(f"select count(*) n from {name} where dt = '{DAY}'").first()["n"] == 0
    assert len(factories.read_table_day(cfg, "scored_sessions", DAY)) == 0
    log = spark.table(tables.table_name(cfg, "run_log")).where(f"run_id = '{result.run_id}'").first()
    assert log["status"] == "SUCCEEDED" and log["message"] == EMPTY_DAY_MESSAGE


@pytest.mark.parametrize(
    "broken, reason, also",
    [
        ("autoencoder", "MODEL_OUTPUT_NOT_A_NUMBER:ae_error", "MODEL_OUTPUT_NOT_A_NUMBER:ae_error"),
        ("sequence", "MODEL_OUTPUT_NOT_A_NUMBER:seq_risk", "MODEL_OUTPUT_NOT_A_NUMBER:seq_risk_max"),
    ],
)
def test_nan_model_output_is_quarantined_never_written_as_a_score(spark, tmp_path, broken, reason, also):
    cfg = config_under(tmp_path)
    sessions = factories.sessions_frame(DAY, 15, seed=8)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions), cfg.path("actions"), DAY)
    factories.write_untrained_models(
        cfg.path("models"), broken_autoencoder=broken == "autoencoder", broken_sequence=broken == "sequence"
    )
    result = run(spark, cfg, DAY)
    assert result.counts["sessions_read"] == 15 == result.counts["sessions_quarantined"]
    assert result.counts["sessions_scored"] == 0
    quarantine = factories.read_table_day(cfg, "quarantine", DAY)
    assert set(quarantine["reason"]) == {reason}
    assert all(also in r for r in quarantine["reasons"])
    assert len(factories.read_table_day(cfg, "scored_sessions", DAY)) == 0


def test_counts_that_do_not_reconcile_stop_the_run_before_anything_is_published(spark, cfg, published, monkeypatch):
    sessions, before = published
    ids = list(sessions["session_id"])
    actions = factories.actions_frame(sessions)
    factories.write_partition(actions[~actions["session_id"].isin(ids[:3])], cfg.path("actions"), DAY)

    joined = daily.with_sequences

    def losing_sessions_without_actions(flagged, actions, observation):  # the bug guarded against: an inner join
        return joined(flagged, actions, observation).where(F.col("action_count") > 0)

    monkeypatch.setattr(daily, "with_sequences", losing_sessions_without_actions)
    message = f"sessions {DAY}: read 20 != scored 17 + quarantined 0"
    with pytest.raises(daily.ReconciliationError, match=message.replace("+", r"\+")):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)
    failed = spark.table(tables.table_name(cfg, "run_log")).where("status = 'FAILED'").collect()
    assert [r["message"] for r in failed] == [message]


def test_a_session_scored_twice_stops_the_run_even_when_the_counts_reconcile(spark, cfg, published, monkeypatch):
    sessions, before = published
    ids = sorted(sessions["session_id"])
    joined = daily.with_sequences

    def one_lost_one_twice(flagged, actions, observation):  # a join gone wrong both ways: still 20 rows of 20
        copies = F.explode(
            F.when(F.col("session_id") == ids[1], F.array(F.lit(1), F.lit(2))).otherwise(F.array(F.lit(1)))
        )
        valid = joined(flagged, actions, observation).where(F.col("session_id") != ids[0])
        return valid.withColumn("_copy", copies).drop("_copy")

    monkeypatch.setattr(daily, "with_sequences", one_lost_one_twice)
    message = f"sessions {DAY}: a session_id was scored twice"
    with pytest.raises(daily.ReconciliationError, match=message):
        run(spark, cfg, DAY)
    _unchanged(cfg, before)
