from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from raksha import contract
from raksha.synthetic import generate, generate_day

DAY = dt.date(2026, 11, 4)  # a Wednesday


@pytest.fixture(scope="module")
def day():
    return generate_day(DAY, 4000, 0.05, seed=7)


def test_same_seed_same_data_other_seed_other_data(day):
    again = generate_day(DAY, 4000, 0.05, seed=7)
    pd.testing.assert_frame_equal(day.sessions, again.sessions)
    pd.testing.assert_frame_equal(day.actions, again.actions)
    other = generate_day(DAY, 4000, 0.05, seed=8)
    assert not day.sessions["tap_duration"].equals(other.sessions["tap_duration"])


def test_columns_types_and_ranges_follow_the_contract(day):
    assert list(day.sessions.columns) == [f.name for f in contract.SESSIONS_SCHEMA.fields]
    assert day.sessions["session_id"].is_unique
    for name in contract.CONTINUOUS_FEATURES:
        low, high = contract.feature_range(name)
        values = day.sessions[name].dropna().astype(float)
        assert values.between(low, high).all(), name
    for name in contract.BINARY_FEATURES:
        assert set(day.sessions[name].dropna().unique()) <= {0, 1}, name
    starts = day.sessions["session_start"]
    assert (starts >= pd.Timestamp("2026-11-04", tz="UTC")).all() and (starts < pd.Timestamp("2026-11-05", tz="UTC")).all()


def test_day_of_week_and_missing_flags_are_consistent(day):
    s = day.sessions
    assert (s["day_of_week_wed"] == 1).all() and (s[list(contract.DAY_OF_WEEK_FEATURES)].sum(axis=1) == 1).all()
    assert (s.loc[s["gps_location_missing"] == 1, "gps_latitude"].isna()).all()
    assert (s.loc[s["wifi_info_missing"] == 1, "wifi_id_hash"].isna()).all()
    assert (s.loc[s["accel_variance_missing"] == 1, "accel_variance"].isna()).all()
    assert s["wifi_id_hash"].isna().sum() == (s["wifi_info_missing"] == 1).sum()
    hours = s["session_start"].dt.hour + s["session_start"].dt.minute / 60
    angle = 2 * np.pi * hours / 24 - np.pi / 2
    np.testing.assert_allclose(s["time_of_day_sin"].astype(float), np.sin(angle), atol=0.01)


def test_attacks_of_every_kind_at_about_the_rate(day):
    labels = day.labels
    assert set(labels["attack_kind"].dropna()) == set(contract.ATTACK_KINDS)
    assert 0.035 < labels["is_attack"].mean() < 0.065
    assert (labels["attack_kind"].notna() == (labels["is_attack"] == 1)).all()
    assert set(labels["benign_oddity"].dropna()) == {"new_device", "travel", "low_battery_night", "missing_sensors"}
    assert labels.loc[labels["is_attack"] == 1, "benign_oddity"].isna().all()


def test_sequences_look_like_the_notebook(day):
    actions = day.actions
    first = actions[actions["seq_no"] == 1]
    assert (first["action"] == "LOGIN").mean() > 0.99
    per_session = actions.groupby("session_id").size()
    assert 4.5 < per_session.mean() < 6.5 and per_session.max() > 10
    assert (~actions["action"].isin(list(contract.ACTIONS))).any()  # other strings occur
    ato = set(day.labels.loc[day.labels["attack_kind"] == "account_takeover", "session_id"])
    ato_actions = actions[actions["session_id"].isin(ato)]
    assert ato_actions.groupby("session_id")["action"].apply(lambda a: "TRANSFER_LARGE" in set(a)).all()
    # event_ts increases with seq_no inside each session
    ordered = actions.sort_values(["session_id", "seq_no"])
    assert (ordered.groupby("session_id")["event_ts"].diff().dropna() > pd.Timedelta(0)).all()
    large = actions[actions["action"] == "TRANSFER_LARGE"]["amount"]
    assert (large > 10_000).all() and actions[actions["action"] == "LOGIN"]["amount"].isna().all()


def test_users_keep_their_habits_across_days():
    a = generate_day(DAY, 3000, 0.0, seed=3)
    b = generate_day(DAY + dt.timedelta(days=1), 3000, 0.0, seed=3)
    home = lambda d: d.sessions.groupby("user_id")["gps_latitude"].median()  # noqa: E731
    both = pd.concat([home(a), home(b)], axis=1, join="inner").dropna().astype(float)
    assert len(both) > 100
    assert (both.iloc[:, 0] - both.iloc[:, 1]).abs().median() < 0.02
    assert not a.sessions["session_id"].isin(b.sessions["session_id"]).any()


def test_written_parquet_has_utc_microseconds_and_real_nulls(tmp_path):
    summary = generate(DAY, 2, 500, 0.05, 7, str(tmp_path / "s"), str(tmp_path / "a"), str(tmp_path / "l"))
    assert summary["sessions"] == 1000
    table = pq.read_table(tmp_path / "s" / f"dt={DAY}" / "part-00000.parquet")
    assert str(table.schema.field("session_start").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("charging_state").type) == "int32"
    gps = table.column("gps_latitude")
    assert gps.null_count > 0 and not np.isnan(gps.to_numpy(zero_copy_only=False)[~np.asarray(gps.is_null())]).any()
    assert (tmp_path / "l" / f"dt={DAY + dt.timedelta(days=1)}" / "part-00000.parquet").exists()
